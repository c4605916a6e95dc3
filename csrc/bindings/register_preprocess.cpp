// pyimgcls._core: preprocess_batch (glue only: convert, check, release the GIL, call core/preprocess).
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/preprocess/kernels.h"
#include "core/preprocess/preprocess.h"

namespace pyimgcls::bindings {
namespace {

core::ImageView image_view(const py::handle& obj, std::size_t i) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error("images[" + std::to_string(i) + "] must be a numpy array, got " +
                             py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    py::array a = py::reinterpret_borrow<py::array>(obj);
    core::ImageView v;
    if (a.dtype().is(py::dtype::of<std::uint8_t>())) v.type = core::PixelType::u8;
    else if (a.dtype().is(py::dtype::of<std::uint16_t>())) v.type = core::PixelType::u16;
    else
        throw py::type_error("images[" + std::to_string(i) + "] must be uint8 or uint16, got " +
                             dtype_str(a));
    const py::ssize_t item = a.itemsize();
    if (a.ndim() == 2) {
        v.channels = 1;
    } else if (a.ndim() == 3) {
        v.channels = static_cast<int>(a.shape(2));
    } else {
        throw py::value_error("images[" + std::to_string(i) +
                              "] must have shape (H, W) or (H, W, C), got " + shape_str(a));
    }
    v.height = static_cast<int>(a.shape(0));
    v.width = static_cast<int>(a.shape(1));
    if (!(v.channels == 1 || v.channels == 3 || v.channels == 4))
        throw py::value_error("images[" + std::to_string(i) + "] must have 1, 3 or 4 channels, got shape " +
                              shape_str(a));
    if (v.height <= 0 || v.width <= 0)
        throw py::value_error("images[" + std::to_string(i) + "] must be non-empty, got shape " +
                              shape_str(a));
    // the stride of an axis of length 1 is never used (NumPy leaves any value there, even in a
    // C-contiguous array: np.ascontiguousarray(img[:1, :1, 1]) keeps the view's strides)
    const bool pixel_ok = (v.width == 1 || a.strides(1) == item * v.channels) &&
                          (a.ndim() == 2 || v.channels == 1 || a.strides(2) == item);
    // rows must not overlap (a zero or short row stride, as np.broadcast_to makes, would let the
    // kernels' wide loads read past the buffer): such views are copied by pyimgcls.preprocess
    const bool rows_ok = v.height == 1 || (a.strides(0) % item == 0 &&
                                           a.strides(0) >= static_cast<py::ssize_t>(item) * v.width * v.channels);
    if (!pixel_ok || !rows_ok)
        throw py::value_error("images[" + std::to_string(i) +
                              "] must have contiguous pixels (np.ascontiguousarray)");
    v.row_stride = v.height == 1 ? static_cast<std::ptrdiff_t>(v.width) * v.channels : a.strides(0) / item;
    v.data = a.data();
    return v;
}

void preprocess_batch(const py::list& images, const py::array_t<std::int32_t, py::array::c_style>& plans,
                      py::array out, int layout, int interpolation, int out_channels,
                      std::vector<int> channel_map, std::vector<float> gray_weights,
                      std::vector<float> scale, std::vector<float> bias, std::vector<float> pad,
                      int threads, const std::string& kernels) {
    const core::PreprocessKernels& K = core::kernel_set(kernels);  // ValueError for a set not offered here
    const std::size_t n = images.size();
    if (plans.ndim() != 2 || plans.shape(1) != 8 || static_cast<std::size_t>(plans.shape(0)) != n)
        throw py::value_error("plans must have shape (" + std::to_string(n) + ", 8), got " +
                              shape_str(plans));
    if (out.ndim() != 4 || !(out.flags() & py::array::c_style) || !out.writeable())
        throw py::value_error("out must be a writeable C-contiguous 4-d array, got shape " +
                              shape_str(out));
    if (channel_map.size() != 3 || gray_weights.size() != 3 || scale.size() != 3 ||
        bias.size() != 3 || pad.size() != 3)
        throw py::value_error("channel_map, gray_weights, scale, bias and pad must have 3 entries");
    core::TensorView dst;
    dst.data = out.mutable_data();
    dst.layout = layout == 0 ? core::Layout::nchw : core::Layout::nhwc;
    dst.batch = static_cast<int>(out.shape(0));
    dst.channels = static_cast<int>(out.shape(layout == 0 ? 1 : 3));
    dst.height = static_cast<int>(out.shape(layout == 0 ? 2 : 1));
    dst.width = static_cast<int>(out.shape(layout == 0 ? 3 : 2));
    if (out.dtype().is(py::dtype::of<float>())) dst.dtype = core::OutType::f32;
    else if (out.dtype().is(py::dtype("float16"))) dst.dtype = core::OutType::f16;
    else if (out.dtype().is(py::dtype::of<std::uint8_t>())) dst.dtype = core::OutType::u8;
    else throw py::type_error("out must be float32, float16 or uint8, got " + dtype_str(out));
    if (dst.channels != out_channels || !(out_channels == 1 || out_channels == 3))
        throw py::value_error("out has " + std::to_string(dst.channels) + " channels, expected " +
                              std::to_string(out_channels));
    if (static_cast<std::size_t>(dst.batch) < n)
        throw py::value_error("out holds " + std::to_string(dst.batch) + " images, got " +
                              std::to_string(n));
    if (interpolation < 0 || interpolation >= core::kInterpolationModes)
        throw py::value_error("unknown interpolation " + std::to_string(interpolation));

    core::PreprocessParams p;
    p.interpolation = static_cast<core::Interpolation>(interpolation);
    p.out_channels = out_channels;
    for (int k = 0; k < 3; ++k) {
        if (channel_map[k] < 0 || channel_map[k] > 2) throw py::value_error("channel_map entries must be 0..2");
        p.channel_map[k] = channel_map[k];
        p.gray_weights[k] = gray_weights[k];
        p.scale[k] = scale[k];
        p.bias[k] = bias[k];
        p.pad[k] = pad[k];
    }
    // owning references: the list may be changed by another thread while the GIL is released,
    // but these arrays (and so the pixels the views point at) stay alive until the call returns
    std::vector<py::array> keep;
    keep.reserve(n);
    std::vector<core::ImageView> views;
    views.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        py::handle item = images[i];
        views.push_back(image_view(item, i));
        keep.push_back(py::reinterpret_borrow<py::array>(item));
    }
    std::vector<core::ResizePlan> rp(n);
    auto pv = plans.unchecked<2>();
    for (std::size_t i = 0; i < n; ++i) {
        auto& r = rp[i];
        const auto k = static_cast<py::ssize_t>(i);
        r.resized_h = pv(k, 0); r.resized_w = pv(k, 1);
        r.crop_y = pv(k, 2); r.crop_x = pv(k, 3);
        r.out_y = pv(k, 4); r.out_x = pv(k, 5);
        r.content_h = pv(k, 6); r.content_w = pv(k, 7);
        const bool ok = r.resized_h >= 1 && r.resized_w >= 1 && r.content_h >= 1 && r.content_w >= 1 &&
                        r.crop_y >= 0 && r.crop_x >= 0 && r.out_y >= 0 && r.out_x >= 0 &&
                        static_cast<std::int64_t>(r.crop_y) + r.content_h <= r.resized_h &&
                        static_cast<std::int64_t>(r.crop_x) + r.content_w <= r.resized_w &&
                        static_cast<std::int64_t>(r.out_y) + r.content_h <= dst.height &&
                        static_cast<std::int64_t>(r.out_x) + r.content_w <= dst.width;
        if (!ok)
            throw py::value_error("plans[" + std::to_string(i) + "] does not fit: the crop must lie inside the "
                                  "resized image and the content inside the " + std::to_string(dst.height) + "x" +
                                  std::to_string(dst.width) + " output");
    }
    py::gil_scoped_release release;
    core::preprocess_batch(views, rp, dst, p, threads, &K);
}

}  // namespace

void register_preprocess(py::module_& m) {
    m.def("preprocess_batch", &preprocess_batch, py::arg("images"), py::arg("plans"),
          py::arg("out"), py::arg("layout"), py::arg("interpolation"), py::arg("out_channels"),
          py::arg("channel_map"), py::arg("gray_weights"), py::arg("scale"), py::arg("bias"),
          py::arg("pad"), py::arg("threads"), py::arg("kernels") = "auto",
          "Fused resize / crop / pad / normalise / layout of a batch into `out` (see csrc/core/preprocess/preprocess.h). "
          "`kernels`: the colour row kernel set, 'auto' (the best one here) or one of preprocess_kernel_sets().");
    m.def("preprocess_kernel_sets", &core::preprocess_kernel_sets,
          "Names of the preprocessing kernel sets this build and this CPU offer ('scalar', then 'sse2', 'sse41').");
}

}  // namespace pyimgcls::bindings
