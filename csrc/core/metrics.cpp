#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/parallel.h"
#include "core/radix.h"

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

// sklearn's step-wise average precision and trapezoidal ROC AUC, fed one distinct threshold at
// a time (highest first) with the cumulative true / false positives.
struct ApAuc {
    double P, N, sum_ap = 0, area = 0, prev_tp = 0, prev_fp = 0;
    ApAuc(double pos, double neg) : P(pos), N(neg) {}
    void add(double tp, double fp) {
        // (R_n - R_n-1) * P_n with the 1 / P factored out: one division per threshold
        sum_ap += (tp - prev_tp) * (tp / (tp + fp));
        area += (fp - prev_fp) * (tp + prev_tp) * 0.5;
        prev_tp = tp;
        prev_fp = fp;
    }
    void finish(double* ap, double* auc) const {
        const double nan = std::numeric_limits<double>::quiet_NaN();
        *ap = P > 0 ? sum_ap / P : nan;
        *auc = (P > 0 && N > 0) ? area / (P * N) : nan;
    }
};

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

// float32 fast path: per column the keys of the positives and of the negatives are gathered into
// two arrays (branch-free), each sorted by an 11-bit LSD radix sort of bare 32-bit keys, and one
// merge walk yields AP (sum over positive tie groups of count * precision, / P) and AUC (the
// Mann-Whitney count of (negative below, half of tied) pairs, exact in double, / (P * N)).
std::uint32_t* radix_sort_keys(std::uint32_t* a, std::uint32_t* tmp, std::size_t m) {
    constexpr int kBits = 11, kBuckets = 1 << kBits, kPasses = 3;
    std::uint32_t hist[kPasses][kBuckets] = {};
    for (std::size_t i = 0; i < m; ++i) {
        const std::uint32_t v = a[i];
        ++hist[0][v & (kBuckets - 1)];
        ++hist[1][(v >> kBits) & (kBuckets - 1)];
        ++hist[2][v >> (2 * kBits)];
    }
    for (int pass = 0; pass < kPasses; ++pass) {
        std::uint32_t* h = hist[pass];
        const int shift = kBits * pass;
        if (m == 0 || h[(a[0] >> shift) & (kBuckets - 1)] == m) continue;  // constant digit
        std::uint32_t sum = 0;
        for (int b = 0; b < kBuckets; ++b) {
            const std::uint32_t t = h[b];
            h[b] = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < m; ++i) tmp[h[(a[i] >> shift) & (kBuckets - 1)]++] = a[i];
        std::swap(a, tmp);
    }
    return a;
}

