"""Drawing detections on an image: boxes, labels (class name and score) and keypoints.

The look follows supervision's ``BoxAnnotator`` + ``LabelAnnotator`` and Ultralytics' plots: one
colour per class from a fixed palette, a line width and text size that grow with the image, and
labels written on a filled background in the box's colour, above the box, or just inside its top
edge when the box touches the top of the image. Drawing is done by OpenCV on a copy; the input is
never modified.

Coordinates: boxes are ``xyxy`` float32 in pixels with the half-pixel convention of ``Detections``
(the pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``); a box edge is drawn on the pixel that
holds its coordinate (``floor``), clipped to the image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["PALETTE", "annotate", "class_color"]

# 20 distinct colours (RGB), dark and light mixed so neighbouring class ids differ clearly.
PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)) for h in (
        "E6194B", "3CB44B", "FFE119", "4363D8", "F58231", "911EB4", "42D4F4", "F032E6", "BFEF45", "FABED4",
        "469990", "DCBEFF", "9A6324", "FFFAC8", "800000", "AAFFC3", "808000", "FFD8B1", "000075", "A9A9A9"))


#: ``thickness`` at most this (OpenCV's ``MAX_THICKNESS``); ``text_scale`` at most this (labels about
#: 2200 px tall; OpenCV's ``putText`` takes seconds from a few hundred and crashes the process from
#: a few thousand).
MAX_THICKNESS = 32767
MAX_TEXT_SCALE = 100.0


def class_color(class_id: int) -> tuple[int, int, int]:
    """The palette colour (RGB) of a class id: ``PALETTE[class_id % len(PALETTE)]``."""
    return PALETTE[int(class_id) % len(PALETTE)]


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def _as_drawable(image: np.ndarray) -> np.ndarray:
    """A C-contiguous uint8 copy with 3 (RGB) or 4 (RGBA) channels; gray becomes RGB."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype} (convert it, e.g. with np.clip(x, 0, 255)"
                        ".astype(np.uint8))")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    return np.array(image, dtype=np.uint8, order="C", copy=True)


def annotate(image: np.ndarray, xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray,
             class_names: Sequence[str] | None = None, keypoints: np.ndarray | None = None, *,
             thickness: int | None = None, text_scale: float | None = None, labels: bool = True,
             scores: bool = True, palette: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Draws boxes, labels and keypoints on a copy of ``image`` (see ``Detections.annotate``)."""
    import cv2

    out = _as_drawable(image)
    h, w = out.shape[:2]
    n = len(xyxy)
    if n == 0:
        return out
    pal = PALETTE if palette is None else tuple(tuple(int(v) for v in c) for c in palette)
    if not pal or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in pal):
        raise ValueError("palette must be a non-empty sequence of (r, g, b) colours with values in 0..255")
    lw = max(1, round((h + w) / 2 * 0.003)) if thickness is None else int(thickness)
    if not 1 <= lw <= MAX_THICKNESS:  # OpenCV asserts thickness <= 32767
        raise ValueError(f"thickness must be in [1, {MAX_THICKNESS}], got {thickness}")
    scale = min(max(0.35, lw / 3), MAX_TEXT_SCALE) if text_scale is None else float(text_scale)
    if not 0 < scale <= MAX_TEXT_SCALE:  # OpenCV's putText crashed the process from about 5000 (and inf)
        raise ValueError(f"text_scale must be in (0, {MAX_TEXT_SCALE:g}], got {text_scale}")
    font, font_lw = cv2.FONT_HERSHEY_SIMPLEX, max(1, lw // 2)
    alpha = out.shape[2] == 4

    def col(c):  # the colour in the image's channel count
        return (*c, 255) if alpha else tuple(c)

    # boxes clipped a little beyond the image (OpenCV's int32 maths must not overflow on far boxes);
    # an edge is drawn on the pixel holding its coordinate: a box [0, 10) spans pixels 0..9
    f = np.clip(np.asarray(xyxy, np.float64), -2 * lw - 2, np.array([w, h, w, h]) + 2 * lw + 1)
    start = np.floor(f[:, :2])
    b = np.concatenate([start, np.maximum(start, np.ceil(f[:, 2:]) - 1)], axis=1).astype(np.int64)
    order = np.argsort(np.asarray(confidence), kind="stable")  # the best drawn last, on top
    colors = [pal[int(c) % len(pal)] for c in class_id]
    for i in order:
        x1, y1, x2, y2 = (int(v) for v in b[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), col(colors[i]), lw, cv2.LINE_8)
    if keypoints is not None and len(keypoints):
        r = max(1, lw)
        for i in order:
            for x, y in np.asarray(keypoints[i], np.float64):
                if np.isfinite(x) and np.isfinite(y) and -r <= x < w + r and -r <= y < h + r:
                    c = (int(x), int(y))
                    cv2.circle(out, c, r + 1, col(_text_color(colors[i])), -1, cv2.LINE_AA)
                    cv2.circle(out, c, r, col(colors[i]), -1, cv2.LINE_AA)
    if not labels:
        return out
    pad = max(1, lw)
    for i in order:
        name = str(class_names[int(class_id[i])]) if class_names is not None else str(int(class_id[i]))
        text = f"{name} {float(confidence[i]):.2f}" if scores else name
        (tw, th), base = cv2.getTextSize(text, font, scale, font_lw)
        bw, bh = tw + 2 * pad, th + base + 2 * pad
        x1, y1, _, y2 = (int(v) for v in b[i])
        lx = min(max(x1, 0), max(0, w - bw))          # inside the image horizontally
        ly = y1 - bh if y1 - bh >= 0 else max(y1, 0)  # above the box, or inside it at the top
        ly = min(ly, max(0, h - bh))
        cv2.rectangle(out, (lx, ly), (lx + bw - 1, ly + bh - 1), col(colors[i]), -1)
        cv2.putText(out, text, (lx + pad, ly + pad + th), font, scale, col(_text_color(colors[i])), font_lw,
                    cv2.LINE_AA)
    return out
