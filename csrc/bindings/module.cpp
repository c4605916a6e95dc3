// pyimgcls._core: glue only. Convert arrays, check shapes, release the GIL, call csrc/core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/metrics/coco.h"
#include "core/metrics/metrics.h"
#include "core/boxes/nms.h"
#include "core/preprocess/preprocess.h"
#include "core/common/parallel.h"
#include "core/boxes/yolo.h"

namespace py = pybind11;
namespace core = pyimgcls::core;

namespace {

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// ---------------------------------------------------------------- preprocessing
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
    const bool pixel_ok = a.strides(1) == item * v.channels && (a.ndim() == 2 || a.strides(2) == item);
    if (!pixel_ok || a.strides(0) % item != 0 || a.strides(0) < 0)
        throw py::value_error("images[" + std::to_string(i) +
                              "] must have contiguous pixels (np.ascontiguousarray)");
    v.row_stride = a.strides(0) / item;
    v.data = a.data();
    return v;
}

void preprocess_batch(const py::list& images, const py::array_t<std::int32_t, py::array::c_style>& plans,
                      py::array out, int layout, int interpolation, int out_channels,
                      std::vector<int> channel_map, std::vector<float> gray_weights,
                      std::vector<float> scale, std::vector<float> bias, std::vector<float> pad,
                      int threads) {
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
    if (interpolation < 0 || interpolation > 3) throw py::value_error("unknown interpolation");

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
    std::vector<core::ImageView> views;
    views.reserve(n);
    for (std::size_t i = 0; i < n; ++i) views.push_back(image_view(images[i], i));
    std::vector<core::ResizePlan> rp(n);
    auto pv = plans.unchecked<2>();
    for (std::size_t i = 0; i < n; ++i) {
        auto& r = rp[i];
        const auto k = static_cast<py::ssize_t>(i);
        r.resized_h = pv(k, 0); r.resized_w = pv(k, 1);
        r.crop_y = pv(k, 2); r.crop_x = pv(k, 3);
        r.out_y = pv(k, 4); r.out_x = pv(k, 5);
        r.content_h = pv(k, 6); r.content_w = pv(k, 7);
    }
    py::gil_scoped_release release;
    core::preprocess_batch(views, rp, dst, p, threads);
}

void register_preprocess(py::module_& m) {
    m.def("preprocess_batch", &preprocess_batch, py::arg("images"), py::arg("plans"),
          py::arg("out"), py::arg("layout"), py::arg("interpolation"), py::arg("out_channels"),
          py::arg("channel_map"), py::arg("gray_weights"), py::arg("scale"), py::arg("bias"),
          py::arg("pad"), py::arg("threads"),
          "Fused resize / crop / pad / normalise / layout of a batch into `out` (see csrc/core/preprocess.h).");
}

// ---------------------------------------------------------------- NMS and boxes
template <typename T>
using carr = py::array_t<T, py::array::c_style>;

void check_boxes(const py::array& boxes, const char* name) {
    if (boxes.ndim() != 2 || boxes.shape(1) != 4)
        throw py::value_error(std::string(name) + " must have shape (N, 4), got " + shape_str(boxes));
}

void check_threshold(double v, const char* name) {
    if (!(v >= 0.0 && v <= 1.0))
        throw py::value_error(std::string(name) + " must be in [0, 1], got " + std::to_string(v));
}

template <typename T>
void check_scores(const py::array& boxes, const py::array& scores) {
    if (scores.ndim() != 1 || scores.shape(0) != boxes.shape(0))
        throw py::value_error("scores must have shape (" + std::to_string(boxes.shape(0)) + ",), got " +
                              shape_str(scores));
}

