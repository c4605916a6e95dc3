"""``preprocess``: images -> one model-ready batch tensor, one fused native pass per image.

The geometry conventions are in ``transform.py``; the parameters in ``config.py``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import _core
from ..io.sources import float_to_uint16
from ..runtime.threads import resolve_threads
from .config import _GRAY_RGB, _INTERP, _ORDERS, PreprocessConfig
from .transform import Transforms

__all__ = ["preprocess", "output_shape"]


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


_INT32_MAX = 2**31 - 1


def _check_image(i: int, im: np.ndarray) -> np.ndarray:
    if im.dtype.kind == "f":  # float images in [0, 1]: as 16-bit samples
        try:
            im = float_to_uint16(im)
        except ValueError as e:
            raise ValueError(f"images[{i}]: {e}") from None
    if im.dtype.kind != "u" or im.dtype.itemsize not in (1, 2) or im.dtype.fields is not None:
        raise TypeError(f"images[{i}] must be uint8, uint16 or float in [0, 1], got {im.dtype}")
    canonical = np.dtype(np.uint8) if im.dtype.itemsize == 1 else np.dtype(np.uint16)
    if not im.dtype.isnative:
        im = im.astype(canonical)  # byte-swapped uint16: the kernel reads native words
    elif im.dtype is not canonical:
        im = im.view(canonical)  # the same bytes under the builtin dtype object (metadata, aliases)
    if im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[2] not in (1, 3, 4)):
        raise ValueError(f"images[{i}] must have shape (H, W) or (H, W, C) with C in 1, 3, 4; got {im.shape}")
    if im.shape[0] == 0 or im.shape[1] == 0:
        raise ValueError(f"images[{i}] must be non-empty, got shape {im.shape}")
    c = 1 if im.ndim == 2 else im.shape[2]
    # the kernel reads rows of c * w contiguous samples at a positive row stride that does not
    # overlap the previous row: anything else (negative, zero or short strides of broadcast
    # views, strided pixels) is copied first, so nothing outside the array is ever read; the
    # stride of an axis of length 1 is never used (and NumPy leaves any value there)
    pixels_ok = (im.shape[1] == 1 or im.strides[1] == c * im.itemsize) and (c == 1 or im.strides[2] == im.itemsize)
    if not pixels_ok or (im.shape[0] > 1 and im.strides[0] < im.shape[1] * c * im.itemsize):
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
    _kernels: str = "auto",
) -> tuple[np.ndarray, Transforms]:
    """Turns images into one model-ready batch tensor in a single fused pass per image.

    Args:
        images: a list of (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 / uint16 arrays of any
            sizes, or one (N, H, W, C) array. Colour channels are in ``input_order``; a fourth
            channel (alpha) is ignored.
        config: the ``PreprocessConfig``.
        threads: worker threads (0 = all usable cores, see ``pyimgcls.runtime.threads``); threaded over images, or over rows for one image.
        out: optional C-contiguous array of the output shape and dtype to write into (no
            allocation); its batch may be larger than ``len(images)``.
        input_order: ``"RGB"`` (as ``read_image`` returns) or ``"BGR"`` (OpenCV arrays).
        _kernels: private, for the tests: the native kernel set, ``"auto"`` (the best one this
            CPU runs) or one of ``pyimgcls._core.preprocess_kernel_sets()`` (``"scalar"``,
            ``"sse2"``, ``"sse41"``); ``ValueError`` for one that is not offered here.

    Returns:
        ``(batch, transforms)``: ``batch`` is (N, C, H, W) or (N, H, W, C) of ``config.dtype``;
        ``transforms[i]`` maps boxes of image ``i`` back to its original coordinates.
    """
    if not isinstance(config, PreprocessConfig):
        raise TypeError(f"config must be a PreprocessConfig, got {type(config).__name__}")
    if input_order not in _ORDERS:
        raise ValueError(f"input_order must be one of {_ORDERS}, got {input_order!r}")
    threads = resolve_threads(threads)
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
            hit = config.plan(hw[0], hw[1])
            if max(hit[0]) > _INT32_MAX:
                raise ValueError(f"images[{i}]: a {hw[0]}x{hw[1]} image would be resized to {hit[0][0]}x{hit[0][1]} "
                                 f"pixels for {config.resize}, beyond what the kernel indexes (2^31); crop or pad "
                                 "an image of such an extreme aspect ratio first")
            plan_cache[hw] = hit
        plans[i] = hit[0]
        tfs.append(hit[1])
    if n:
        # Group by pixel depth: the value scale differs between uint8 and uint16 sources.
        depth = ims[0].dtype
        if all(im.dtype == depth for im in ims):
            _run(config, ims, plans, out, depth, threads, input_order, _kernels)
        else:
            for depth in {im.dtype for im in ims}:
                idx = [i for i, im in enumerate(ims) if im.dtype == depth]
                part = np.empty((len(idx),) + out.shape[1:], out.dtype)
                _run(config, [ims[i] for i in idx], plans[idx], part, depth, threads, input_order, _kernels)
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


def _run(config, ims, plans, out, depth, threads, input_order, kernels):
    layout, interp, C, channel_map, gray, scale, bias, pad = _params(config, depth, input_order)
    _core.preprocess_batch(ims, plans, out, layout, interp, C, channel_map, gray, scale, bias, pad, int(threads),
                           kernels)
