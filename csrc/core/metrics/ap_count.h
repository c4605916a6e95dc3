// Per-label average precision and ROC AUC of float32 / float64 scores by counting, not sorting, the
// negatives.
//
// Indices: scores / truth are (N, L) row-major; column j is label j; truth is nonzero for a positive.
// Keys: desc_key(score) (32-bit for float32, 64-bit for float64), so ascending key order is
// descending score order and equal scores are equal keys (-0.0 == +0.0).
//
// Per column, only the positives are sorted. Every negative is then placed among the distinct
// positive keys: a fine uint8 histogram over the positive key range counts the negatives of buckets
// that hold no positive key, and the few negatives of buckets that do (a side list) are placed
// exactly, ties included. The counts between consecutive positive keys give scikit-learn's AP
// (sum over positive tie groups of size * precision, / P) and the Mann-Whitney AUC (negatives
// below, half of the tied ones, / (P * N)), both exact in double.
// Complexity per column: O(P) radix sort + O(N) counting + O(P + 2^18) tables. A bucket that
// reaches 256 negatives makes the column fall back to sorting both sides (same answers).
#pragma once

#include <cstdint>

namespace pyimgcls::core {

// ap[j], auc[j] for every column; NaN where undefined (AP: no positive; AUC: one class).
// Throws std::invalid_argument naming the first non-finite score (row-major order).
void ap_auc_columns_f32(const float* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L,
                        int threads, double* ap, double* auc);
void ap_auc_columns_f64(const double* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L,
                        int threads, double* ap, double* auc);

}  // namespace pyimgcls::core
