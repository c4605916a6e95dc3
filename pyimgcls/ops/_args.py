"""Argument checks shared by the box kernels' wrappers (types and shapes before the native call)."""

from __future__ import annotations

import numpy as np

__all__ = ["as_boxes", "as_count", "as_scores", "unit_interval"]


def as_boxes(boxes, name: str = "boxes", *, finite: bool = False) -> np.ndarray:
    """(N, 4) float32 / float64 C-contiguous boxes; ``finite=True`` refuses NaN and infinities."""
    b = np.asarray(boxes)
    if b.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got {b.dtype}")
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
    if b.dtype not in (np.float32, np.float64):
        b = b.astype(np.float32)
    if finite and b.size and not np.isfinite(b).all():
        row = int(np.argwhere(~np.isfinite(b))[0][0])
        raise ValueError(f"{name} must be finite, got {b[row].tolist()} at row {row}")
    return np.ascontiguousarray(b)


def as_scores(scores, boxes: np.ndarray) -> np.ndarray:
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scores must be a numeric array, got {s.dtype}")
    if s.ndim != 1 or s.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {s.shape}")
    return np.ascontiguousarray(s, dtype=boxes.dtype)


def unit_interval(value: float, name: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def as_count(value, name: str) -> int:
    """A non-negative int small enough for the kernels (counts and limits such as ``max_det``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    v = int(value)
    if not 0 <= v <= 2**62:
        raise ValueError(f"{name} must be in [0, 2^62], got {v}")
    return v
