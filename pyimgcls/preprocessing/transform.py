"""``ImageTransform``: the geometry of one preprocessed image, and the plan the kernel follows.

Conventions (written once, tested in tests/preprocessing/):

* pixel centres sit at +0.5: output pixel ``d`` of a resize by ``scale = src / dst`` samples
  source position ``(d + 0.5) * scale - 0.5``;
* geometry is affine per axis: ``model = original * scale + offset``; ``ImageTransform`` records
  it and maps boxes back (``to_original``);
* ``center_crop`` follows timm / torchvision (shorter side to ``floor(size / crop_pct)``, longer
  side truncated, crop offset ``round((resized - size) / 2)``); ``letterbox`` follows Ultralytics
  (``round`` of the scaled size, pads ``round(pad / 2 - 0.1)`` before and the rest after).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from .config import PreprocessConfig

__all__ = ["ImageTransform", "Transforms", "plan_geometry"]


def plan_geometry(config: PreprocessConfig, height: int, width: int) -> tuple[tuple[int, ...], ImageTransform]:
    """Geometry for one ``height`` x ``width`` image under ``config``.

    Returns:
        ``(plan, transform)``: ``plan`` is the 8 ints the kernel takes (resized h, w; crop
        y, x; output y, x; content h, w) and ``transform`` maps boxes back.
    """
    H, W = config.size
    h, w = int(height), int(width)
    if config.resize == "stretch":
        rh, rw, cy, cx, oy, ox = H, W, 0, 0, 0, 0
        ch, cw = H, W
        scale = (H / h, W / w)
        offset = (0.0, 0.0)
    elif config.resize == "center_crop":
        sh, sw = (math.floor(s / config.crop_pct) for s in (H, W))
        if sh == sw:  # torchvision Resize(int): shorter side to sh, longer side truncated
            if w <= h:
                rw, rh = sh, int(sh * h / w)
            else:
                rh, rw = sh, int(sh * w / h)
        else:  # timm ResizeKeepRatio
            ratio = min(h / sh, w / sw)
            rh, rw = round(h / ratio), round(w / ratio)
        rh, rw = max(rh, H), max(rw, W)
        cy, cx = int(round((rh - H) / 2.0)), int(round((rw - W) / 2.0))
        oy, ox, ch, cw = 0, 0, H, W
        scale = (rh / h, rw / w)
        offset = (-float(cy), -float(cx))
    else:  # letterbox
        r = min(H / h, W / w)
        rh = min(H, max(1, int(round(h * r))))
        rw = min(W, max(1, int(round(w * r))))
        oy = int(round((H - rh) / 2 - 0.1))
        ox = int(round((W - rw) / 2 - 0.1))
        oy, ox = max(oy, 0), max(ox, 0)
        cy, cx, ch, cw = 0, 0, rh, rw
        scale = (rh / h, rw / w)
        offset = (float(oy), float(ox))
    plan = (rh, rw, cy, cx, oy, ox, ch, cw)
    return plan, ImageTransform(original_size=(h, w), input_size=(H, W), scale=scale, offset=offset)


@dataclass(frozen=True)
class ImageTransform:
    """Affine per-axis map from original image to model input: ``input = original * scale + offset``.

    Attributes:
        original_size: ``(h, w)`` of the original image.
        input_size: ``(H, W)`` of the model input.
        scale: ``(sy, sx)``.
        offset: ``(oy, ox)`` in input pixels (letterbox padding, or minus the crop offset).
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]

    def to_original(self, boxes: np.ndarray, *, clip: bool = True) -> np.ndarray:
        """Maps ``(N, 4)`` xyxy boxes from model-input to original-image coordinates (float64 math)."""
        b = _boxes(boxes)
        sy, sx = self.scale
        oy, ox = self.offset
        out = np.empty_like(b, dtype=np.float64)
        out[:, [0, 2]] = (b[:, [0, 2]] - ox) / sx
        out[:, [1, 3]] = (b[:, [1, 3]] - oy) / sy
        if clip:
            h, w = self.original_size
            out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
            out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
        return _like(out, boxes)

    def at_full_resolution(self, decode_scale: float, full_size: tuple[int, int]) -> ImageTransform:
        """This transform re-based on the full-resolution image that was decoded at
        ``decode_scale`` (decoded = full * decode_scale, e.g. 1/4 for a DCT-scaled JPEG) and whose
        size is ``full_size`` ``(h, w)``: ``to_original`` then gives full-resolution pixels."""
        if not decode_scale > 0:
            raise ValueError(f"decode_scale must be > 0, got {decode_scale!r}")
        sy, sx = self.scale
        return ImageTransform(original_size=(int(full_size[0]), int(full_size[1])), input_size=self.input_size,
                              scale=(sy * decode_scale, sx * decode_scale), offset=self.offset)

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Maps ``(N, 4)`` xyxy boxes from original-image to model-input coordinates (float64 math)."""
        b = _boxes(boxes)
        sy, sx = self.scale
        oy, ox = self.offset
        out = np.empty_like(b, dtype=np.float64)
        out[:, [0, 2]] = b[:, [0, 2]] * sx + ox
        out[:, [1, 3]] = b[:, [1, 3]] * sy + oy
        return _like(out, boxes)


def _like(out: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    dt = np.asarray(boxes).dtype
    return out.astype(dt if dt.kind == "f" else np.float64, copy=False)


def _boxes(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {b.shape}")
    if b.dtype.kind not in "fiu":
        raise TypeError(f"boxes must be numeric, got {b.dtype}")
    return b.astype(np.float64, copy=False)


@dataclass(frozen=True)
class Transforms(Sequence[ImageTransform]):
    """Per-image transforms of a preprocessed batch, in batch order."""

    items: tuple[ImageTransform, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        return self.items[i]

    def __iter__(self) -> Iterator[ImageTransform]:
        return iter(self.items)

    def to_original(self, i: int, boxes: np.ndarray, *, clip: bool = True) -> np.ndarray:
        """Maps boxes of image ``i`` from model-input to original coordinates."""
        return self.items[i].to_original(boxes, clip=clip)

