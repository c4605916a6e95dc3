"""``crop_resize``: a batch of box crops of one image, resampled, normalised and laid out (native).

Conventions: boxes are ``xyxy`` in pixel-edge coordinates (pixel ``(y, x)`` covers ``[x, x + 1)``);
the crop of a box is the box region of the image extended by ``fill`` outside it (MTCNN pads the
part of a box outside the image with zeros before resizing), resampled with half-pixel centres; taps
past the box edge are clamped onto its edge pixels, as ``cv2.resize`` of the slice
``image[y1:y2, x1:x2]`` replicates its border. Integer boxes inside the image give exactly what a
loop of ``cv2.resize`` on slices gives (in float; cv2's uint8 path rounds its 11-bit weights).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from .. import _core
from ..limits import MAX_INPUT_SIDE
from ..runtime.threads import resolve_threads

__all__ = ["crop_resize"]

_INTERPOLATIONS = {"bilinear": 0, "area": 1, "bilinear_cv2": 2}
_LAYOUTS = {"NCHW": 0, "NHWC": 1, "NWHC": 2}


def _per_channel(value, channels: int, name: str) -> list[float]:
    if isinstance(value, numbers.Real):
        vals = [float(value)] * channels
    else:
        vals = [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]
        if len(vals) != channels:
            raise ValueError(f"{name} must be a number or {channels} values (one per channel), got {len(vals)}")
    if not all(np.isfinite(vals)):
        raise ValueError(f"{name} must be finite, got {vals}")
    return vals


def _size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            if isinstance(size, (str, bytes)):  # "88" would read as (8, 8)
                raise TypeError
            h, w = size
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (h, w)):
                raise TypeError  # (2.5, 3.7) would be cut to (2, 3)
            h, w = int(h), int(w)
        except (TypeError, ValueError):
            raise TypeError(f"size must be an int or (height, width) of ints, got {size!r}") from None
    if not (1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        raise ValueError(f"size must be in [1, {MAX_INPUT_SIDE}] on each side, got ({h}, {w})")
    return h, w


def crop_resize(image: np.ndarray, boxes, size, *, interpolation: str = "bilinear", fill: float | Sequence[float] = 0.0,
                mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0, layout: str = "NCHW",
                dtype: str = "float32", threads: int = 0, out: np.ndarray | None = None,
                _kernels: str = "auto") -> np.ndarray:
    """Cuts every box out of ``image`` and resizes it to ``size``, in one native call.

    Args:
        image: (H, W) or (H, W, C) uint8, any strides (views, negative steps); channels as stored.
        boxes: (K, 4) xyxy in pixels, finite, ``x2 > x1`` and ``y2 > y1``; may reach outside the image
            (those parts read ``fill``) and be of any size (the tables are bounded by the image).
        size: ``(h, w)`` of each crop, or one int for a square.
        interpolation: ``"bilinear"`` (half-pixel centres, cv2 ``INTER_LINEAR`` on the slice, no
            antialias; float32 arithmetic, within one uint8 level of OpenCV's fixed-point result),
            ``"area"`` (cv2 ``INTER_AREA`` on the slice; integer boxes only) or ``"bilinear_cv2"``
            (``cv2.resize(image[y1:y2, x1:x2], (w, h))`` bit for bit: OpenCV's integer INTER_LINEAR,
            as ``PreprocessConfig(interpolation="bilinear_cv2")``; integer boxes inside the image, 1 or
            3 channels, NCHW or NHWC; an image whose pixels or rows are not contiguous is copied
            first).
        fill: value of the pixels outside the image, in pixel units (before ``mean`` / ``std``).
        mean, std: output ``(value - mean) / std``, per channel or one number (MTCNN: 127.5, 128).
        layout: ``"NCHW"`` -> (K, C, h, w), ``"NHWC"`` -> (K, h, w, C), ``"NWHC"`` -> (K, w, h, C)
            (the transposed Keras layout the MTCNN ONNX files take).
        dtype: ``"float32"`` (default) or ``"uint8"``: rounded half away from zero and saturated to
            [0, 255] after ``mean`` / ``std`` (a resize as OpenCV's uint8 path gives it, to within its
            fixed-point rounding; MTCNN's pyramid is such a uint8 resize).
        threads: worker threads over boxes (0 = all usable cores).
        out: ``None`` (a new array), or a writeable C-contiguous array of the result's shape and
            ``dtype`` to write into and return: a loop that crops as many boxes each time saves the
            allocation, and the page faults of a fresh large array (about 1 ms for 256 crops of 48x48
            float32, more than the crops themselves take). It must share no memory with ``image``
            or ``boxes``.
        _kernels: private, for the tests: the bilinear path's row kernels, ``"auto"`` (the best this
            CPU runs) or one of ``pyimgcls._core.crop_kernel_sets()`` (``"baseline"``, ``"avx2"``); the
            outputs are bit-identical. ``ValueError`` for one that is not offered here.

    Returns:
        array of ``dtype`` in ``layout``.

    Raises:
        TypeError: ``image`` not uint8 or not an array.
        ValueError: bad shapes, non-finite or empty boxes, non-integer boxes with ``"area"``; ``out`` of
            the wrong shape, not C-contiguous, read-only or sharing memory with the inputs (``TypeError``
            for the wrong dtype).

    Thread-safe: it reads ``image`` and writes a new array (or ``out``: one thread at a time per ``out``).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    b = np.asarray(boxes)
    if b.dtype.kind not in "fiu":
        raise TypeError(f"boxes must be a numeric array, got {b.dtype}")
    if b.size == 0 and b.ndim <= 2:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (K, 4), got {b.shape}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    h, w = _size(size)
    c = 1 if image.ndim == 2 else image.shape[2]
    m = np.asarray(_per_channel(mean, c, "mean"))
    s = np.asarray(_per_channel(std, c, "std"))
    if (s == 0).any():
        raise ValueError(f"std must be non-zero, got {s.tolist()}")
    f = _per_channel(fill, c, "fill")
    if interpolation == "bilinear_cv2" and image.size and not (
            image.strides[1] == c and (image.ndim == 2 or image.strides[2] == 1) and image.strides[0] >= image.shape[1] * c):
        image = np.ascontiguousarray(image)  # the exact rows read whole pixels and rows
    return _core.crop_resize(image, np.ascontiguousarray(b, dtype=np.float64), h, w, _INTERPOLATIONS[interpolation],
                             _LAYOUTS[layout], f, (1.0 / s).tolist(), (-m / s).tolist(), resolve_threads(threads),
                             dtype == "uint8", _kernels, out)
