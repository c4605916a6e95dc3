// Classification and ranking metrics kernels.
//
// Indices: labels are class ids in [0, C); scores are (N, C) row-major or one column of an (N, L)
// label matrix. Conventions follow scikit-learn exactly (see pyimgcls/metrics for the formulas
// built on these counts): ties in scores form one threshold; top-k ranks a tie below the larger
// class index (numpy's stable ascending argsort reversed, as top_k_accuracy_score does).
// Complexity: confusion counts O(N); top-k O(N * C); curves O(N) radix sort + O(N) scan.
#pragma once

#include <cstdint>
#include <vector>

namespace pyimgcls::core {

// matrix[t * C + p] += 1 for each pair. Throws std::invalid_argument naming the first label
// outside [0, C) and its index.
void confusion_update(const std::int64_t* y_true, const std::int64_t* y_pred, std::int64_t n,
                      std::int64_t num_classes, std::int64_t* matrix);

// Number of rows whose true class is within the top k of its scores (sklearn's tie rule).
template <typename T>
std::int64_t top_k_hits(const std::int64_t* y_true, const T* scores, std::int64_t n, std::int64_t c,
                        std::int64_t k);

// Binary ranking curve at each distinct score, highest first: thresholds[i], cumulative true
// positives tps[i] and false positives fps[i] of "score >= thresholds[i]". `stride` steps between
// consecutive samples of the score / truth column (1 for a vector, L for a column of (N, L)).
template <typename T>
void binary_curve(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t stride,
                  std::vector<T>& thresholds, std::vector<double>& tps, std::vector<double>& fps);

// Average precision (sklearn's step-wise sum) and ROC AUC of every column of (N, L) row-major
// scores / truth, without materialising the curves; NaN where undefined (no positive / one class).
// Counted by core/metrics/ap_count.h (AUC is the Mann-Whitney count, exact in integers, equal to sklearn's
// trapezoid over distinct thresholds). Threaded over blocks of columns.
template <typename T>
void ap_auc_columns(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, int threads,
                    double* ap, double* auc);

}  // namespace pyimgcls::core
