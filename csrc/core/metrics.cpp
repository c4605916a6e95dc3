#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

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

inline std::uint32_t desc_key(float v) {
    if (v == 0.0f) v = 0.0f;
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}
inline std::uint64_t desc_key(double v) {
    if (v == 0.0) v = 0.0;
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    u = (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
    return ~u;
}

// Sorts (key, truth) by key ascending (= score descending) with an LSD radix sort of 16-bit digits.
template <typename Key>
void radix_sort(std::vector<Key>& keys, std::vector<std::uint8_t>& truth) {
    const std::size_t m = keys.size();
    std::vector<Key> k2(m);
    std::vector<std::uint8_t> t2(m);
    std::vector<std::uint32_t> count(1 << 16);
    for (int shift = 0; shift < static_cast<int>(sizeof(Key)) * 8; shift += 16) {
        std::fill(count.begin(), count.end(), 0u);
        for (std::size_t i = 0; i < m; ++i) ++count[(keys[i] >> shift) & 0xffff];
        if (m && count[(keys[0] >> shift) & 0xffff] == m) continue;
        std::uint32_t sum = 0;
        for (auto& c : count) {
            const std::uint32_t t = c;
            c = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < m; ++i) {
            const std::uint32_t d = count[(keys[i] >> shift) & 0xffff]++;
            k2[d] = keys[i];
            t2[d] = truth[i];
        }
        keys.swap(k2);
        truth.swap(t2);
    }
}

template <typename T, typename Fn>
void walk_curve(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t stride, Fn&& at_threshold) {
    using Key = decltype(desc_key(T{}));
    std::vector<Key> keys(static_cast<std::size_t>(n));
    std::vector<std::uint8_t> tr(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        const T s = scores[i * stride];
        if (!std::isfinite(s))
            throw std::invalid_argument("scores must be finite, found " + std::to_string(double(s)) + " at index " +
                                        std::to_string(i));
        keys[i] = desc_key(s);
        tr[i] = truth[i * stride] ? 1 : 0;
    }
    radix_sort(keys, tr);
    double tp = 0, fp = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        tp += tr[i];
        fp += 1 - tr[i];
        if (i + 1 == n || keys[i + 1] != keys[i]) at_threshold(keys[i], tp, fp);
    }
}

template <typename Key>
double key_to_value(Key k) {
    Key u = ~k;
    if constexpr (sizeof(Key) == 4) {
        u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    } else {
        u = (u & 0x8000000000000000ull) ? (u & 0x7fffffffffffffffull) : ~u;
        double f;
        std::memcpy(&f, &u, 8);
        return f;
    }
}

}  // namespace

template <typename T>
void binary_curve(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t stride,
                  std::vector<T>& thresholds, std::vector<double>& tps, std::vector<double>& fps) {
    walk_curve(scores, truth, n, stride, [&](auto key, double tp, double fp) {
        thresholds.push_back(static_cast<T>(key_to_value(key)));
        tps.push_back(tp);
        fps.push_back(fp);
    });
}

template <typename T>
void ap_auc(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t stride, double* ap, double* auc) {
    // Two passes over the distinct thresholds: totals first (sklearn normalises by the last point).
    std::int64_t pos = 0;
    for (std::int64_t i = 0; i < n; ++i) pos += truth[i * stride] ? 1 : 0;
    const double P = static_cast<double>(pos), N = static_cast<double>(n - pos);
    double sum_ap = 0, prev_recall = 0, area = 0, prev_tp = 0, prev_fp = 0;
    walk_curve(scores, truth, n, stride, [&](auto, double tp, double fp) {
        const double recall = tp / P, precision = tp / (tp + fp);
        sum_ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
        prev_tp = tp;
        prev_fp = fp;
    });
    const double nan = std::numeric_limits<double>::quiet_NaN();
    *ap = pos > 0 ? sum_ap : nan;
    *auc = (pos > 0 && pos < n) ? area / (P * N) : nan;
}

template std::int64_t top_k_hits<float>(const std::int64_t*, const float*, std::int64_t, std::int64_t, std::int64_t);
template std::int64_t top_k_hits<double>(const std::int64_t*, const double*, std::int64_t, std::int64_t, std::int64_t);
template void binary_curve<float>(const float*, const std::uint8_t*, std::int64_t, std::int64_t, std::vector<float>&,
                                  std::vector<double>&, std::vector<double>&);
template void binary_curve<double>(const double*, const std::uint8_t*, std::int64_t, std::int64_t,
                                   std::vector<double>&, std::vector<double>&, std::vector<double>&);
template void ap_auc<float>(const float*, const std::uint8_t*, std::int64_t, std::int64_t, double*, double*);
template void ap_auc<double>(const double*, const std::uint8_t*, std::int64_t, std::int64_t, double*, double*);

}  // namespace pyimgcls::core
