// COCO bounding-box evaluation, numerically identical to pycocotools' COCOeval (bbox).
//
// Indices: images are in ascending image-id order; image i owns ground truths
// [gt_begin[i], gt_begin[i + 1]) and detections [dt_begin[i], dt_begin[i + 1]) of the flat arrays.
// Boxes are xywh in float64. Conventions (pycocotools): per image and category, detections are
// stably sorted by descending score and cut to max_dets.back(); IoU is bbIou (crowd ground truth:
// intersection over the detection's area); ground truths that are crowd or outside the area range
// are "ignored" and sorted last; greedy matching per IoU threshold at min(t, 1 - 1e-10);
// accumulation concatenates images in order, stably sorts by descending score, and samples the
// monotone precision envelope at the recall thresholds (searchsorted, side "left").
// Ground-truth id 0 (CocoParams::zero_id_unmatched, pycocotools' behaviour): evaluateImg stores the
// matched ground truth's *id* in dtMatches and accumulate tests it for truth, so a match to the
// annotation with id 0 uses that ground truth up (gtMatches holds the detection's id, >= 1) but the
// detection counts as unmatched: a false positive, or ignored when its own area is outside the range
// (or when the ground truth is ignored). Negative ids are truthy there: ordinary matches.
// Categories: only the K categories of cat_ids are evaluated; boxes of any other category are skipped
// (pycocotools' params.catIds).
// Outputs: precision[T][R][K][A][M] and recall[T][K][A][M], -1 where a category has no
// non-ignored ground truth. Complexity: O(sum over image-categories of D * G * T) plus sorting.
// Inputs are checked (coco_check) before anything is read through them.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace pyimgcls::core {

struct CocoData {
    std::vector<std::int64_t> gt_begin{0}, dt_begin{0};  // size images + 1
    std::vector<double> gt_box;                           // 4 per ground truth, xywh
    std::vector<std::int64_t> gt_cat;
    std::vector<std::uint8_t> gt_crowd;
    std::vector<double> gt_area;
    std::vector<std::int64_t> gt_id;                      // annotation ids; only 0 matters (see above)
    std::vector<double> dt_box;                           // 4 per detection, xywh
    std::vector<std::int64_t> dt_cat;
    std::vector<double> dt_score;
};

struct CocoParams {
    std::vector<double> iou_thrs;                    // T
    std::vector<double> rec_thrs;                    // R
    std::vector<std::array<double, 2>> area_rngs;    // A
    std::vector<std::int64_t> max_dets;              // M, ascending
    bool zero_id_unmatched = true;                   // false: gt id 0 matches like any other
};

// Throws std::invalid_argument naming the first bad input (by the names of the fields above, which are
// also _core.coco_evaluate's arguments) with the expected and the actual value: gt_begin / dt_begin of the
// same length >= 1, starting at 0, non-decreasing, ending at the number of ground truths / detections;
// 4 box values and one crowd flag, area and id per ground truth, 4 box values and one score per
// detection; finite boxes, areas and scores; iou_thrs and rec_thrs in [0, 1], rec_thrs ascending;
// lo <= hi in every area range (neither NaN); max_dets non-empty, >= 0 and ascending; T, R, K, A, M
// below 2^31. O(inputs).
void coco_check(const CocoData& data, const std::vector<std::int64_t>& cat_ids, const CocoParams& p);

// Calls coco_check first. precision and recall hold T * R * K * A * M and T * K * A * M doubles.
void coco_evaluate(const CocoData& data, const std::vector<std::int64_t>& cat_ids, const CocoParams& p,
                   int threads, double* precision, double* recall);

}  // namespace pyimgcls::core
