// pyimgcls._core: crop_resize (glue only: convert, check, release the GIL, call core/crop).
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/crop/crop_resize.h"

namespace pyimgcls::bindings {
namespace {

py::array crop_resize(const py::array& image, const carr<double>& boxes, int out_h, int out_w,
                      int interpolation, int layout, std::vector<float> fill, std::vector<float> scale,
                      std::vector<float> bias, int threads, bool out_uint8, const std::string& kernels,
                      const py::object& out_arg) {
    if (!image.dtype().is(py::dtype::of<std::uint8_t>()))
        throw py::type_error("image must be uint8, got " + dtype_str(image));
    if (image.ndim() != 2 && image.ndim() != 3)
        throw py::value_error("image must have shape (H, W) or (H, W, C), got " + shape_str(image));
    core::StridedImage src;
    src.height = static_cast<int>(image.shape(0));
    src.width = static_cast<int>(image.shape(1));
    src.channels = image.ndim() == 3 ? static_cast<int>(image.shape(2)) : 1;
    if (image.shape(0) <= 0 || image.shape(1) <= 0 || src.channels <= 0 || image.shape(0) > INT32_MAX ||
        image.shape(1) > INT32_MAX || src.channels > 64)
        throw py::value_error("image must be non-empty with at most 64 channels, got shape " + shape_str(image));
    src.data = static_cast<const std::uint8_t*>(image.data());
    src.sy = image.strides(0);
    src.sx = image.strides(1);
    src.sc = image.ndim() == 3 ? image.strides(2) : 1;
    if (boxes.ndim() != 2 || boxes.shape(1) != 4)
        throw py::value_error("boxes must have shape (K, 4), got " + shape_str(boxes));
    if (out_h <= 0 || out_w <= 0)
        throw py::value_error("size must be positive, got (" + std::to_string(out_h) + ", " + std::to_string(out_w) + ")");
    if (interpolation < 0 || interpolation > 2)
        throw py::value_error("unknown interpolation " + std::to_string(interpolation));
    if (layout < 0 || layout > 2) throw py::value_error("unknown layout " + std::to_string(layout));
    const auto C = static_cast<std::size_t>(src.channels);
    if (fill.size() != C || scale.size() != C || bias.size() != C)
        throw py::value_error("fill, scale and bias must have one value per channel (" + std::to_string(C) + ")");
    core::CropKernels sel;
    if (kernels == "auto") sel = core::CropKernels::best;
    else if (kernels == "baseline") sel = core::CropKernels::baseline;
    else if (kernels == "avx2" && core::crop_avx2_usable()) sel = core::CropKernels::avx2;
    else
        throw py::value_error("kernels must be 'auto' or one of crop_kernel_sets() (" +
                              std::string(core::crop_avx2_usable() ? "'baseline', 'avx2'" : "'baseline'") + "), got '" +
                              kernels + "'");
    const std::ptrdiff_t K = boxes.shape(0);
    const double* b = boxes.data();
    core::CropParams p;
    p.mode = static_cast<core::CropInterpolation>(interpolation);
    p.layout = static_cast<core::CropLayout>(layout);
    p.out_h = out_h;
    p.out_w = out_w;
    p.kernels = sel;
    if (p.mode == core::CropInterpolation::bilinear_cv2) {
        const std::string problem = core::crop_cv2_problem(src, p.layout);
        if (!problem.empty()) throw py::value_error(problem + ", got an image of shape " + shape_str(image));
    }
    for (std::ptrdiff_t k = 0; k < K; ++k) {
        const std::string problem = core::crop_box_problem(b + 4 * k, p.mode, src.width, src.height);
        if (!problem.empty())
            throw py::value_error("boxes[" + std::to_string(k) + "] " + problem + ", got [" + num_str(b[4 * k]) + ", " +
                                  num_str(b[4 * k + 1]) + ", " + num_str(b[4 * k + 2]) + ", " + num_str(b[4 * k + 3]) + "]");
    }
    std::vector<py::ssize_t> shape;
    const auto c = static_cast<py::ssize_t>(C);
    if (layout == 0) shape = {K, c, out_h, out_w};
    else if (layout == 1) shape = {K, out_h, out_w, c};
    else shape = {K, out_w, out_h, c};
    p.out_u8 = out_uint8;
    py::array out;
    if (out_arg.is_none()) {
        out = out_uint8 ? py::array(py::array_t<std::uint8_t>(shape)) : py::array(py::array_t<float>(shape));
    } else {
        if (!py::isinstance<py::array>(out_arg))
            throw py::type_error("out must be a numpy array, got " + std::string(py::str(py::type::of(out_arg).attr("__name__"))));
        out = py::reinterpret_borrow<py::array>(out_arg);
        const bool dtype_ok = out_uint8 ? out.dtype().is(py::dtype::of<std::uint8_t>()) : out.dtype().is(py::dtype::of<float>());
        if (!dtype_ok)
            throw py::type_error(std::string("out must be ") + (out_uint8 ? "uint8" : "float32") + ", got " + dtype_str(out));
        bool shape_ok = out.ndim() == 4;
        for (int d = 0; shape_ok && d < 4; ++d) shape_ok = out.shape(d) == shape[static_cast<std::size_t>(d)];
        if (!shape_ok || !(out.flags() & py::array::c_style) || !out.writeable())
            throw py::value_error("out must be a writeable C-contiguous array of shape (" + std::to_string(shape[0]) + ", " +
                                  std::to_string(shape[1]) + ", " + std::to_string(shape[2]) + ", " +
                                  std::to_string(shape[3]) + "), got " + shape_str(out) +
                                  (!shape_ok ? "" : !out.writeable() ? " (read-only)" : " (not C-contiguous)"));
        // the kernel reads the image and the boxes while it writes out: no byte may be shared
        const auto* o0 = static_cast<const char*>(out.data());
        const char* o1 = o0 + out.nbytes();
        auto overlaps = [&](const py::array& a) {
            if (a.size() == 0 || out.nbytes() == 0) return false;
            const auto* d = static_cast<const char*>(a.data());
            const char *lo = d, *hi = d + a.itemsize();
            for (py::ssize_t k = 0; k < a.ndim(); ++k) {
                const py::ssize_t span = (a.shape(k) - 1) * a.strides(k);
                if (span < 0) lo += span;
                else hi += span;
            }
            return lo < o1 && o0 < hi;
        };
        if (overlaps(image)) throw py::value_error("out must not share memory with image");
        if (overlaps(boxes)) throw py::value_error("out must not share memory with boxes");
    }
    void* dst = out.mutable_data();
    p.fill = fill.data();
    p.scale = scale.data();
    p.bias = bias.data();
    {
        py::gil_scoped_release release;
        core::crop_resize(src, b, K, dst, p, threads);
    }
    return out;
}

}  // namespace

void register_crop(py::module_& m) {
    m.def("crop_resize", &crop_resize, py::arg("image"), py::arg("boxes").noconvert(), py::arg("out_h"),
          py::arg("out_w"), py::arg("interpolation"), py::arg("layout"), py::arg("fill"), py::arg("scale"),
          py::arg("bias"), py::arg("threads"), py::arg("out_uint8") = false, py::arg("kernels") = "auto", py::arg("out") = py::none(),
          "Box crops of a uint8 image (any strides) resampled to out_h x out_w, out = value * scale + bias, "
          "layout 0 NCHW / 1 NHWC / 2 NWHC; float32, or uint8 (rounded, saturated) with out_uint8 "
          "(see csrc/core/crop/crop_resize.h). `kernels`: the bilinear path's row kernels, 'auto' (the best "
          "here) or one of crop_kernel_sets() (bit-identical outputs). `out`: None (a new array) or a writeable "
          "C-contiguous array of the result's shape and dtype, sharing no memory with image or boxes, written and returned.");
    m.def("crop_kernel_sets", [] {
              std::vector<std::string> names{"baseline"};
              if (core::crop_avx2_usable()) names.emplace_back("avx2");
              return names;
          },
          "Names of the crop_resize row kernel sets this build and this CPU offer ('baseline', then 'avx2').");
}

}  // namespace pyimgcls::bindings
