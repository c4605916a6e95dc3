"""Model-input preprocessing: ``PreprocessConfig`` and the fused ``preprocess`` kernel.

Conventions (written once, tested in tests/test_preprocess.py):

* pixel centres sit at +0.5: output pixel ``d`` of a resize by ``scale = src / dst`` samples
  source position ``(d + 0.5) * scale - 0.5``;
* geometry is affine per axis: ``model = original * scale + offset``; ``ImageTransform`` records
  it and maps boxes back (``to_original``);
* ``center_crop`` follows timm / torchvision (shorter side to ``floor(size / crop_pct)``, longer
  side truncated, crop offset ``round((resized - size) / 2)``); ``letterbox`` follows Ultralytics
  (``round`` of the scaled size, pads ``round(pad / 2 - 0.1)`` before and the rest after).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from . import _core

__all__ = ["PreprocessConfig", "ImageTransform", "Transforms", "preprocess"]

_RESIZE = ("stretch", "center_crop", "letterbox")
_INTERP = {"nearest": 0, "bilinear": 1, "bilinear_aa": 2, "area": 3}
_ORDERS = ("RGB", "BGR")
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES = ("float32", "float16", "uint8")
_GRAY_RGB = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV and Pillow convert to gray


def _triple(name: str, value: object, channels: int) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        vals = (float(value),) * channels
    else:
        try:
            vals = tuple(float(v) for v in value)  # type: ignore[union-attr]
        except TypeError:
            raise TypeError(f"{name} must be a number or a sequence of numbers, got {type(value).__name__}") from None
    if len(vals) != channels:
        raise ValueError(f"{name} must have {channels} values (one per channel), got {len(vals)}: {vals}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{name} must be finite, got {vals}")
    return vals


@dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """How an image becomes a model input.

    Attributes:
        size: ``(H, W)`` of the model input.
        resize: ``"stretch"`` (both axes to size), ``"center_crop"`` (timm: shorter side to
            ``size / crop_pct``, then centre crop) or ``"letterbox"`` (aspect-preserving fit,
            centred, padded with ``pad_value``).
        crop_pct: fraction kept by ``center_crop``, in (0, 1].
        interpolation: ``"nearest"``, ``"bilinear"`` (OpenCV INTER_LINEAR), ``"bilinear_aa"``
            (Pillow BILINEAR with antialias, as torchvision / timm train) or ``"area"`` (OpenCV
            INTER_AREA).
        mean, std: per output channel, in 0..1 units: ``out = (pixel / max - mean) / std``.
        channel_order: channel order the model expects, ``"RGB"`` or ``"BGR"``.
        layout: ``"NCHW"`` or ``"NHWC"``.
        dtype: ``"float32"``, ``"float16"`` or ``"uint8"`` (raw resized pixels; mean / std unused).
        pad_value: letterbox padding in 0..255 pixel units (one value or one per channel).
        channels: 3 (colour) or 1 (gray: colour inputs are converted with BT.601 weights).
    """

    size: tuple[int, int] = (224, 224)
    resize: str = "center_crop"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    pad_value: float | tuple[float, ...] = 114.0
    channels: int = 3

    def __post_init__(self) -> None:
        try:
            size = tuple(int(s) for s in self.size)
        except TypeError:
            raise TypeError(f"size must be (H, W), got {self.size!r}") from None
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be (H, W) with positive sides, got {self.size!r}")
        object.__setattr__(self, "size", size)
        for name, value, allowed in (
            ("resize", self.resize, _RESIZE),
            ("interpolation", self.interpolation, tuple(_INTERP)),
            ("channel_order", self.channel_order, _ORDERS),
            ("layout", self.layout, _LAYOUTS),
            ("dtype", self.dtype, _DTYPES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if not (0.0 < float(self.crop_pct) <= 1.0):
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")
        object.__setattr__(self, "crop_pct", float(self.crop_pct))
        mean = _triple("mean", self.mean, self.channels)
        std = _triple("std", self.std, self.channels)
        if any(s == 0.0 for s in std):
            raise ValueError(f"std must be non-zero, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        pad = _triple("pad_value", self.pad_value, self.channels)
        object.__setattr__(self, "pad_value", pad if len(set(pad)) > 1 else pad[0])

    # -- serialisation (stored in ONNX metadata_props under "pyimgcls.preprocess")
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "PreprocessConfig":
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"preprocess config JSON must be an object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown preprocess config keys: {sorted(unknown)}")
        for k in ("size", "mean", "std", "pad_value"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)

    def plan(self, height: int, width: int) -> tuple[tuple[int, ...], "ImageTransform"]:
        """Geometry for one ``height`` x ``width`` image.

        Returns:
            ``(plan, transform)``: ``plan`` is the 8 ints the kernel takes (resized h, w; crop
            y, x; output y, x; content h, w) and ``transform`` maps boxes back.
        """
        H, W = self.size
        h, w = int(height), int(width)
        if self.resize == "stretch":
            rh, rw, cy, cx, oy, ox = H, W, 0, 0, 0, 0
            ch, cw = H, W
            scale = (H / h, W / w)
            offset = (0.0, 0.0)
        elif self.resize == "center_crop":
            sh, sw = (math.floor(s / self.crop_pct) for s in (H, W))
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


def _as_image_list(images: object) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(
                f"a single array of images must have shape (N, H, W, C), got {images.shape}; "
                "pass one image as a list: [image]"
            )
        return list(images)
    if isinstance(images, (list, tuple)):
        out = []
        for i, im in enumerate(images):
            if not isinstance(im, np.ndarray):
                raise TypeError(f"images[{i}] must be a numpy array, got {type(im).__name__}")
            out.append(im)
        return out
    raise TypeError(f"images must be a list of arrays or an (N, H, W, C) array, got {type(images).__name__}")


def _check_image(i: int, im: np.ndarray) -> np.ndarray:
    if im.dtype.char not in "BH":  # uint8, uint16
        raise TypeError(f"images[{i}] must be uint8 or uint16, got {im.dtype}")
    if im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[2] not in (1, 3, 4)):
        raise ValueError(f"images[{i}] must have shape (H, W) or (H, W, C) with C in 1, 3, 4; got {im.shape}")
    if im.shape[0] == 0 or im.shape[1] == 0:
        raise ValueError(f"images[{i}] must be non-empty, got shape {im.shape}")
    c = 1 if im.ndim == 2 else im.shape[2]
    if im.strides[1] != c * im.itemsize or (im.ndim == 3 and im.strides[2] != im.itemsize) or im.strides[0] < 0:
        im = np.ascontiguousarray(im)
    return im


def output_shape(config: PreprocessConfig, n: int) -> tuple[int, int, int, int]:
    H, W = config.size
    C = config.channels
    return (n, C, H, W) if config.layout == "NCHW" else (n, H, W, C)


def preprocess(
    images: Sequence[np.ndarray] | np.ndarray,
    config: PreprocessConfig,
    *,
    threads: int = 0,
    out: np.ndarray | None = None,
    input_order: str = "RGB",
) -> tuple[np.ndarray, Transforms]:
    """Turns images into one model-ready batch tensor in a single fused pass per image.

    Args:
        images: a list of (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 / uint16 arrays of any
            sizes, or one (N, H, W, C) array. Colour channels are in ``input_order``; a fourth
            channel (alpha) is ignored.
        config: the ``PreprocessConfig``.
        threads: worker threads (0 = all cores); threaded over images, or over rows for one image.
        out: optional C-contiguous array of the output shape and dtype to write into (no
            allocation); its batch may be larger than ``len(images)``.
        input_order: ``"RGB"`` (as ``read_image`` returns) or ``"BGR"`` (OpenCV arrays).

    Returns:
        ``(batch, transforms)``: ``batch`` is (N, C, H, W) or (N, H, W, C) of ``config.dtype``;
        ``transforms[i]`` maps boxes of image ``i`` back to its original coordinates.
    """
    if not isinstance(config, PreprocessConfig):
        raise TypeError(f"config must be a PreprocessConfig, got {type(config).__name__}")
    if input_order not in _ORDERS:
        raise ValueError(f"input_order must be one of {_ORDERS}, got {input_order!r}")
    if not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(f"threads must be a non-negative int, got {threads!r}")
    ims = [_check_image(i, im) for i, im in enumerate(_as_image_list(images))]
    n = len(ims)
    cache = config.__dict__.setdefault("_kernel_params", {})
    tail_dtype = cache.get("tail")
    if tail_dtype is None:
        tail_dtype = cache["tail"] = (output_shape(config, 1)[1:], np.dtype(config.dtype))
    shape = (n,) + tail_dtype[0]
    dtype = tail_dtype[1]
    if out is None:
        out = np.empty(shape, dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"out must be {dtype}, got {out.dtype}")
        if out.shape[1:] != shape[1:] or out.shape[0] < n or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous array of shape {shape}, got {out.shape}")
    plans = np.empty((n, 8), np.int32)
    tfs = []
    plan_cache = cache.setdefault("plans", {})
    for i, im in enumerate(ims):
        hw = im.shape[:2]
        hit = plan_cache.get(hw)
        if hit is None:
            if len(plan_cache) > 1024:  # bounded: many sizes just recompute
                plan_cache.clear()
            hit = plan_cache[hw] = config.plan(hw[0], hw[1])
        plans[i] = hit[0]
        tfs.append(hit[1])
    if n:
        # Group by pixel depth: the value scale differs between uint8 and uint16 sources.
        depth = ims[0].dtype
        if all(im.dtype == depth for im in ims):
            _run(config, ims, plans, out, depth, threads, input_order)
        else:
            for depth in {im.dtype for im in ims}:
                idx = [i for i, im in enumerate(ims) if im.dtype == depth]
                part = np.empty((len(idx),) + out.shape[1:], out.dtype)
                _run(config, [ims[i] for i in idx], plans[idx], part, depth, threads, input_order)
                out[idx] = part
    return (out if out.shape[0] == n else out[:n]), Transforms(tuple(tfs))


def _params(config: PreprocessConfig, depth: np.dtype, input_order: str):
    """Kernel arguments for a config, pixel depth and input order (cached on the frozen config)."""
    key = (np.dtype(depth).char, input_order)
    cache = config.__dict__.setdefault("_kernel_params", {})
    hit = cache.get(key)
    if hit is not None:
        return hit
    maxval = 255.0 if depth == np.uint8 else 65535.0
    C = config.channels
    if C == 3:
        channel_map = [0, 1, 2] if config.channel_order == input_order else [2, 1, 0]
    else:
        channel_map = [0, 1, 2]
    gray = list(_GRAY_RGB if input_order == "RGB" else _GRAY_RGB[::-1])
    pad = config.pad_value if isinstance(config.pad_value, tuple) else (config.pad_value,) * C
    if config.dtype == "uint8":
        scale = [255.0 / maxval] * C
        bias = [0.0] * C
        padv = [float(v) for v in pad]
    else:
        scale = [1.0 / (maxval * s) for s in config.std]
        bias = [-m / s for m, s in zip(config.mean, config.std)]
        padv = [(v / 255.0 - m) / s for v, m, s in zip(pad, config.mean, config.std)]

    def fill(v):
        return list(v) + [0.0] * (3 - len(v))

    layout = 0 if config.layout == "NCHW" else 1
    hit = (layout, _INTERP[config.interpolation], C, channel_map, gray, fill(scale), fill(bias), fill(padv))
    cache[key] = hit
    return hit


def _run(config, ims, plans, out, depth, threads, input_order):
    layout, interp, C, channel_map, gray, scale, bias, pad = _params(config, depth, input_order)
    _core.preprocess_batch(ims, plans, out, layout, interp, C, channel_map, gray, scale, bias, pad, int(threads))
