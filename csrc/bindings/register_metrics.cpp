// pyimgcls._core: confusion counts, top-k, curves, per-label AP / AUC, COCO evaluation (glue only:
// convert, check, release the GIL, call core/metrics).
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings/common.h"
#include "core/metrics/coco.h"
#include "core/metrics/metrics.h"

namespace pyimgcls::bindings {
namespace {

void confusion_update_py(const carr<std::int64_t>& y_true, const carr<std::int64_t>& y_pred,
                         py::array_t<std::int64_t, py::array::c_style> matrix) {
    if (y_true.ndim() != 1 || y_pred.ndim() != 1 || y_true.shape(0) != y_pred.shape(0))
        throw py::value_error("y_true and y_pred must be 1-d of the same length, got " + shape_str(y_true) +
                              " and " + shape_str(y_pred));
    if (matrix.ndim() != 2 || matrix.shape(0) != matrix.shape(1))
        throw py::value_error("matrix must be square, got " + shape_str(matrix));
    const std::int64_t n = y_true.shape(0), C = matrix.shape(0);
    const std::int64_t* t = y_true.data();
    const std::int64_t* p = y_pred.data();
    std::int64_t* m = matrix.mutable_data();  // throws when read-only
    py::gil_scoped_release release;
    core::confusion_update(t, p, n, C, m);
}

template <typename T>
std::int64_t top_k_hits_t(const carr<std::int64_t>& y_true, const carr<T>& scores, std::int64_t k) {
    if (scores.ndim() != 2 || y_true.ndim() != 1 || y_true.shape(0) != scores.shape(0))
        throw py::value_error("scores must have shape (" + std::to_string(y_true.shape(0)) + ", C), got " +
                              shape_str(scores));
    const std::int64_t* t = y_true.data();
    const T* s = scores.data();
    const std::int64_t n = scores.shape(0), c = scores.shape(1);
    py::gil_scoped_release release;
    return core::top_k_hits(t, s, n, c, k);
}

template <typename T>
py::tuple binary_curve_t(const carr<T>& scores, const carr<std::uint8_t>& truth) {
    if (scores.ndim() != 1 || truth.ndim() != 1 || scores.shape(0) != truth.shape(0))
        throw py::value_error("y_true and scores must be 1-d of the same length, got " + shape_str(truth) + " and " +
                              shape_str(scores));
    const T* s = scores.data();
    const std::uint8_t* t = truth.data();
    const std::int64_t n = scores.shape(0);
    std::vector<T> thr;
    std::vector<double> tps, fps;
    {
        py::gil_scoped_release release;
        core::binary_curve(s, t, n, 1, thr, tps, fps);
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
                           const carr<std::int64_t>& gt_id, const carr<std::int64_t>& dt_begin,
                           const carr<double>& dt_box, const carr<std::int64_t>& dt_cat, const carr<double>& dt_score,
                           const carr<std::int64_t>& cat_ids, const carr<double>& iou_thrs,
                           const carr<double>& rec_thrs, const carr<double>& area_rngs,
                           const carr<std::int64_t>& max_dets, bool zero_id_unmatched, int threads) {
    core::CocoData d;
    auto vec = [](const auto& a) { return std::vector<std::remove_cv_t<std::remove_reference_t<decltype(*a.data())>>>(a.data(), a.data() + a.size()); };
    d.gt_begin = vec(gt_begin);
    d.dt_begin = vec(dt_begin);
    d.gt_box = vec(gt_box);
    d.gt_cat = vec(gt_cat);
    d.gt_crowd = vec(gt_crowd);
    d.gt_area = vec(gt_area);
    d.gt_id = vec(gt_id);
    d.dt_box = vec(dt_box);
    d.dt_cat = vec(dt_cat);
    d.dt_score = vec(dt_score);
    const std::size_t ng = d.gt_cat.size(), nd = d.dt_cat.size();
    if (d.gt_box.size() != 4 * ng || d.gt_crowd.size() != ng || d.gt_area.size() != ng || d.gt_id.size() != ng ||
        d.dt_box.size() != 4 * nd || d.dt_score.size() != nd || d.gt_begin.size() != d.dt_begin.size() || d.gt_begin.empty() ||
        d.gt_begin.back() != static_cast<std::int64_t>(ng) || d.dt_begin.back() != static_cast<std::int64_t>(nd))
        throw py::value_error("coco_evaluate: inconsistent array sizes");
    core::CocoParams p;
    p.iou_thrs = vec(iou_thrs);
    p.rec_thrs = vec(rec_thrs);
    p.max_dets = vec(max_dets);
    p.zero_id_unmatched = zero_id_unmatched;
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

}  // namespace

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
          py::arg("gt_crowd"), py::arg("gt_area"), py::arg("gt_id"), py::arg("dt_begin"), py::arg("dt_box"),
          py::arg("dt_cat"), py::arg("dt_score"), py::arg("cat_ids"), py::arg("iou_thrs"), py::arg("rec_thrs"), py::arg("area_rngs"),
          py::arg("max_dets"), py::arg("zero_id_unmatched"), py::arg("threads"));
}

}  // namespace pyimgcls::bindings
