"""``Detections``: the result of a detector for one image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..preprocessing import ImageTransform

__all__ = ["Detections"]


@dataclass
class Detections:
    """Detections of one image.

    Attributes:
        xyxy: (N, 4) float32 boxes, xyxy, in pixels.
        confidence: (N,) float32.
        class_id: (N,) int32, each in ``[0, len(class_names))`` (or ``[0, 2**31)`` without names).
        class_names: optional names indexed by class id.
        keypoints: optional (N, K, 2) float32 points ``(x, y)`` of each detection, in the same pixels
            as ``xyxy`` (a face detector's eyes, nose and mouth corners); kept through indexing and
            ``to_original``.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: Sequence[str] | None = None
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        conf = np.asarray(self.confidence, dtype=np.float32)
        cls = np.asarray(self.class_id)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if cls.size == 0:
            cls = cls.reshape(0).astype(np.int32)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        if conf.shape != (n,):
            raise ValueError(f"confidence must have shape ({n},), got {conf.shape}")
        if cls.dtype.kind not in "iu":
            raise TypeError(f"class_id must be integers, got {cls.dtype}")
        if cls.shape != (n,):
            raise ValueError(f"class_id must have shape ({n},), got {cls.shape}")
        if n:
            lo, hi = int(cls.min()), int(cls.max())
            limit = len(self.class_names) if self.class_names is not None else np.iinfo(np.int32).max + 1
            if lo < 0 or hi >= limit:
                bad = lo if lo < 0 else hi
                raise ValueError(f"class_id must be in [0, {limit}){' (one per class name)' if self.class_names is not None else ''}"
                                 f", got {bad}")
            if not np.isfinite(xyxy).all():
                raise ValueError("xyxy must be finite")
            if not np.isfinite(conf).all():
                raise ValueError("confidence must be finite")
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, dtype=np.float32)
            if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 2:
                raise ValueError(f"keypoints must have shape ({n}, K, 2), got {kp.shape}")
            if not np.isfinite(kp).all():
                raise ValueError("keypoints must be finite")
            self.keypoints = kp
        self.xyxy, self.confidence, self.class_id = xyxy, conf, cls.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return self.xyxy.shape[0]

    def __repr__(self) -> str:
        kp = "" if self.keypoints is None else f", {self.keypoints.shape[1]} keypoints each"
        if not len(self):
            return f"Detections(0{kp})"
        names = self.labels
        best = ", ".join(f"{n} {c:.2f}" for n, c in zip(names[:3], self.confidence[:3].tolist()))
        return f"Detections({len(self)}: {best}{', ...' if len(self) > 3 else ''}{kp})"

    def __getitem__(self, index) -> "Detections":
        """Indexing by a boolean mask, an integer array or a slice keeps the matching rows."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(xyxy=self.xyxy[index], confidence=self.confidence[index],
                          class_id=self.class_id[index], class_names=self.class_names,
                          keypoints=None if self.keypoints is None else self.keypoints[index])

    @classmethod
    def empty(cls, class_names: Sequence[str] | None = None) -> "Detections":
        return cls(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32),
                   class_id=np.zeros(0, np.int32), class_names=class_names)

    @property
    def labels(self) -> list[str]:
        """Class names of the detections (the ids as strings without names)."""
        if self.class_names is None:
            return [str(int(c)) for c in self.class_id]
        return [self.class_names[int(c)] for c in self.class_id]

    def to_original(self, transform: ImageTransform, *, clip: bool = True) -> "Detections":
        """Maps boxes from model-input coordinates back to the original image (letterbox, crop)."""
        if not callable(getattr(transform, "to_original", None)):  # duck-typed: ops sits beside preprocessing
            raise TypeError(f"transform must be an ImageTransform, got {type(transform).__name__}")
        xyxy = transform.to_original(self.xyxy.astype(np.float64), clip=clip).astype(np.float32)
        kp = None
        if self.keypoints is not None:  # points mapped as zero-size boxes, never clipped
            pts = self.keypoints.reshape(-1, 2).astype(np.float64)
            kp = transform.to_original(np.hstack([pts, pts]), clip=False)[:, :2]
            kp = kp.astype(np.float32).reshape(self.keypoints.shape)
        return Detections(xyxy=xyxy, confidence=self.confidence.copy(), class_id=self.class_id.copy(),
                          class_names=self.class_names, keypoints=kp)

    def crop(self, image: np.ndarray, size: int | tuple[int, int] = 224, *, interpolation: str = "bilinear",
             fill: float | Sequence[float] = 0.0, mean: float | Sequence[float] = 0.0,
             std: float | Sequence[float] = 1.0, layout: str = "NCHW", threads: int = 0) -> np.ndarray:
        """Crops every box out of ``image`` and resizes it: one native call (``ops.crop_resize``).

        Gives a detector's boxes straight to a second model (detect, then classify each crop).

        Args:
            image: (H, W) or (H, W, C) uint8, the image the boxes are in (any strides).
            size: ``(h, w)`` of each crop, or one int.
            interpolation, fill, mean, std, layout, threads: as in ``pyimgcls.ops.crop_resize``.

        Returns:
            (N, C, h, w) float32 (``layout="NCHW"``), ``(value - mean) / std``; parts of a box outside
            the image read ``fill``.

        Raises:
            ValueError: an empty box (``x2 <= x1`` or ``y2 <= y1``, e.g. one clipped away entirely).
        """
        from .crop import crop_resize

        return crop_resize(image, self.xyxy, size, interpolation=interpolation, fill=fill, mean=mean, std=std,
                           layout=layout, threads=threads)

    def to_coco(self, image_id: int, *, category_ids: Sequence[int] | None = None) -> list[dict]:
        """COCO result dicts: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

        ``category_ids`` maps class ids to COCO category ids (COCO's 80 classes use 1..90).
        """
        if category_ids is not None and len(self) and int(self.class_id.max()) >= len(category_ids):
            raise ValueError(f"category_ids has {len(category_ids)} entries, but a detection has class id "
                             f"{int(self.class_id.max())}: give one COCO category id per class id")
        out = []
        for (x1, y1, x2, y2), s, c in zip(self.xyxy.tolist(), self.confidence.tolist(), self.class_id.tolist()):
            out.append({
                "image_id": int(image_id),
                "category_id": int(category_ids[c]) if category_ids is not None else int(c),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(s),
            })
        return out

    def annotate(self, image: np.ndarray, *, thickness: int | None = None, text_scale: float | None = None,
                 labels: bool = True, scores: bool = True,
                 palette: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
        """A copy of ``image`` with the boxes, class names, scores (and keypoints, if any) drawn.

        One colour per class (``ops.draw.PALETTE``, by class id); labels on a filled background
        in the box's colour, above the box or just inside it when the box touches the top; line
        width and text size grow with the image. Boxes reaching outside the image are clipped.
        Thread-safe (the input is only read).

        Args:
            image: (H, W, 3) RGB or (H, W, 4) RGBA uint8, in the pixels of ``xyxy``; (H, W) or
                (H, W, 1) gray gives an RGB result.
            thickness: box line width in pixels (default: about 0.3% of the image's mean side, >= 1;
                at most 32767, OpenCV's limit).
            text_scale: OpenCV font scale of the labels (default: from ``thickness``; at most 100).
            labels: draw labels; ``scores``: put the confidence in them.
            palette: colours (RGB) to use instead of ``ops.draw.PALETTE``.

        Returns:
            (H, W, 3) or (H, W, 4) uint8, a new array.

        Raises:
            TypeError: ``image`` is not a uint8 array. ValueError: its shape is not an image's, or
            ``thickness`` / ``text_scale`` is out of range.
        """
        from .draw import annotate

        return annotate(image, self.xyxy, self.confidence, self.class_id, self.class_names,
                        self.keypoints, thickness=thickness, text_scale=text_scale,
                        labels=labels, scores=scores, palette=palette)
