"""Decoding of raw YOLO detector outputs (v5 and v8 / YOLO11 layouts): threshold, class-aware
NMS and the top ``max_det``, natively, one result per image."""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..runtime.threads import resolve_threads
from ._args import as_count, unit_interval
from .detections import Detections

__all__ = ["decode_yolo"]


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
        threads: worker threads over images (0 = all usable cores, see ``pyimgcls.runtime.threads``).

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
    max_det = as_count(max_det, "max_det")
    max_candidates = as_count(max_candidates, "max_candidates")
    conf_threshold = float(conf_threshold)
    if not math.isfinite(conf_threshold):
        raise ValueError(f"conf_threshold must be finite, got {conf_threshold!r}")
    out = np.ascontiguousarray(out, dtype=np.float32)
    res = _core.decode_yolo(out, 0 if layout == "v5" else 1, conf_threshold,
                            unit_interval(iou_threshold, "iou_threshold"), max_det, max_candidates,
                            bool(class_agnostic), bool(multi_label), resolve_threads(threads))
    names = None if class_names is None else tuple(class_names)
    return [Detections(xyxy=b, confidence=c, class_id=k, class_names=names) for b, c, k in res]
