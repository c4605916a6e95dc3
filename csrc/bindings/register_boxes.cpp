// pyimgcls._core: NMS, soft-NMS, box IoU, YOLO decoding (glue only: convert, check, release the GIL,
// call core/boxes).
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/boxes/nms.h"
#include "core/boxes/yolo.h"

namespace pyimgcls::bindings {
namespace {

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
    const T* b = boxes.data();
    const T* s = scores.data();
    const std::int64_t n = boxes.shape(0);
    std::vector<std::int64_t> keep;
    {
        py::gil_scoped_release release;
        core::check_finite(b, 4 * n, "boxes", 4);
        core::check_finite(s, n, "scores", 1);
        keep = core::nms(b, s, n, opt);
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
    const T* b = boxes.data();
    const T* s = scores.data();
    const std::int64_t* c = classes.data();  // any int64 ids: the core renumbers them by sorting
    const std::int64_t n = boxes.shape(0);
    std::vector<std::int64_t> keep;
    {
        py::gil_scoped_release release;
        core::check_finite(b, 4 * n, "boxes", 4);
        core::check_finite(s, n, "scores", 1);
        keep = core::batched_nms(b, s, c, n, opt, threads);
    }
    return to_array(keep);
}

template <typename T>
py::tuple soft_nms_t(const carr<T>& boxes, const carr<T>& scores, int method, double sigma, double iou,
                     double score_thr) {
    check_boxes(boxes, "boxes");
    check_scores<T>(boxes, scores);
    if (method != 0 && method != 1)
        throw py::value_error("method must be 0 (linear) or 1 (gaussian), got " + std::to_string(method));
    check_threshold(iou, "iou_threshold");
    if (!(sigma > 0.0) || !std::isfinite(sigma)) throw py::value_error("sigma must be > 0, got " + std::to_string(sigma));
    if (!std::isfinite(score_thr)) throw py::value_error("score_threshold must be finite");
    const T* b = boxes.data();
    const T* s = scores.data();
    const std::int64_t n = boxes.shape(0);
    std::vector<std::int64_t> keep;
    std::vector<T> ns;
    {
        py::gil_scoped_release release;
        core::check_finite(b, 4 * n, "boxes", 4);
        core::check_finite(s, n, "scores", 1);
        core::soft_nms(b, s, n, method, sigma, iou, score_thr, keep, ns);
    }
    py::array_t<T> new_scores(static_cast<py::ssize_t>(ns.size()));
    std::copy(ns.begin(), ns.end(), new_scores.mutable_data());
    return py::make_tuple(to_array(keep), new_scores);
}

template <typename T>
py::array_t<T> box_iou_t(const carr<T>& a, const carr<T>& b, int threads) {
    check_boxes(a, "boxes1");
    check_boxes(b, "boxes2");
    const py::ssize_t n = a.shape(0), m = b.shape(0);
    const T* pa = a.data();
    const T* pb = b.data();
    py::array_t<T> out({n, m});
    T* po = out.mutable_data();
    {
        py::gil_scoped_release release;
        core::box_iou(pa, n, pb, m, po, threads);
    }
    return out;
}

py::list decode_yolo(const carr<float>& output, int layout, float conf, double iou, std::int64_t max_det,
                     std::int64_t max_candidates, bool agnostic, bool multi_label, int threads) {
    if (output.ndim() != 3)
        throw py::value_error("output must have shape (B, N, 5 + C) for v5 or (B, 4 + C, N) for v8, got " +
                              shape_str(output));
    if (layout != 0 && layout != 1)
        throw py::value_error("layout must be 0 (v5) or 1 (v8), got " + std::to_string(layout));
    check_threshold(iou, "iou_threshold");
    if (!std::isfinite(conf)) throw py::value_error("conf_threshold must be finite");
    if (max_det < 0) throw py::value_error("max_det must be >= 0, got " + std::to_string(max_det));
    if (max_candidates < 0)
        throw py::value_error("max_candidates must be >= 0, got " + std::to_string(max_candidates));
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
    if (nc > INT32_MAX)  // class ids are int32
        throw py::value_error("output has " + std::to_string(nc) + " classes, more than 2^31 - 1");
    const float* data = output.data();
    const std::int64_t size = output.size();
    std::vector<core::YoloDetections> dets;
    {
        py::gil_scoped_release release;
        core::check_finite(data, size, "output", 1);
        core::decode_yolo_batch(data, B, n, nc, o, threads, dets);
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

}  // namespace

void register_boxes(py::module_& m) {
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

}  // namespace pyimgcls::bindings
