"""``PreprocessConfig``: how an image becomes a model input (stored in ONNX metadata as JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..limits import MAX_INPUT_PIXELS, MAX_INPUT_SIDE

if TYPE_CHECKING:
    from .transform import ImageTransform

__all__ = ["PreprocessConfig"]

_RESIZE = ("stretch", "center_crop", "letterbox")
_INTERP = {"nearest": 0, "bilinear": 1, "bilinear_aa": 2, "area": 3, "bicubic": 4, "bicubic_aa": 5,
           "bilinear_cv2": 6}
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
        size: ``(H, W)`` of the model input; one int for a square (``size=224``).
        resize: ``"stretch"`` (both axes to size), ``"center_crop"`` (timm: shorter side to
            ``size / crop_pct``, then centre crop) or ``"letterbox"`` (aspect-preserving fit,
            centred, padded with ``pad_value``).
        crop_pct: fraction kept by ``center_crop``, in (0, 1].
        interpolation: ``"nearest"``, ``"bilinear"`` (OpenCV INTER_LINEAR, computed in float32: within
            one uint8 level of OpenCV's fixed-point uint8 result), ``"bilinear_cv2"`` (OpenCV
            INTER_LINEAR bit-exact for uint8 images: the uint8 image ``cv2.resize(img, (w, h),
            interpolation=cv2.INTER_LINEAR)`` returns, OpenCV's 11-bit integer weights, edge clamping
            and exact-2x block mean included, then normalised; as Ultralytics' LetterBox resizes;
            uint16 images take the float ``"bilinear"`` path), ``"bilinear_aa"``
            (Pillow BILINEAR with antialias, as torchvision / timm train), ``"area"`` (OpenCV
            INTER_AREA), ``"bicubic"`` (OpenCV INTER_CUBIC: a = -0.75, 4 taps, no antialias) or
            ``"bicubic_aa"`` (Pillow BICUBIC: a = -0.5, antialiased, as timm's eval transform of
            many models). Bicubic overshoots at edges: ``"bicubic"`` keeps the value in float
            outputs (as OpenCV's float path) and saturates uint8; ``"bicubic_aa"`` clips each pass
            to the pixel range, as Pillow's uint8 images are.
        mean, std: per output channel, in 0..1 units: ``out = (pixel / max - mean) / std``.
        channel_order: channel order the model expects, ``"RGB"`` or ``"BGR"``.
        layout: ``"NCHW"`` or ``"NHWC"``.
        dtype: ``"float32"``, ``"float16"`` or ``"uint8"`` (raw resized pixels; mean / std unused).
            Mode names (resize, interpolation, channel order, layout, dtype) are case-insensitive.
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
        for name, norm in (("resize", str.lower), ("interpolation", str.lower), ("channel_order", str.upper),
                           ("layout", str.upper), ("dtype", str.lower)):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, norm(value.strip()))
        try:
            size = (int(self.size),) * 2 if isinstance(self.size, numbers.Integral) else tuple(int(s) for s in self.size)
        except TypeError:
            raise TypeError(f"size must be (H, W), got {self.size!r}") from None
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be (H, W) with positive sides, got {self.size!r}")
        if max(size) > MAX_INPUT_SIDE or size[0] * size[1] > MAX_INPUT_PIXELS:
            raise ValueError(f"size {size} is beyond pyimgcls' model-input limit (sides up to {MAX_INPUT_SIDE}, "
                             f"{MAX_INPUT_PIXELS:,} pixels per image: pyimgcls.limits); a batch buffer would need "
                             f"{size[0] * size[1] * 3 * 4 / 2**30:.1f} GiB per image")
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

    def replace(self, **changes) -> "PreprocessConfig":
        """A copy with some fields changed (checked like a new config)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown PreprocessConfig fields: {sorted(unknown)}; known: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_timm(cls, data_config: dict, **overrides) -> "PreprocessConfig":
        """The config of timm's ``resolve_data_config(...)`` dict (``input_size``, ``interpolation``,
        ``mean``, ``std``, ``crop_pct``, ``crop_mode``), for a model exported from timm.

        timm's eval transform resizes with Pillow, so ``bilinear`` / ``bicubic`` map to the
        antialiased ``bilinear_aa`` / ``bicubic_aa``; ``crop_mode="center"`` is ``center_crop``
        and ``"squash"`` with ``crop_pct=1`` is ``stretch``.
        """
        if not isinstance(data_config, dict):
            raise TypeError(f"data_config must be a dict, got {type(data_config).__name__}")
        c, h, w = (int(v) for v in data_config.get("input_size", (3, 224, 224)))
        interp = str(data_config.get("interpolation", "bilinear")).lower()
        interps = {"bilinear": "bilinear_aa", "bicubic": "bicubic_aa", "nearest": "nearest"}
        if interp not in interps:
            raise ValueError(f"timm interpolation {interp!r} has no pyimgcls equivalent; known: {sorted(interps)}")
        crop_pct = float(data_config.get("crop_pct", 0.875) or 1.0)
        mode = str(data_config.get("crop_mode", "center")).lower()
        if mode == "center":
            resize = "center_crop"
        elif mode == "squash" and crop_pct == 1.0:
            resize = "stretch"
        else:
            raise ValueError(f"timm crop_mode {mode!r} with crop_pct={crop_pct} has no pyimgcls equivalent")
        kw = dict(size=(h, w), resize=resize, crop_pct=crop_pct, interpolation=interps[interp],
                  mean=tuple(data_config.get("mean", (0.485, 0.456, 0.406)))[:c] if c == 3 else (0.5,),
                  std=tuple(data_config.get("std", (0.229, 0.224, 0.225)))[:c] if c == 3 else (0.5,), channels=c)
        if c == 1:
            kw["mean"] = tuple(data_config.get("mean", (0.5,)))[:1]
            kw["std"] = tuple(data_config.get("std", (0.5,)))[:1]
        kw.update(overrides)
        return cls(**kw)

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

    def plan(self, height: int, width: int) -> tuple[tuple[int, ...], ImageTransform]:
        """Geometry for one ``height`` x ``width`` image (see ``transform.plan_geometry``).

        Returns:
            ``(plan, transform)``: ``plan`` is the 8 ints the kernel takes (resized h, w; crop
            y, x; output y, x; content h, w) and ``transform`` maps boxes back.
        """
        from .transform import plan_geometry

        return plan_geometry(self, height, width)
