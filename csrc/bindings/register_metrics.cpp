// pyimgcls._core: confusion counts, top-k, curves, per-label AP / AUC, COCO evaluation (glue only:
// convert, check, release the GIL, call core/metrics).
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/metrics/coco.h"
#include "core/metrics/metrics.h"

namespace pyimgcls::bindings {
namespace {

// Counts into matrix (C, C). The labels are copied first: they may share memory with the matrix (a
// view of it), and they must be counted as they were checked, whatever writes to them meanwhile.
void confusion_update_py(const carr<std::int64_t>& y_true, const carr<std::int64_t>& y_pred,
                         py::array_t<std::int64_t, py::array::c_style> matrix) {
    if (y_true.ndim() != 1 || y_pred.ndim() != 1 || y_true.shape(0) != y_pred.shape(0))
        throw py::value_error("y_true and y_pred must be 1-d of the same length, got " + shape_str(y_true) +
                              " and " + shape_str(y_pred));
    if (matrix.ndim() != 2 || matrix.shape(0) != matrix.shape(1))
        throw py::value_error("matrix must be square, got " + shape_str(matrix));
    const std::int64_t n = y_true.shape(0), C = matrix.shape(0);
    std::int64_t* m = matrix.mutable_data();  // throws when read-only
    const std::vector<std::int64_t> t(y_true.data(), y_true.data() + n), p(y_pred.data(), y_pred.data() + n);
    py::gil_scoped_release release;
    core::confusion_update(t.data(), p.data(), n, C, m);  // checks every label before counting
}

// k >= 1; k >= C counts every row (scikit-learn's perfect score). Labels are checked by the core.
template <typename T>
std::int64_t top_k_hits_t(const carr<std::int64_t>& y_true, const carr<T>& scores, std::int64_t k) {
    check_1d(y_true, "y_true");
    if (scores.ndim() != 2 || y_true.shape(0) != scores.shape(0))
        throw py::value_error("scores must have shape (" + std::to_string(y_true.shape(0)) + ", C), got " +
                              shape_str(scores));
    if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
    const std::int64_t* t = y_true.data();
    const T* s = scores.data();
    const std::int64_t n = scores.shape(0), c = scores.shape(1);
    py::gil_scoped_release release;
    const std::int64_t bad = first_non_finite(s, n * c);
    if (bad >= 0)
        throw std::invalid_argument("scores must be finite, got " + num_str(s[bad]) + " at row " +
                                    std::to_string(bad / c) + ", column " + std::to_string(bad % c));
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

template <typename T>
std::vector<T> to_vector(const carr<T>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

// One value per box: shape (n,).
void check_per_box(const py::array& a, std::size_t n, const char* name, const char* of, const char* what) {
    if (a.ndim() != 1 || static_cast<std::size_t>(a.shape(0)) != n)
        throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",) (one value per " +
                              what + ", len(" + of + ")), got " + shape_str(a));
}

// Four values per box, xywh: shape (4 n,) or (n, 4).
void check_boxes(const py::array& a, std::size_t n, const char* name, const char* of, const char* what) {
    const bool flat = a.ndim() == 1 && static_cast<std::size_t>(a.shape(0)) == 4 * n;
    const bool rows = a.ndim() == 2 && static_cast<std::size_t>(a.shape(0)) == n && a.shape(1) == 4;
    if (!flat && !rows)
        throw py::value_error(std::string(name) + " must hold 4 values per " + what + ", shape (" +
                              std::to_string(4 * n) + ",) or (" + std::to_string(n) + ", 4) for len(" + of +
                              ") = " + std::to_string(n) + ", got shape " + shape_str(a));
}

// Every input is checked with the GIL held, on private copies (what another thread writes to the arrays
// afterwards cannot reach the kernel): shapes here, offsets and values by core::coco_check.
py::tuple coco_evaluate_py(const carr<std::int64_t>& gt_begin, const carr<double>& gt_box, const carr<std::int64_t>& gt_cat,
                           const carr<std::uint8_t>& gt_crowd, const carr<double>& gt_area,
                           const carr<std::int64_t>& gt_id, const carr<std::int64_t>& dt_begin,
                           const carr<double>& dt_box, const carr<std::int64_t>& dt_cat, const carr<double>& dt_score,
                           const carr<std::int64_t>& cat_ids, const carr<double>& iou_thrs,
                           const carr<double>& rec_thrs, const carr<double>& area_rngs,
                           const carr<std::int64_t>& max_dets, bool zero_id_unmatched, int threads) {
    check_1d(gt_begin, "gt_begin");
    check_1d(dt_begin, "dt_begin");
    check_1d(gt_cat, "gt_cat");
    check_1d(dt_cat, "dt_cat");
    const std::size_t ng = static_cast<std::size_t>(gt_cat.shape(0)), nd = static_cast<std::size_t>(dt_cat.shape(0));
    check_boxes(gt_box, ng, "gt_box", "gt_cat", "ground truth");
    check_per_box(gt_crowd, ng, "gt_crowd", "gt_cat", "ground truth");
    check_per_box(gt_area, ng, "gt_area", "gt_cat", "ground truth");
    check_per_box(gt_id, ng, "gt_id", "gt_cat", "ground truth");
    check_boxes(dt_box, nd, "dt_box", "dt_cat", "detection");
    check_per_box(dt_score, nd, "dt_score", "dt_cat", "detection");
    check_1d(cat_ids, "cat_ids");
    check_1d(iou_thrs, "iou_thrs");
    check_1d(rec_thrs, "rec_thrs");
    check_1d(max_dets, "max_dets");
    if (area_rngs.ndim() != 2 || area_rngs.shape(1) != 2)
        throw py::value_error("area_rngs must have shape (A, 2), got " + shape_str(area_rngs));
    core::CocoData d;
    d.gt_begin = to_vector(gt_begin);
    d.dt_begin = to_vector(dt_begin);
    d.gt_box = to_vector(gt_box);
    d.gt_cat = to_vector(gt_cat);
    d.gt_crowd = to_vector(gt_crowd);
    d.gt_area = to_vector(gt_area);
    d.gt_id = to_vector(gt_id);
    d.dt_box = to_vector(dt_box);
    d.dt_cat = to_vector(dt_cat);
    d.dt_score = to_vector(dt_score);
    core::CocoParams p;
    p.iou_thrs = to_vector(iou_thrs);
    p.rec_thrs = to_vector(rec_thrs);
    p.max_dets = to_vector(max_dets);
    p.zero_id_unmatched = zero_id_unmatched;
    const double* ar = area_rngs.data();
    for (py::ssize_t i = 0; i < area_rngs.shape(0); ++i) p.area_rngs.push_back({ar[2 * i], ar[2 * i + 1]});
    const std::vector<std::int64_t> cats = to_vector(cat_ids);
    core::coco_check(d, cats, p);  // ValueError naming the argument, before the GIL is released
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
