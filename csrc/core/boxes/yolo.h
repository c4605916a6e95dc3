// Decoding of raw YOLO detector outputs into thresholded, NMS-filtered detections.
//
// Layouts (per image b of a float32 output):
//   v5: (N, 5 + C) rows: cx, cy, w, h, objectness, C class scores; score = objectness * class;
//       an anchor is a candidate only if objectness > conf_threshold (as YOLOv5 does).
//   v8: (4 + C, N) columns: cx, cy, w, h, C class scores (also YOLO11); score = class score.
// Candidates: best class per anchor (ties: lowest class id) with score > conf_threshold, or every
// (anchor, class) pair above it with multi_label. At most max_candidates of them (highest scores,
// stable) go to NMS, class-aware unless class_agnostic; at most max_det come out, by descending
// score. Boxes are returned xyxy in the model-input coordinates. Cost: O(N * C) scan plus NMS.
#pragma once

#include <cstdint>
#include <vector>

namespace pyimgcls::core {

enum class YoloLayout : int { v5 = 0, v8 = 1 };

struct YoloOptions {
    YoloLayout layout = YoloLayout::v8;
    float conf_threshold = 0.25f;
    double iou_threshold = 0.45;
    std::int64_t max_det = 300;
    std::int64_t max_candidates = 30000;
    bool class_agnostic = false;
    bool multi_label = false;
};

struct YoloDetections {
    std::vector<float> xyxy;        // 4 per detection
    std::vector<float> confidence;
    std::vector<std::int32_t> class_id;
};

// `data` points at one image's output: N * (5 + C) or (4 + C) * N floats.
void decode_yolo_image(const float* data, std::int64_t n_anchors, std::int64_t n_classes,
                       const YoloOptions& opt, YoloDetections& out);

// All images of a (B, ...) output, threaded over images.
void decode_yolo_batch(const float* data, std::int64_t batch, std::int64_t n_anchors,
                       std::int64_t n_classes, const YoloOptions& opt, int threads,
                       std::vector<YoloDetections>& out);

}  // namespace pyimgcls::core
