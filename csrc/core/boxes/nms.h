// Non-maximum suppression, exact and fast.
//
// Indices: boxes are rows of an (N, 4) xyxy array; results are row indices. Conventions:
//   * order: stable sort by descending score (ties keep input order);
//   * suppression: a candidate is dropped when IoU with an already kept box is > iou_threshold;
//   * IoU is computed in the input precision T exactly as torchvision does:
//     inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)), iou = inter / (a + b - inter);
//   * degenerate (zero-area or inverted) boxes have IoU 0 with everything;
//   * score_threshold keeps scores > threshold.
// Complexity: O(N log N) sort plus, per candidate, only the kept boxes whose centres lie close
// enough to possibly exceed the threshold (a uniform grid of centres with at most 2N cells, O(N)
// memory however far apart the boxes lie; see nms.cpp), instead of every kept box. Boxes near the
// ends of the floating-point range (coordinates beyond 1e250, sides below 1e-250, areas that are
// subnormal or infinite in T) stay off the grid and are checked the plain way: any finite input
// gives the exact answer.
#pragma once

#include <cstdint>
#include <vector>

namespace pyimgcls::core {

struct NMSOptions {
    double iou_threshold = 0.5;
    bool use_score_threshold = false;
    double score_threshold = 0.0;
    std::int64_t max_output = -1;  // < 0: no limit
};

// Greedy NMS over `order` (indices into boxes, already in processing order). Appends kept indices
// to `keep` in processing order.
template <typename T>
void nms_ordered(const T* boxes, const std::vector<std::int64_t>& order, double iou_threshold,
                 std::int64_t max_output, std::vector<std::int64_t>& keep);

// Single-class NMS. Returns kept indices in descending score order.
template <typename T>
std::vector<std::int64_t> nms(const T* boxes, const T* scores, std::int64_t n, const NMSOptions& opt);

// Class-aware NMS: boxes only suppress boxes of the same class (exact; no coordinate offsets).
// Returns kept indices in descending score order (stable). Threaded over classes.
template <typename T>
std::vector<std::int64_t> batched_nms(const T* boxes, const T* scores, const std::int64_t* classes,
                                      std::int64_t n, const NMSOptions& opt, int threads);

// Soft-NMS (Bodla et al., 2017). method 0 = linear (s *= 1 - iou when iou > iou_threshold),
// 1 = gaussian (s *= exp(-iou^2 / sigma)). At each step the remaining box with the highest current
// score is selected (ties: lowest index); boxes whose score falls below score_threshold are dropped.
// Fills kept indices in selection order and their final scores. O(N^2).
template <typename T>
void soft_nms(const T* boxes, const T* scores, std::int64_t n, int method, double sigma,
              double iou_threshold, double score_threshold, std::vector<std::int64_t>& keep,
              std::vector<T>& new_scores);

// Pairwise IoU: out[i * m + j] = IoU(a[i], b[j]), same formula and precision as nms.
template <typename T>
void box_iou(const T* a, std::int64_t n, const T* b, std::int64_t m, T* out, int threads);

// Throws std::invalid_argument naming `what` and the first index holding NaN or infinity.
template <typename T>
void check_finite(const T* values, std::int64_t count, const char* what, int per_row);

}  // namespace pyimgcls::core
