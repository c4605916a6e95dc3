#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/parallel.h"

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

// Sorts (key, truth) by key ascending (= score descending) with an LSD radix sort of 11-bit
// digits (2048 buckets: the histogram stays in L1); digits that are constant are skipped.
template <typename Key>
void radix_sort(std::vector<Key>& keys, std::vector<std::uint8_t>& truth, std::vector<Key>& k2,
                std::vector<std::uint8_t>& t2) {
    constexpr int kBits = 11, kBuckets = 1 << kBits;
    const std::size_t m = keys.size();
    k2.resize(m);
    t2.resize(m);
    std::uint32_t count[kBuckets];
    for (int shift = 0; shift < static_cast<int>(sizeof(Key)) * 8; shift += kBits) {
        std::fill(count, count + kBuckets, 0u);
        for (std::size_t i = 0; i < m; ++i) ++count[(keys[i] >> shift) & (kBuckets - 1)];
        if (m == 0 || count[(keys[0] >> shift) & (kBuckets - 1)] == m) continue;
        std::uint32_t sum = 0;
        for (auto& c : count) {
            const std::uint32_t t = c;
            c = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < m; ++i) {
            const std::uint32_t d = count[(keys[i] >> shift) & (kBuckets - 1)]++;
            k2[d] = keys[i];
            t2[d] = truth[i];
        }
        keys.swap(k2);
        truth.swap(t2);
    }
}

// Scratch buffers of a radix sort, reused across columns (fresh large allocations cost page faults).
template <typename Key>
struct SortScratch {
    std::vector<Key> keys;
    std::vector<std::uint8_t> truth;
};

