"""Box operations, non-maximum suppression and detector-output decoding (native, exact).

Conventions: boxes are ``xyxy``; a box is suppressed when its IoU with a kept box is
``> iou_threshold``; order is a stable sort by descending score; IoU is computed in the input
precision exactly as ``torchvision.ops`` does; degenerate boxes have IoU 0 with everything.
"""

from __future__ import annotations

import math

import numpy as np

from . import _core
from .detections import Detections

__all__ = ["nms", "batched_nms", "soft_nms", "box_iou", "box_convert", "decode_yolo"]

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    b = np.asarray(boxes)
    if b.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got {b.dtype}")
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
    if b.dtype not in (np.float32, np.float64):
        b = b.astype(np.float32)
    return np.ascontiguousarray(b)


def _as_scores(scores, boxes: np.ndarray) -> np.ndarray:
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scores must be a numeric array, got {s.dtype}")
    if s.ndim != 1 or s.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {s.shape}")
    return np.ascontiguousarray(s, dtype=boxes.dtype)


def _threshold(value: float, name: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def nms(boxes, scores, iou_threshold: float, *, score_threshold: float | None = None,
        max_output: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) float32 or float64, xyxy.
        scores: (N,) scores.
        iou_threshold: a box is dropped when its IoU with a kept box is > this, in [0, 1].
        score_threshold: if set, only boxes with score > this are considered.
        max_output: if set, at most this many indices are returned.

    Returns:
        (K,) int64 indices of kept boxes in descending score order (ties in input order): the
        same set and order as ``torchvision.ops.nms``.
    """
    b = _as_boxes(boxes)
    s = _as_scores(scores, b)
    return _core.nms(b, s, _threshold(iou_threshold, "iou_threshold"), score_threshold,
                     None if max_output is None else int(max_output))


def batched_nms(boxes, scores, class_ids, iou_threshold: float, *, score_threshold: float | None = None,
                max_output: int | None = None, threads: int = 1) -> np.ndarray:
    """Class-aware NMS: a box only suppresses boxes of its own class.

    Exact for any coordinate range: classes are processed separately, not by offsetting boxes.

    Args:
        boxes: (N, 4) float32 or float64, xyxy.
        scores: (N,).
        class_ids: (N,) integer class of each box.
        iou_threshold, score_threshold, max_output: as in ``nms``.
        threads: worker threads over classes (0 = all cores).

    Returns:
        (K,) int64 indices in descending score order (stable).
    """
    b = _as_boxes(boxes)
    s = _as_scores(scores, b)
    c = np.asarray(class_ids)
    if c.dtype.kind not in "iub":
        raise TypeError(f"class_ids must be integers, got {c.dtype}")
    if c.ndim != 1 or c.shape[0] != b.shape[0]:
        raise ValueError(f"class_ids must have shape ({b.shape[0]},), got {c.shape}")
    return _core.batched_nms(b, s, np.ascontiguousarray(c, dtype=np.int64), _threshold(iou_threshold, "iou_threshold"),
                             score_threshold, None if max_output is None else int(max_output), int(threads))


def soft_nms(boxes, scores, *, method: str = "gaussian", sigma: float = 0.5, iou_threshold: float = 0.3,
             score_threshold: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS (Bodla et al., 2017): decays the scores of overlapping boxes instead of dropping them.

    At each step the remaining box with the highest current score is selected (ties: lowest
    index) and the others are rescaled: ``linear``: ``s *= 1 - iou`` when ``iou > iou_threshold``;
    ``gaussian``: ``s *= exp(-iou**2 / sigma)``. Boxes whose score is below ``score_threshold``
    (initially or after decay) are dropped.

    Returns:
        ``(indices, new_scores)``: int64 indices in selection order and their decayed scores.
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"method must be 'linear' or 'gaussian', got {method!r}")
    b = _as_boxes(boxes)
    s = _as_scores(scores, b)
    if not (math.isfinite(float(sigma)) and float(sigma) > 0):
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    return tuple(_core.soft_nms(b, s, 0 if method == "linear" else 1, float(sigma),
                                _threshold(iou_threshold, "iou_threshold"), float(score_threshold)))


def box_iou(boxes1, boxes2, *, threads: int = 1) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M), in the boxes' float precision."""
    a = _as_boxes(boxes1, "boxes1")
    b = _as_boxes(boxes2, "boxes2")
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    return _core.box_iou(a, b, int(threads))


def box_convert(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Converts (N, 4) boxes between ``xyxy``, ``xywh`` (top-left, size) and ``cxcywh``."""
    for name, f in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if f not in _FORMATS:
            raise ValueError(f"{name} must be one of {_FORMATS}, got {f!r}")
    b = _as_boxes(boxes)
    if in_fmt == out_fmt:
        return b.copy()
    if in_fmt == "xywh":
        x1, y1 = b[:, 0], b[:, 1]
        x2, y2 = x1 + b[:, 2], y1 + b[:, 3]
    elif in_fmt == "cxcywh":
        x1, y1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
        x2, y2 = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    else:
        x1, y1, x2, y2 = b.T
    if out_fmt == "xyxy":
        return np.stack([x1, y1, x2, y2], axis=1)
    if out_fmt == "xywh":
        return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)


def decode_yolo(output, *, layout: str, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                max_det: int = 300, class_agnostic: bool = False, multi_label: bool = False,
                max_candidates: int = 30000, class_names=None, threads: int = 0) -> list[Detections]:
    """Decodes raw YOLO outputs: threshold, class-aware NMS, top ``max_det``; one result per image.

    Args:
        output: float32 array, ``(B, N, 5 + C)`` for ``layout="v5"`` (cx, cy, w, h, objectness,
            class scores) or ``(B, 4 + C, N)`` for ``layout="v8"`` (cx, cy, w, h, class scores;
            also YOLO11). A 2-d array is taken as one image.
        conf_threshold: keep scores > this (v5: objectness > this too, then objectness * class).
        iou_threshold: NMS threshold in [0, 1].
        max_det: detections kept per image.
        class_agnostic: one NMS over all classes instead of one per class.
        multi_label: every (anchor, class) pair above the threshold, not just the best class.
        max_candidates: at most this many highest-scoring candidates enter NMS (as Ultralytics).
        class_names: optional names attached to the results.
        threads: worker threads over images (0 = all cores).

    Returns:
        One ``Detections`` per image, boxes xyxy in model-input pixels, by descending confidence.
        Map them to the original image with ``Detections.to_original(transform)``.
    """
    if layout not in ("v5", "v8"):
        raise ValueError(f"layout must be 'v5' or 'v8', got {layout!r}")
    out = np.asarray(output)
    if out.dtype.kind != "f":
        raise TypeError(f"output must be a float array, got {out.dtype}")
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3:
        raise ValueError(f"output must have shape {'(B, N, 5 + C)' if layout == 'v5' else '(B, 4 + C, N)'}, got {out.shape}")
    if int(max_det) < 0:
        raise ValueError(f"max_det must be >= 0, got {max_det!r}")
    out = np.ascontiguousarray(out, dtype=np.float32)
    res = _core.decode_yolo(out, 0 if layout == "v5" else 1, float(conf_threshold),
                            _threshold(iou_threshold, "iou_threshold"), int(max_det), int(max_candidates),
                            bool(class_agnostic), bool(multi_label), int(threads))
    names = None if class_names is None else tuple(class_names)
    return [Detections(xyxy=b, confidence=c, class_id=k, class_names=names) for b, c, k in res]