py::array_t<std::int64_t> to_array(const std::vector<std::int64_t>& v) {
    py::array_t<std::int64_t> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

core::NMSOptions nms_options(double iou, std::optional<double> score_thr, std::optional<std::int64_t> max_out) {
    check_threshold(iou, "iou_threshold");
    core::NMSOptions o;
    o.iou_threshold = iou;
    if (score_thr) {
        if (!std::isfinite(*score_thr)) throw py::value_error("score_threshold must be finite");
        o.use_score_threshold = true;
        o.score_threshold = *score_thr;
    }
    if (max_out) {
        if (*max_out < 0) throw py::value_error("max_output must be >= 0, got " + std::to_string(*max_out));
        o.max_output = *max_out;
    }
    return o;
}

template <typename T>
py::array_t<std::int64_t> nms_t(const carr<T>& boxes, const carr<T>& scores, double iou,
                                std::optional<double> score_thr, std::optional<std::int64_t> max_out) {
    check_boxes(boxes, "boxes");
    check_scores<T>(boxes, scores);
    auto opt = nms_options(iou, score_thr, max_out);
    std::vector<std::int64_t> keep;
    {
        py::gil_scoped_release release;
        core::check_finite(boxes.data(), boxes.size(), "boxes", 4);
        core::check_finite(scores.data(), scores.size(), "scores", 1);
        keep = core::nms(boxes.data(), scores.data(), boxes.shape(0), opt);
    }
    return to_array(keep);
}

template <typename T>
py::array_t<std::int64_t> batched_nms_t(const carr<T>& boxes, const carr<T>& scores,
                                        const carr<std::int64_t>& classes, double iou,
                                        std::optional<double> score_thr, std::optional<std::int64_t> max_out,
                                        int threads) {
    check_boxes(boxes, "boxes");
    check_scores<T>(boxes, scores);
    if (classes.ndim() != 1 || classes.shape(0) != boxes.shape(0))
        throw py::value_error("class_ids must have shape (" + std::to_string(boxes.shape(0)) + ",), got " +
                              shape_str(classes));
    auto opt = nms_options(iou, score_thr, max_out);
    std::vector<std::int64_t> keep;
    {
        py::gil_scoped_release release;
        core::check_finite(boxes.data(), boxes.size(), "boxes", 4);
        core::check_finite(scores.data(), scores.size(), "scores", 1);
        keep = core::batched_nms(boxes.data(), scores.data(), classes.data(), boxes.shape(0), opt, threads);
    }
    return to_array(keep);
}

template <typename T>
py::tuple soft_nms_t(const carr<T>& boxes, const carr<T>& scores, int method, double sigma, double iou,
                     double score_thr) {
    check_boxes(boxes, "boxes");
    check_scores<T>(boxes, scores);
    check_threshold(iou, "iou_threshold");
    if (!(sigma > 0.0) || !std::isfinite(sigma)) throw py::value_error("sigma must be > 0, got " + std::to_string(sigma));
    if (!std::isfinite(score_thr)) throw py::value_error("score_threshold must be finite");
    std::vector<std::int64_t> keep;
    std::vector<T> ns;
    {
        py::gil_scoped_release release;
        core::check_finite(boxes.data(), boxes.size(), "boxes", 4);
        core::check_finite(scores.data(), scores.size(), "scores", 1);
        core::soft_nms(boxes.data(), scores.data(), boxes.shape(0), method, sigma, iou, score_thr, keep, ns);
    }
    py::array_t<T> s(static_cast<py::ssize_t>(ns.size()));
    std::copy(ns.begin(), ns.end(), s.mutable_data());
    return py::make_tuple(to_array(keep), s);
}

template <typename T>
py::array_t<T> box_iou_t(const carr<T>& a, const carr<T>& b, int threads) {
    check_boxes(a, "boxes1");
    check_boxes(b, "boxes2");
    py::array_t<T> out({a.shape(0), b.shape(0)});
    {
        py::gil_scoped_release release;
        core::box_iou(a.data(), a.shape(0), b.data(), b.shape(0), out.mutable_data(), threads);
    }
    return out;
}

py::list decode_yolo(const carr<float>& output, int layout, float conf, double iou, std::int64_t max_det,
                     std::int64_t max_candidates, bool agnostic, bool multi_label, int threads) {
    if (output.ndim() != 3)
        throw py::value_error("output must have shape (B, N, 5 + C) for v5 or (B, 4 + C, N) for v8, got " +
                              shape_str(output));
    check_threshold(iou, "iou_threshold");
    if (!std::isfinite(conf)) throw py::value_error("conf_threshold must be finite");
    if (max_det < 0) throw py::value_error("max_det must be >= 0");
    core::YoloOptions o;
    o.layout = layout == 0 ? core::YoloLayout::v5 : core::YoloLayout::v8;
    o.conf_threshold = conf;
    o.iou_threshold = iou;
    o.max_det = max_det;
    o.max_candidates = max_candidates;
    o.class_agnostic = agnostic;
    o.multi_label = multi_label;
    const std::int64_t B = output.shape(0);
    std::int64_t n, nc;
    if (o.layout == core::YoloLayout::v5) {
        n = output.shape(1);
        nc = output.shape(2) - 5;
        if (nc < 1) throw py::value_error("v5 output needs at least 6 values per anchor, got shape " + shape_str(output));
    } else {
        nc = output.shape(1) - 4;
        n = output.shape(2);
        if (nc < 1) throw py::value_error("v8 output needs at least 5 rows, got shape " + shape_str(output));
    }
    std::vector<core::YoloDetections> dets;
    {
        py::gil_scoped_release release;
        core::check_finite(output.data(), output.size(), "output", 1);
        core::decode_yolo_batch(output.data(), B, n, nc, o, threads, dets);
    }
    py::list result;
    for (auto& d : dets) {
        const auto k = static_cast<py::ssize_t>(d.confidence.size());
        py::array_t<float> xyxy({k, py::ssize_t{4}});
        py::array_t<float> conf_a(k);
        py::array_t<std::int32_t> cls_a(k);
        std::copy(d.xyxy.begin(), d.xyxy.end(), xyxy.mutable_data());
        std::copy(d.confidence.begin(), d.confidence.end(), conf_a.mutable_data());
        std::copy(d.class_id.begin(), d.class_id.end(), cls_a.mutable_data());
        result.append(py::make_tuple(xyxy, conf_a, cls_a));
    }
    return result;
}

void register_ops(py::module_& m) {
    m.def("nms", &nms_t<float>, py::arg("boxes").noconvert(), py::arg("scores").noconvert(), py::arg("iou_threshold"),
          py::arg("score_threshold"), py::arg("max_output"));
    m.def("nms", &nms_t<double>, py::arg("boxes").noconvert(), py::arg("scores").noconvert(), py::arg("iou_threshold"),
          py::arg("score_threshold"), py::arg("max_output"));
    m.def("batched_nms", &batched_nms_t<float>, py::arg("boxes").noconvert(), py::arg("scores").noconvert(),
          py::arg("class_ids").noconvert(), py::arg("iou_threshold"), py::arg("score_threshold"), py::arg("max_output"),
          py::arg("threads"));
    m.def("batched_nms", &batched_nms_t<double>, py::arg("boxes").noconvert(), py::arg("scores").noconvert(),
          py::arg("class_ids").noconvert(), py::arg("iou_threshold"), py::arg("score_threshold"), py::arg("max_output"),
          py::arg("threads"));
    m.def("soft_nms", &soft_nms_t<float>, py::arg("boxes").noconvert(), py::arg("scores").noconvert(), py::arg("method"),
          py::arg("sigma"), py::arg("iou_threshold"), py::arg("score_threshold"));
    m.def("soft_nms", &soft_nms_t<double>, py::arg("boxes").noconvert(), py::arg("scores").noconvert(), py::arg("method"),
          py::arg("sigma"), py::arg("iou_threshold"), py::arg("score_threshold"));
    m.def("box_iou", &box_iou_t<float>, py::arg("boxes1").noconvert(), py::arg("boxes2").noconvert(), py::arg("threads"));
    m.def("box_iou", &box_iou_t<double>, py::arg("boxes1").noconvert(), py::arg("boxes2").noconvert(), py::arg("threads"));
    m.def("decode_yolo", &decode_yolo, py::arg("output").noconvert(), py::arg("layout"), py::arg("conf_threshold"),
          py::arg("iou_threshold"), py::arg("max_det"), py::arg("max_candidates"), py::arg("class_agnostic"),
          py::arg("multi_label"), py::arg("threads"));
}

// ---------------------------------------------------------------- metrics
void confusion_update_py(const carr<std::int64_t>& y_true, const carr<std::int64_t>& y_pred,
                         py::array_t<std::int64_t, py::array::c_style> matrix) {
    if (y_true.ndim() != 1 || y_pred.ndim() != 1 || y_true.shape(0) != y_pred.shape(0))
        throw py::value_error("y_true and y_pred must be 1-d of the same length, got " + shape_str(y_true) +
                              " and " + shape_str(y_pred));
    if (matrix.ndim() != 2 || matrix.shape(0) != matrix.shape(1))
        throw py::value_error("matrix must be square, got " + shape_str(matrix));
    auto* m = matrix.mutable_data();
    py::gil_scoped_release release;
    core::confusion_update(y_true.data(), y_pred.data(), y_true.shape(0), matrix.shape(0), m);
}

template <typename T>
std::int64_t top_k_hits_t(const carr<std::int64_t>& y_true, const carr<T>& scores, std::int64_t k) {
    if (scores.ndim() != 2 || y_true.ndim() != 1 || y_true.shape(0) != scores.shape(0))
        throw py::value_error("scores must have shape (" + std::to_string(y_true.shape(0)) + ", C), got " +
                              shape_str(scores));
    py::gil_scoped_release release;
    return core::top_k_hits(y_true.data(), scores.data(), scores.shape(0), scores.shape(1), k);
}

template <typename T>
py::tuple binary_curve_t(const carr<T>& scores, const carr<std::uint8_t>& truth) {
    if (scores.ndim() != 1 || truth.ndim() != 1 || scores.shape(0) != truth.shape(0))
        throw py::value_error("y_true and scores must be 1-d of the same length, got " + shape_str(truth) + " and " +
                              shape_str(scores));
    std::vector<T> thr;
    std::vector<double> tps, fps;
    {
        py::gil_scoped_release release;
        core::binary_curve(scores.data(), truth.data(), scores.shape(0), 1, thr, tps, fps);
    }
    return py::make_tuple(py::array_t<T>(thr.size(), thr.data()), py::array_t<double>(tps.size(), tps.data()),
                          py::array_t<double>(fps.size(), fps.data()));
}

// Per column of (N, L) scores / truth: (ap[L], auc[L]); threaded over columns.
template <typename T>
py::tuple ap_auc_columns_t(const carr<T>& scores, const carr<std::uint8_t>& truth, int threads) {
    if (scores.ndim() != 2 || truth.ndim() != 2 || scores.shape(0) != truth.shape(0) || scores.shape(1) != truth.shape(1))
        throw py::value_error("y_true and scores must have the same (N, L) shape, got " + shape_str(truth) + " and " +
                              shape_str(scores));
    const std::int64_t n = scores.shape(0), L = scores.shape(1);
    py::array_t<double> ap(L), auc(L);
    double* pa = ap.mutable_data();
    double* pu = auc.mutable_data();
    const T* s = scores.data();
    const std::uint8_t* t = truth.data();
    {
        py::gil_scoped_release release;
        core::ap_auc_columns(s, t, n, L, threads, pa, pu);
    }
    return py::make_tuple(ap, auc);
}

py::tuple coco_evaluate_py(const carr<std::int64_t>& gt_begin, const carr<double>& gt_box, const carr<std::int64_t>& gt_cat,
                           const carr<std::uint8_t>& gt_crowd, const carr<double>& gt_area,
                           const carr<std::int64_t>& dt_begin, const carr<double>& dt_box,
                           const carr<std::int64_t>& dt_cat, const carr<double>& dt_score,
                           const carr<std::int64_t>& cat_ids, const carr<double>& iou_thrs,
                           const carr<double>& rec_thrs, const carr<double>& area_rngs,
                           const carr<std::int64_t>& max_dets, int threads) {
    core::CocoData d;
    auto vec = [](const auto& a) { return std::vector<std::remove_cv_t<std::remove_reference_t<decltype(*a.data())>>>(a.data(), a.data() + a.size()); };
    d.gt_begin = vec(gt_begin);
    d.dt_begin = vec(dt_begin);
    d.gt_box = vec(gt_box);
    d.gt_cat = vec(gt_cat);
    d.gt_crowd = vec(gt_crowd);
    d.gt_area = vec(gt_area);
    d.dt_box = vec(dt_box);
    d.dt_cat = vec(dt_cat);
    d.dt_score = vec(dt_score);
    const std::size_t ng = d.gt_cat.size(), nd = d.dt_cat.size();
    if (d.gt_box.size() != 4 * ng || d.gt_crowd.size() != ng || d.gt_area.size() != ng || d.dt_box.size() != 4 * nd ||
        d.dt_score.size() != nd || d.gt_begin.size() != d.dt_begin.size() || d.gt_begin.empty() ||
        d.gt_begin.back() != static_cast<std::int64_t>(ng) || d.dt_begin.back() != static_cast<std::int64_t>(nd))
        throw py::value_error("coco_evaluate: inconsistent array sizes");
    core::CocoParams p;
    p.iou_thrs = vec(iou_thrs);
    p.rec_thrs = vec(rec_thrs);
    p.max_dets = vec(max_dets);
    if (area_rngs.ndim() != 2 || area_rngs.shape(1) != 2) throw py::value_error("area_rngs must be (A, 2)");
    for (py::ssize_t i = 0; i < area_rngs.shape(0); ++i) p.area_rngs.push_back({area_rngs.at(i, 0), area_rngs.at(i, 1)});
    std::vector<std::int64_t> cats = vec(cat_ids);
    const py::ssize_t T = p.iou_thrs.size(), R = p.rec_thrs.size(), K = cats.size(), A = p.area_rngs.size(),
                      M = p.max_dets.size();
    py::array_t<double> precision({T, R, K, A, M});
    py::array_t<double> recall({T, K, A, M});
    double* pp = precision.mutable_data();
    double* pr = recall.mutable_data();
    {
        py::gil_scoped_release release;
        core::coco_evaluate(d, cats, p, threads, pp, pr);
    }
    return py::make_tuple(precision, recall);
}

void register_metrics(py::module_& m) {
    m.def("confusion_update", &confusion_update_py, py::arg("y_true").noconvert(), py::arg("y_pred").noconvert(),
          py::arg("matrix").noconvert());
    m.def("top_k_hits", &top_k_hits_t<float>, py::arg("y_true").noconvert(), py::arg("scores").noconvert(), py::arg("k"));
    m.def("top_k_hits", &top_k_hits_t<double>, py::arg("y_true").noconvert(), py::arg("scores").noconvert(), py::arg("k"));
    m.def("binary_curve", &binary_curve_t<float>, py::arg("scores").noconvert(), py::arg("truth").noconvert());
    m.def("binary_curve", &binary_curve_t<double>, py::arg("scores").noconvert(), py::arg("truth").noconvert());
    m.def("ap_auc_columns", &ap_auc_columns_t<float>, py::arg("scores").noconvert(), py::arg("truth").noconvert(),
          py::arg("threads"));
    m.def("ap_auc_columns", &ap_auc_columns_t<double>, py::arg("scores").noconvert(), py::arg("truth").noconvert(),
          py::arg("threads"));
    m.def("coco_evaluate", &coco_evaluate_py, py::arg("gt_begin"), py::arg("gt_box"), py::arg("gt_cat"),
          py::arg("gt_crowd"), py::arg("gt_area"), py::arg("dt_begin"), py::arg("dt_box"), py::arg("dt_cat"),
          py::arg("dt_score"), py::arg("cat_ids"), py::arg("iou_thrs"), py::arg("rec_thrs"), py::arg("area_rngs"),
          py::arg("max_dets"), py::arg("threads"));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyimgcls native core (private; use the pyimgcls package)";
    register_preprocess(m);
    register_ops(m);
    register_metrics(m);
}