template <typename Key, typename Fn>
void walk_sorted(std::vector<Key>& keys, std::vector<std::uint8_t>& tr, SortScratch<Key>& scratch, Fn&& at_threshold) {
    radix_sort(keys, tr, scratch.keys, scratch.truth);
    const std::size_t n = keys.size();
    double tp = 0, fp = 0;
    for (std::size_t i = 0; i < n; ++i) {
        tp += tr[i];
        fp += 1 - tr[i];
        if (i + 1 == n || keys[i + 1] != keys[i]) at_threshold(keys[i], tp, fp);
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
    SortScratch<Key> scratch;
    radix_sort(keys, tr, scratch.keys, scratch.truth);
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

template <typename Key>
void ap_auc_sorted(std::vector<Key>& keys, std::vector<std::uint8_t>& tr, SortScratch<Key>& scratch, double* ap,
                   double* auc) {
    std::int64_t pos = 0;
    for (std::uint8_t t : tr) pos += t;
    const std::int64_t n = static_cast<std::int64_t>(tr.size());
    const double P = static_cast<double>(pos), N = static_cast<double>(n - pos);
    double sum_ap = 0, prev_recall = 0, area = 0, prev_tp = 0, prev_fp = 0;
    walk_sorted(keys, tr, scratch, [&](Key, double tp, double fp) {
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

// float32 fast path: key and truth packed in one 64-bit word, (key << 1) | truth, sorted by the
// key bits with an 8-bit LSD radix sort whose four histograms are built in one pass.
void radix_sort_packed(std::vector<std::uint64_t>& a, std::vector<std::uint64_t>& tmp) {
    const std::size_t m = a.size();
    tmp.resize(m);
    std::uint32_t hist[4][256] = {};
    for (std::size_t i = 0; i < m; ++i) {
        const std::uint64_t v = a[i] >> 1;
        ++hist[0][v & 0xff];
        ++hist[1][(v >> 8) & 0xff];
        ++hist[2][(v >> 16) & 0xff];
        ++hist[3][(v >> 24) & 0xff];
    }
    for (int pass = 0; pass < 4; ++pass) {
        std::uint32_t* h = hist[pass];
        const int shift = 1 + 8 * pass;
        if (m == 0 || h[(a[0] >> shift) & 0xff] == m) continue;  // constant digit
        std::uint32_t sum = 0;
        for (int b = 0; b < 256; ++b) {
            const std::uint32_t t = h[b];
            h[b] = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < m; ++i) tmp[h[(a[i] >> shift) & 0xff]++] = a[i];
        a.swap(tmp);
    }
}

void ap_auc_packed(std::vector<std::uint64_t>& a, std::vector<std::uint64_t>& tmp, double* ap, double* auc) {
    radix_sort_packed(a, tmp);
    const std::size_t n = a.size();
    std::int64_t pos = 0;
    for (std::uint64_t v : a) pos += static_cast<std::int64_t>(v & 1);
    const double P = static_cast<double>(pos), N = static_cast<double>(static_cast<std::int64_t>(n) - pos);
    double sum_ap = 0, prev_recall = 0, area = 0, prev_tp = 0, prev_fp = 0, tp = 0, fp = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double t = static_cast<double>(a[i] & 1);
        tp += t;
        fp += 1 - t;
        if (i + 1 == n || (a[i + 1] >> 1) != (a[i] >> 1)) {
            const double recall = tp / P, precision = tp / (tp + fp);
            sum_ap += (recall - prev_recall) * precision;
            prev_recall = recall;
            area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
            prev_tp = tp;
            prev_fp = fp;
        }
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    *ap = pos > 0 ? sum_ap : nan;
    *auc = (pos > 0 && pos < static_cast<std::int64_t>(n)) ? area / (P * N) : nan;
}

template <typename T>
void ap_auc_columns(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, int threads,
                    double* ap, double* auc) {
    using Key = decltype(desc_key(T{}));
    // Columns are gathered a block at a time in one row-wise pass (a column-by-column strided walk
    // would read the whole matrix once per column).
    constexpr std::int64_t kBlock = 16;
    const std::int64_t blocks = (L + kBlock - 1) / kBlock;
    if constexpr (std::is_same_v<T, float>) {
        parallel_for_dynamic(blocks, threads, [&](std::ptrdiff_t b) {
            const std::int64_t j0 = b * kBlock, j1 = std::min(L, j0 + kBlock), w = j1 - j0;
            std::vector<std::vector<std::uint64_t>> cols(static_cast<std::size_t>(w),
                                                         std::vector<std::uint64_t>(static_cast<std::size_t>(n)));
            for (std::int64_t i = 0; i < n; ++i) {
                const float* row = scores + i * L + j0;
                const std::uint8_t* trow = truth + i * L + j0;
                for (std::int64_t j = 0; j < w; ++j) {
                    if (!std::isfinite(row[j]))
                        throw std::invalid_argument("scores must be finite, found " + std::to_string(double(row[j])) +
                                                    " at row " + std::to_string(i) + ", column " + std::to_string(j0 + j));
                    cols[j][i] = (static_cast<std::uint64_t>(desc_key(row[j])) << 1) | (trow[j] ? 1u : 0u);
                }
            }
            std::vector<std::uint64_t> tmp;
            for (std::int64_t j = 0; j < w; ++j) ap_auc_packed(cols[j], tmp, ap + j0 + j, auc + j0 + j);
        });
        return;
    }
    parallel_for_dynamic(blocks, threads, [&](std::ptrdiff_t b) {
        const std::int64_t j0 = b * kBlock, j1 = std::min(L, j0 + kBlock), w = j1 - j0;
        std::vector<std::vector<Key>> keys(static_cast<std::size_t>(w), std::vector<Key>(static_cast<std::size_t>(n)));
        std::vector<std::vector<std::uint8_t>> tr(static_cast<std::size_t>(w), std::vector<std::uint8_t>(static_cast<std::size_t>(n)));
        for (std::int64_t i = 0; i < n; ++i) {
            const T* row = scores + i * L + j0;
            const std::uint8_t* trow = truth + i * L + j0;
            for (std::int64_t j = 0; j < w; ++j) {
                if (!std::isfinite(row[j]))
                    throw std::invalid_argument("scores must be finite, found " + std::to_string(double(row[j])) +
                                                " at row " + std::to_string(i) + ", column " + std::to_string(j0 + j));
                keys[j][i] = desc_key(row[j]);
                tr[j][i] = trow[j] ? 1 : 0;
            }
        }
        SortScratch<Key> scratch;
        for (std::int64_t j = 0; j < w; ++j) ap_auc_sorted(keys[j], tr[j], scratch, ap + j0 + j, auc + j0 + j);
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
template void ap_auc_columns<float>(const float*, const std::uint8_t*, std::int64_t, std::int64_t, int, double*, double*);
template void ap_auc_columns<double>(const double*, const std::uint8_t*, std::int64_t, std::int64_t, int, double*, double*);
template void ap_auc<double>(const double*, const std::uint8_t*, std::int64_t, std::int64_t, double*, double*);

}  // namespace pyimgcls::core
