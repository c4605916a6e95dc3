// YOLO decoding (see yolo.h for layouts and conventions): per image, one scan for candidates,
// xywh -> xyxy, a stable sort by descending score capped at max_candidates, then greedy NMS per class
// (or class-agnostic) merged by rank and cut to max_det. Images run in parallel.
#include "core/boxes/yolo.h"

#include <algorithm>
#include <numeric>

#include "core/boxes/nms.h"
#include "core/common/parallel.h"

namespace pyimgcls::core {

void decode_yolo_image(const float* data, std::int64_t n, std::int64_t nc, const YoloOptions& opt,
                       YoloDetections& out) {
    std::vector<std::int64_t> anchor;
    std::vector<std::int32_t> cls;
    std::vector<float> score;
    const float thr = opt.conf_threshold;
    if (opt.layout == YoloLayout::v8) {
        const float* cs = data + 4 * n;  // class c of anchor i at cs[c * n + i]
        if (opt.multi_label) {
            for (std::int64_t i = 0; i < n; ++i)
                for (std::int64_t c = 0; c < nc; ++c)
                    if (cs[c * n + i] > thr) {
                        anchor.push_back(i);
                        cls.push_back(static_cast<std::int32_t>(c));
                        score.push_back(cs[c * n + i]);
                    }
        } else if (nc > 0) {
            // row-wise running max: contiguous reads of each class row
            std::vector<float> best(cs, cs + n);
            std::vector<std::int32_t> arg(static_cast<std::size_t>(n), 0);
            for (std::int64_t c = 1; c < nc; ++c) {
                const float* row = cs + c * n;
                for (std::int64_t i = 0; i < n; ++i)
                    if (row[i] > best[i]) {
                        best[i] = row[i];
                        arg[i] = static_cast<std::int32_t>(c);
                    }
            }
            for (std::int64_t i = 0; i < n; ++i)
                if (best[i] > thr) {
                    anchor.push_back(i);
                    cls.push_back(arg[i]);
                    score.push_back(best[i]);
                }
        }
    } else {
        const std::int64_t stride = 5 + nc;
        for (std::int64_t i = 0; i < n; ++i) {
            const float* r = data + i * stride;
            const float obj = r[4];
            if (!(obj > thr)) continue;
            if (opt.multi_label) {
                for (std::int64_t c = 0; c < nc; ++c) {
                    const float s = r[5 + c] * obj;
                    if (s > thr) {
                        anchor.push_back(i);
                        cls.push_back(static_cast<std::int32_t>(c));
                        score.push_back(s);
                    }
                }
            } else if (nc > 0) {
                std::int64_t bc = 0;
                for (std::int64_t c = 1; c < nc; ++c)
                    if (r[5 + c] > r[5 + bc]) bc = c;
                const float s = r[5 + bc] * obj;
                if (s > thr) {
                    anchor.push_back(i);
                    cls.push_back(static_cast<std::int32_t>(bc));
                    score.push_back(s);
                }
            }
        }
    }
    const std::int64_t k = static_cast<std::int64_t>(anchor.size());
    std::vector<float> boxes(static_cast<std::size_t>(4 * k));
    for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t i = anchor[j];
        float cx, cy, w, h;
        if (opt.layout == YoloLayout::v8) {
            cx = data[i]; cy = data[n + i]; w = data[2 * n + i]; h = data[3 * n + i];
        } else {
            const float* r = data + i * (5 + nc);
            cx = r[0]; cy = r[1]; w = r[2]; h = r[3];
        }
        boxes[4 * j] = cx - w / 2;
        boxes[4 * j + 1] = cy - h / 2;
        boxes[4 * j + 2] = cx + w / 2;
        boxes[4 * j + 3] = cy + h / 2;
    }
    // candidates by descending score (stable), capped
    std::vector<std::int64_t> order(static_cast<std::size_t>(k));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return score[a] > score[b]; });
    if (opt.max_candidates >= 0 && k > opt.max_candidates) order.resize(opt.max_candidates);
    std::vector<std::int64_t> keep;
    if (opt.class_agnostic) {
        nms_ordered(boxes.data(), order, opt.iou_threshold, opt.max_det, keep);
    } else {
        // per class, preserving the global order; merge by rank
        std::vector<std::int64_t> rank(static_cast<std::size_t>(k), -1);
        for (std::size_t r = 0; r < order.size(); ++r) rank[order[r]] = static_cast<std::int64_t>(r);
        std::int32_t maxc = 0;
        for (std::int64_t j : order) maxc = std::max(maxc, cls[j]);
        std::vector<std::vector<std::int64_t>> groups(static_cast<std::size_t>(maxc) + 1);
        for (std::int64_t j : order) groups[cls[j]].push_back(j);
        std::vector<std::int64_t> ranks;
        std::vector<std::int64_t> kept;
        for (auto& g : groups) {
            kept.clear();
            nms_ordered(boxes.data(), g, opt.iou_threshold, opt.max_det, kept);
            for (std::int64_t j : kept) ranks.push_back(rank[j]);
        }
        std::sort(ranks.begin(), ranks.end());
        if (opt.max_det >= 0 && static_cast<std::int64_t>(ranks.size()) > opt.max_det) ranks.resize(opt.max_det);
        for (std::int64_t r : ranks) keep.push_back(order[r]);
    }
    out.xyxy.resize(4 * keep.size());
    out.confidence.resize(keep.size());
    out.class_id.resize(keep.size());
    for (std::size_t t = 0; t < keep.size(); ++t) {
        const std::int64_t j = keep[t];
        std::copy(boxes.begin() + 4 * j, boxes.begin() + 4 * j + 4, out.xyxy.begin() + 4 * t);
        out.confidence[t] = score[j];
        out.class_id[t] = cls[j];
    }
}

void decode_yolo_batch(const float* data, std::int64_t batch, std::int64_t n, std::int64_t nc,
                       const YoloOptions& opt, int threads, std::vector<YoloDetections>& out) {
    out.assign(static_cast<std::size_t>(batch), YoloDetections{});
    const std::int64_t per = opt.layout == YoloLayout::v8 ? (4 + nc) * n : n * (5 + nc);
    parallel_for_dynamic(batch, threads, [&](std::ptrdiff_t b) {
        decode_yolo_image(data + b * per, n, nc, opt, out[b]);
    });
}

}  // namespace pyimgcls::core
