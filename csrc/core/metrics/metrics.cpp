// Classification and ranking metric kernels (see metrics.h for indices and conventions): confusion
// counts (labels validated before anything is added), top-k hits by counting the classes ranked
// before the true one, the binary curve from a stable radix sort of desc_key(score) and one walk over
// groups of equal scores. Per-label AP / AUC is the counting kernel of ap_count.cpp.
#include "core/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/metrics/ap_count.h"
#include "core/common/radix.h"

namespace pyimgcls::core {

void confusion_update(const std::int64_t* y_true, const std::int64_t* y_pred, std::int64_t n,
                      std::int64_t C, std::int64_t* matrix) {
    // validate everything first: a bad batch adds nothing
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t t = y_true[i], p = y_pred[i];
        if (t < 0 || t >= C || p < 0 || p >= C) {
            const bool bad_t = t < 0 || t >= C;
            throw std::invalid_argument(std::string(bad_t ? "y_true" : "y_pred") + " has label " +
                                        std::to_string(bad_t ? t : p) + " at index " + std::to_string(i) +
                                        ", outside [0, " + std::to_string(C) + ")");
        }
    }
    for (std::int64_t i = 0; i < n; ++i) ++matrix[y_true[i] * C + y_pred[i]];
}

template <typename T>
std::int64_t top_k_hits(const std::int64_t* y_true, const T* scores, std::int64_t n, std::int64_t c,
                        std::int64_t k) {
    std::int64_t hits = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const T* row = scores + i * c;
        const std::int64_t t = y_true[i];
        if (t < 0 || t >= c)
            throw std::invalid_argument("y_true has label " + std::to_string(t) + " at index " + std::to_string(i) +
                                        ", outside [0, " + std::to_string(c) + ")");
        const T st = row[t];
        std::int64_t rank = 0;  // classes ranked before t
        for (std::int64_t j = 0; j < c; ++j) rank += (row[j] > st) | ((row[j] == st) & (j > t));
        hits += rank < k;
    }
    return hits;
}

namespace {

template <typename T>
void check_score(T s, std::int64_t row, std::int64_t col) {
    if (!std::isfinite(s))
        throw std::invalid_argument("scores must be finite, found " + std::to_string(double(s)) + " at row " +
                                    std::to_string(row) + (col >= 0 ? ", column " + std::to_string(col) : ""));
}

// Sorted (key, truth) -> calls at(key, tp, fp) at the end of each group of equal keys.
template <typename Key, typename Fn>
void walk_groups(const std::vector<Key>& keys, const std::vector<std::uint8_t>& tr, Fn&& at) {
    const std::size_t n = keys.size();
    double tp = 0, fp = 0;
    for (std::size_t i = 0; i < n; ++i) {
        tp += tr[i];
        fp += 1 - tr[i];
        if (i + 1 == n || keys[i + 1] != keys[i]) at(keys[i], tp, fp);
    }
}

template <typename Key>
struct Column {
    std::vector<Key> keys, k2;
    std::vector<std::uint8_t> truth, t2;
    void sort() { radix_sort_by_key(keys, truth, k2, t2); }
};

}  // namespace

template <typename T>
void binary_curve(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t stride,
                  std::vector<T>& thresholds, std::vector<double>& tps, std::vector<double>& fps) {
    using Key = decltype(desc_key(T{}));
    Column<Key> col;
    col.keys.resize(static_cast<std::size_t>(n));
    col.truth.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        check_score(scores[i * stride], i, -1);
        col.keys[i] = desc_key(scores[i * stride]);
        col.truth[i] = truth[i * stride] ? 1 : 0;
    }
    col.sort();
    walk_groups(col.keys, col.truth, [&](Key key, double tp, double fp) {
        thresholds.push_back(static_cast<T>(key_value(key)));
        tps.push_back(tp);
        fps.push_back(fp);
    });
}

template <typename T>
void ap_auc_columns(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, int threads,
                    double* ap, double* auc) {
    if constexpr (std::is_same_v<T, float>)
        ap_auc_columns_f32(scores, truth, n, L, threads, ap, auc);
    else
        ap_auc_columns_f64(scores, truth, n, L, threads, ap, auc);
}

template std::int64_t top_k_hits<float>(const std::int64_t*, const float*, std::int64_t, std::int64_t, std::int64_t);
template std::int64_t top_k_hits<double>(const std::int64_t*, const double*, std::int64_t, std::int64_t, std::int64_t);
template void binary_curve<float>(const float*, const std::uint8_t*, std::int64_t, std::int64_t, std::vector<float>&,
                                  std::vector<double>&, std::vector<double>&);
template void binary_curve<double>(const double*, const std::uint8_t*, std::int64_t, std::int64_t,
                                   std::vector<double>&, std::vector<double>&, std::vector<double>&);
template void ap_auc_columns<float>(const float*, const std::uint8_t*, std::int64_t, std::int64_t, int, double*,
                                    double*);
template void ap_auc_columns<double>(const double*, const std::uint8_t*, std::int64_t, std::int64_t, int, double*,
                                     double*);

}  // namespace pyimgcls::core