void ap_auc_split(std::uint32_t* pos, std::size_t np, std::uint32_t* neg, std::size_t nn, std::uint32_t* tmp,
                  double* ap, double* auc) {
    const std::uint32_t* p = radix_sort_keys(pos, tmp, np);
    if (p == tmp) {  // keep the sorted positives out of the scratch the negatives need
        std::copy(tmp, tmp + np, pos);
        p = pos;
    }
    const std::uint32_t* q = radix_sort_keys(neg, tmp, nn);
    double sum_ap = 0, u = 0;
    std::size_t i = 0, j = 0;
    while (i < np) {
        const std::uint32_t k = p[i];
        std::size_t i2 = i + 1;
        while (i2 < np && p[i2] == k) ++i2;
        while (j < nn && q[j] < k) ++j;  // negatives scoring strictly higher
        const std::size_t lt = j;
        while (j < nn && q[j] == k) ++j;  // tied negatives
        const double g = static_cast<double>(i2 - i), tp = static_cast<double>(i2), fp = static_cast<double>(j);
        sum_ap += g * (tp / (tp + fp));
        u += g * (static_cast<double>(nn - j) + 0.5 * static_cast<double>(j - lt));
        i = i2;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double P = static_cast<double>(np), N = static_cast<double>(nn);
    *ap = np > 0 ? sum_ap / P : nan;
    *auc = (np > 0 && nn > 0) ? u / (P * N) : nan;
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
    // Columns are gathered a block at a time in one row-wise pass (a column-by-column strided walk
    // would read the whole matrix once per column).
    constexpr std::int64_t kBlock = 16;
    const std::int64_t blocks = (L + kBlock - 1) / kBlock;
    if constexpr (std::is_same_v<T, float>) {
        // Each worker takes a contiguous range of column blocks and allocates its buffers once
        // (uninitialised: the gather is the first touch).
        parallel_for(blocks, threads, [&](std::ptrdiff_t b0, std::ptrdiff_t b1) {
            const std::size_t un = static_cast<std::size_t>(n);
            const std::size_t width = static_cast<std::size_t>(std::min<std::int64_t>(kBlock, L));
            std::unique_ptr<std::uint32_t[]> buf(new std::uint32_t[2 * width * un + un]);
            std::uint32_t* pos = buf.get();
            std::uint32_t* neg = pos + width * un;
            std::uint32_t* tmp = neg + width * un;
            std::vector<std::size_t> np(width), nn(width);
            for (std::ptrdiff_t b = b0; b < b1; ++b) {
                const std::int64_t j0 = b * kBlock, w = std::min(L, j0 + kBlock) - j0;
                std::fill(np.begin(), np.end(), 0);
                std::fill(nn.begin(), nn.end(), 0);
                // tiles of rows: the tile stays in cache while each column's keys are appended
                constexpr std::int64_t kTile = 128;
                for (std::int64_t i0 = 0; i0 < n; i0 += kTile) {
                    const std::int64_t i1 = std::min(n, i0 + kTile);
                    for (std::int64_t j = 0; j < w; ++j) {
                        std::uint32_t* pc = pos + static_cast<std::size_t>(j) * un;
                        std::uint32_t* nc = neg + static_cast<std::size_t>(j) * un;
                        std::size_t a = np[j], c = nn[j];
                        for (std::int64_t i = i0; i < i1; ++i) {
                            const float s = scores[i * L + j0 + j];
                            if (!std::isfinite(s)) check_score(s, i, j0 + j);
                            const std::uint32_t key = desc_key(s);
                            const std::size_t t = truth[i * L + j0 + j] ? 1 : 0;
                            pc[a] = key;  // written to both, kept by one (no unpredictable branch)
                            nc[c] = key;
                            a += t;
                            c += 1 - t;
                        }
                        np[j] = a;
                        nn[j] = c;
                    }
                }
                for (std::int64_t j = 0; j < w; ++j)
                    ap_auc_split(pos + static_cast<std::size_t>(j) * un, np[j], neg + static_cast<std::size_t>(j) * un,
                                 nn[j], tmp, ap + j0 + j, auc + j0 + j);
            }
        });
        return;
    }
    parallel_for_dynamic(blocks, threads, [&](std::ptrdiff_t b) {
        const std::int64_t j0 = b * kBlock, j1 = std::min(L, j0 + kBlock), w = j1 - j0;
        using Key = decltype(desc_key(T{}));
        std::vector<Column<Key>> cols(static_cast<std::size_t>(w));
        for (auto& c : cols) {
            c.keys.resize(static_cast<std::size_t>(n));
            c.truth.resize(static_cast<std::size_t>(n));
        }
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t j = 0; j < w; ++j) {
                const T s = scores[i * L + j0 + j];
                check_score(s, i, j0 + j);
                cols[j].keys[i] = desc_key(s);
                cols[j].truth[i] = truth[i * L + j0 + j] ? 1 : 0;
            }
        for (std::int64_t j = 0; j < w; ++j) {
            Column<Key>& c = cols[j];
            c.sort();
            std::int64_t pos = 0;
            for (std::uint8_t t : c.truth) pos += t;
            ApAuc acc(static_cast<double>(pos), static_cast<double>(n - pos));
            walk_groups(c.keys, c.truth, [&](Key, double tp, double fp) { acc.add(tp, fp); });
            acc.finish(ap + j0 + j, auc + j0 + j);
            std::vector<Key>().swap(c.k2);  // free the scratch as we go
        }
    });
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
