"""Non-maximum suppression: greedy (plain and class-aware) and soft-NMS (native, exact).

Conventions: boxes are ``xyxy``; a box is suppressed when its IoU with a kept box is
``> iou_threshold``; order is a stable sort by descending score; IoU is computed in the input
precision exactly as ``torchvision.ops`` does; degenerate boxes have IoU 0 with everything.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..runtime.threads import resolve_threads
from ._args import as_boxes, as_count, as_scores, unit_interval

__all__ = ["nms", "batched_nms", "soft_nms"]


def _optional_float(v) -> float | None:
    return None if v is None else float(v)


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
    b = as_boxes(boxes)
    s = as_scores(scores, b)
    return _core.nms(b, s, unit_interval(iou_threshold, "iou_threshold"), _optional_float(score_threshold),
                     None if max_output is None else as_count(max_output, "max_output"))


def batched_nms(boxes, scores, class_ids, iou_threshold: float, *, score_threshold: float | None = None,
                max_output: int | None = None, threads: int = 0) -> np.ndarray:
    """Class-aware NMS: a box only suppresses boxes of its own class.

    Exact for any coordinate range: classes are processed separately, not by offsetting boxes.

    Args:
        boxes: (N, 4) float32 or float64, xyxy.
        scores: (N,).
        class_ids: (N,) integer class of each box.
        iou_threshold, score_threshold, max_output: as in ``nms``.
        threads: worker threads over classes (0 = all usable cores, see ``pyimgcls.runtime.threads``).

    Returns:
        (K,) int64 indices in descending score order (stable).
    """
    b = as_boxes(boxes)
    s = as_scores(scores, b)
    c = np.asarray(class_ids)
    if c.dtype.kind not in "iub":
        raise TypeError(f"class_ids must be integers, got {c.dtype}")
    if c.ndim != 1 or c.shape[0] != b.shape[0]:
        raise ValueError(f"class_ids must have shape ({b.shape[0]},), got {c.shape}")
    return _core.batched_nms(b, s, np.ascontiguousarray(c, dtype=np.int64), unit_interval(iou_threshold, "iou_threshold"),
                             _optional_float(score_threshold), None if max_output is None else as_count(max_output, "max_output"), resolve_threads(threads))


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
    b = as_boxes(boxes)
    s = as_scores(scores, b)
    if not (math.isfinite(float(sigma)) and float(sigma) > 0):
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    return tuple(_core.soft_nms(b, s, 0 if method == "linear" else 1, float(sigma),
                                unit_interval(iou_threshold, "iou_threshold"), float(score_threshold)))
