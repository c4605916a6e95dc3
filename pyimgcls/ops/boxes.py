"""Box geometry: pairwise IoU (native, exact, torchvision's arithmetic) and format conversion.

Conventions: ``xyxy`` float32 or float64; IoU is computed in the input precision exactly as
``torchvision.ops.box_iou`` does; degenerate boxes have IoU 0 with everything.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..runtime.threads import resolve_threads
from ._args import as_boxes

__all__ = ["box_iou", "box_convert"]

_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_iou(boxes1, boxes2, *, threads: int = 0) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M), in the boxes' float precision.

    Non-finite coordinates are refused (``ValueError``): their IoU would be NaN.
    """
    a = as_boxes(boxes1, "boxes1", finite=True)
    b = as_boxes(boxes2, "boxes2", finite=True)
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    return _core.box_iou(a, b, resolve_threads(threads))


def box_convert(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Converts (N, 4) boxes between ``xyxy``, ``xywh`` (top-left, size) and ``cxcywh``."""
    for name, f in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if f not in _FORMATS:
            raise ValueError(f"{name} must be one of {_FORMATS}, got {f!r}")
    b = as_boxes(boxes)
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
