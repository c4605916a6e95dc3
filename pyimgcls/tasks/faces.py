"""``FaceDetector``: MTCNN (Zhang et al. 2016) on the native core, with the embedded MIT-licensed weights.

The cascade, as the ``mtcnn`` package (ipazc) runs it, with its conventions kept so the boxes agree:

1. P-Net on an image pyramid: scales ``m * f**k`` (``m = 12 / min_face_size``, ``f = scale_factor``)
   while the short side times the scale is at least 12; each level is the image resized to
   ``ceil(size * scale)`` with area interpolation (``ops.crop_resize`` of the whole image, rounded to
   uint8 as MTCNN's levels are, normalised ``(x - 127.5) / 128`` and laid out as the networks take it:
   channels-last RGB with height and width swapped). Cells with a face score >= ``thresholds[0]`` give 12x12 windows at stride 2; NMS 0.5 per
   level and 0.7 over all levels (``ops.nms``); box regression; squares.
2. R-Net on 24x24 crops of those squares (one ``ops.crop_resize`` call; parts outside the image are
   zeros, as MTCNN pads them), score > ``thresholds[1]``, NMS 0.7 (``ops.nms``), regression, squares.
3. O-Net on 48x48 crops (one call), score > ``thresholds[2]``, five landmarks, regression, and a
   last NMS that measures overlap by the smaller box (intersection over minimum, 0.7; a few boxes,
   NumPy).

MTCNN's boxes are inclusive 1-based pixel ranges; the results here are ``xyxy`` in pixel-edge
coordinates (inclusive ``[x1, x2]`` -> ``(x1 - 1, x2)``), clipped to the image, with the landmarks
in the same pixels. Differences from the package, on purpose: NMS ties keep input order (stable),
and the regression maps are not flipped when a level has exactly one candidate (an artefact of the
package's MATLAB port). ``tests/_helpers/reference.py`` (``MTCNNRef``) is the NumPy / OpenCV twin
the results are checked against.
"""

from __future__ import annotations

import collections
import math
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import resources
from typing import Any, Iterable, Iterator, Sequence

import cv2
import numpy as np

from ..io.sources import Item, iter_items, load_item, peek
from ..limits import MAX_INPUT_PIXELS
from ..ops.crop import crop_resize
from ..ops.detections import Detections
from ..ops.nms import nms
from ..runtime.session import Session
from .base import ERROR_MODES, source_name
from .detector import DetectionResult

__all__ = ["FaceDetector", "mtcnn_model_paths"]

_NAMES = ["face"]
#: The most pyramid levels one image may have (MTCNN's defaults give about 10 to 20; 1000 is a
#: scale_factor of 0.99 on a 180-megapixel image).
MAX_PYRAMID_LEVELS = 1000
_MEAN, _STD = 127.5, 128.0


def mtcnn_model_paths() -> tuple[str, str, str]:
    """Paths of the embedded P-Net, R-Net and O-Net ONNX files (MIT, see ``assets/NOTICE.md``)."""
    root = resources.files("pyimgcls") / "assets"
    return tuple(str(root / f"mtcnn_{n}.onnx") for n in ("pnet", "rnet", "onet"))  # type: ignore[return-value]


def _rgb8(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB view or copy of a decoded image (gray repeated, alpha dropped, 16-bit scaled)."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"image must be a numpy array (H, W, 3) uint8, got {type(img).__name__}")
    if img.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image must be uint8 (or uint16), got {img.dtype}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))) or 0 in img.shape:
        raise ValueError(f"image must have shape (H, W) or (H, W, C) with C in 1, 3, 4, got {img.shape}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS by intersection over the smaller area (MTCNN's last step); stable descending order.
    boxes: (N, 4) float64 xyxy (pixel edges)."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]))
        h = np.maximum(0.0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]))
        order = rest[w * h / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(keep, np.int64)


def _square(b: np.ndarray) -> np.ndarray:
    """MTCNN's rerec: the square of side max(x2 - x1, y2 - y1) with the same centre (inclusive boxes)."""
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    x1 = b[:, 0] + w * 0.5 - side * 0.5
    y1 = b[:, 1] + h * 0.5 - side * 0.5
    return np.stack([x1, y1, x1 + side, y1 + side], 1)


def _edges(b: np.ndarray) -> np.ndarray:
    """Inclusive 1-based boxes -> pixel-edge xyxy (the crop region and the NMS geometry)."""
    return np.stack([b[:, 0] - 1, b[:, 1] - 1, b[:, 2], b[:, 3]], 1)


def _result(item: Item, det, info, err: BaseException | None, errors: str, stats: dict | None,
            decode_s: float, detect_s: float) -> DetectionResult:
    """One input's ``DetectionResult`` (its error raised with ``errors="raise"``); ``stats`` gets
    the seconds spent reading and decoding it and detecting in it."""
    if stats is not None:
        stats["decode_s"] = stats.get("decode_s", 0.0) + decode_s
        stats["inference_s"] = stats.get("inference_s", 0.0) + detect_s
    if err is not None:
        if errors == "raise":
            raise err
        return DetectionResult(source=item.source, detections=None, error=f"{type(err).__name__}: {err}")
    return DetectionResult(source=item.source, detections=det, image_size=info.full_size, stored_size=info.stored_size)


class FaceDetector:
    """MTCNN face detector: boxes, scores and five landmarks per face.

    Args:
        conf: final (O-Net) score threshold; ``None`` keeps ``thresholds[2]``.
        min_face_size: smallest face side looked for, in pixels (20 in MTCNN). Below 12 the image is
            enlarged for P-Net; an image whose enlarged level would pass both its own pixel count and
            ``limits.MAX_INPUT_PIXELS`` gets a ``ValueError`` (its error row in ``predict``).
        thresholds: P-Net, R-Net and O-Net score thresholds (0.6, 0.7, 0.7 in MTCNN).
        scale_factor: pyramid step (0.709 in MTCNN, about 1 / sqrt(2)); an image whose pyramid would
            have more than ``MAX_PYRAMID_LEVELS`` (1000) levels gets a ``ValueError``.
        max_det: at most this many faces per image, best first (``None``: all).
        iou: accepted for the detectors' common signature (``load_detector``) only as ``None``: MTCNN's
            NMS thresholds are part of the published cascade.
        threads: the one thread budget of the task (ONNX Runtime's pools and the crop kernel; 0 =
            all usable cores).
        batch_workers: ``predict`` / ``predict_iter`` on a CPU: how many threads each take whole
            images (read, decode, the cascade on single-threaded sessions); ``None``: ``threads``;
            1: one image at a time on all ``threads``, decoding ahead in a pool. The answers are
            the same either way.
        **session_options: passed to each ``Session`` (``device``, ``providers``, ``allow_spinning``).

    ``predict`` / ``predict_iter`` / ``predict_one`` return ``DetectionResult`` with ``Detections``
    whose ``class_names == ["face"]`` and ``keypoints`` (N, 5, 2) float32: left eye, right eye, nose,
    left and right mouth corner (as seen in the image), in full-resolution pixels of the EXIF-rotated
    image.

    Thread safety: every method may be called from several threads at once (ONNX Runtime's ``run``
    and the native kernels are thread-safe; no state is shared between calls).
    """

    names = _NAMES

    def __init__(self, *, conf: float | None = None, min_face_size: float = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 scale_factor: float = 0.709, max_det: int | None = None, iou: float | None = None, threads: int = 0,
                 batch_workers: int | None = None, **session_options: Any) -> None:
        if iou is not None:
            raise ValueError("FaceDetector's NMS thresholds are MTCNN's own (IoU 0.5 / 0.7 / 0.7, then 0.7 over the "
                             f"smaller box) and cannot be set; got iou={iou!r}")
        th = [float(t) for t in thresholds]
        if len(th) != 3:
            raise ValueError(f"thresholds must have 3 values (P-Net, R-Net, O-Net), got {len(th)}")
        if conf is not None:
            th[2] = float(conf)
        if not all(0.0 <= t <= 1.0 for t in th):
            raise ValueError(f"thresholds and conf must be in [0, 1], got {th}")
        mfs = float(min_face_size)
        if not (math.isfinite(mfs) and mfs > 0 and math.isfinite(12.0 / mfs)):  # 12 / 5e-324: an endless pyramid
            raise ValueError(f"min_face_size must be > 0 (with 12 / min_face_size finite), got {min_face_size!r}")
        f = float(scale_factor)
        if not (0.0 < f < 1.0):
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor!r}")
        if max_det is not None and (isinstance(max_det, bool) or not isinstance(max_det, (int, np.integer))
                                    or max_det < 1):
            raise ValueError(f"max_det must be a positive int or None, got {max_det!r}")
        if max_det is not None:
            max_det = int(max_det)  # (a NumPy integer as Detector takes it)
        if batch_workers is not None and (isinstance(batch_workers, bool) or not isinstance(batch_workers, int)
                                          or batch_workers < 1):
            raise ValueError(f"batch_workers must be a positive int or None, got {batch_workers!r}")
        self.batch_workers = batch_workers
        self._one: FaceDetector | None = None
        self._one_lock = threading.Lock()
        self.thresholds = tuple(th)
        self.conf = th[2]
        self.min_face_size = mfs
        self.scale_factor = f
        self.max_det = max_det
        self._session_options = dict(session_options)
        pnet, rnet, onet = mtcnn_model_paths()
        with warnings.catch_warnings():  # the nets carry no preprocessing metadata: the cascade is the preprocessing
            warnings.filterwarnings("ignore", message="model has no pyimgcls.preprocess metadata")
            self._pnet = Session(pnet, threads=threads, **session_options)
            self._rnet = Session(rnet, threads=threads, **session_options)
            self._onet = Session(onet, threads=threads, **session_options)
        self.threads: int = self._pnet.threads

    def __repr__(self) -> str:
        return (f"FaceDetector(min_face_size={self.min_face_size:g}, thresholds={self.thresholds}, "
                f"scale_factor={self.scale_factor}, providers={self._pnet.providers}, threads={self.threads})")

    def __getstate__(self) -> dict:
        return {"conf": None, "min_face_size": self.min_face_size, "thresholds": self.thresholds,
                "scale_factor": self.scale_factor, "max_det": self.max_det, "threads": self.threads,
                "batch_workers": self.batch_workers, **self._session_options}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def _one_core(self) -> FaceDetector:
        """This detector on one core (the three networks' single-threaded sessions, the crop kernel
        on one thread), made once: what each CPU worker of ``predict_iter`` runs."""
        with self._one_lock:
            if self._one is None:
                one = object.__new__(type(self))  # not copy.copy: that is __setstate__, i.e. __init__ (new sessions)
                one.__dict__.update(self.__dict__)
                one._pnet, one._rnet, one._onet = (n.single_threaded() for n in (self._pnet, self._rnet, self._onet))
                one.threads = 1
                one._one, one._one_lock = None, threading.Lock()
                self._one = one
        return self._one

    def _workers(self) -> int:
        if not self._pnet.providers or self._pnet.providers[0] != "CPUExecutionProvider":
            return 1
        return self.batch_workers if self.batch_workers is not None else self.threads

    # ------------------------------------------------------------------ the cascade
    def scales(self, height: int, width: int) -> list[float]:
        """The pyramid scales for an image of this size (largest first).

        Raises:
            ValueError: more than ``MAX_PYRAMID_LEVELS`` levels (a ``scale_factor`` very near 1:
                0.9999999 gives 30 million P-Net runs for a 640x480 photo).
        """
        m = 12.0 / self.min_face_size
        side = min(height, width) * m
        if side >= 12:
            levels = math.floor(math.log(12.0 / side) / math.log(self.scale_factor)) + 1
            if levels > MAX_PYRAMID_LEVELS:
                raise ValueError(f"scale_factor={self.scale_factor!r} gives about {levels} pyramid levels for a "
                                 f"{width}x{height} image (one P-Net run each); at most {MAX_PYRAMID_LEVELS}: "
                                 f"use a smaller scale_factor (MTCNN: 0.709)")
        out, k = [], 0
        while side >= 12:
            out.append(m * self.scale_factor ** k)
            side *= self.scale_factor
            k += 1
        return out

    def _level(self, img_t: np.ndarray, s: float, threads: int, session: Session) -> np.ndarray | None:
        """P-Net on one pyramid level: (n, 9) candidates (inclusive box, score, regression) after NMS 0.5."""
        W, H = img_t.shape[:2]
        hs, ws = int(math.ceil(H * s)), int(math.ceil(W * s))
        # a uint8 level, as MTCNN resizes the uint8 image (the rounding changes which candidates win the
        # NMS), then normalised
        x = crop_resize(img_t, np.array([[0, 0, H, W]], np.float64), (ws, hs), interpolation="area", layout="NHWC",
                        dtype="uint8", threads=threads).astype(np.float32)
        x -= _MEAN
        x *= 1.0 / _STD
        reg, prob = session.run(x)
        # outputs are (1, cols, rows, .): cell (r, c) of the level
        c, r = np.nonzero(prob[0, :, :, 1] >= self.thresholds[0])
        if not len(r):
            return None
        b = np.stack([np.fix((2 * c + 1) / s), np.fix((2 * r + 1) / s),
                      np.fix((2 * c + 12) / s), np.fix((2 * r + 12) / s)], 1)
        sc = prob[0, c, r, 1].astype(np.float64)
        keep = nms(_edges(b), sc, 0.5)
        return np.hstack([b[keep], sc[keep, None], reg[0, c[keep], r[keep]].astype(np.float64)])

    def _stage1(self, img_t: np.ndarray) -> np.ndarray:
        W, H = img_t.shape[:2]
        found = [f for f in (self._level(img_t, s, self.threads, self._pnet) for s in self.scales(H, W))
                 if f is not None]
        if not found:
            return np.zeros((0, 4))
        cand = np.vstack(found)
        cand = cand[nms(_edges(cand[:, :4]), cand[:, 4], 0.7)]
        w, h = cand[:, 2] - cand[:, 0], cand[:, 3] - cand[:, 1]
        boxes = np.fix(_square(cand[:, :4] + cand[:, 5:9] * np.stack([w, h, w, h], 1)))
        return boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]

    def _crops(self, img_t: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
        e = _edges(boxes)[:, [1, 0, 3, 2]]  # boxes of the transposed image
        return crop_resize(img_t, e, size, interpolation="area", fill=0.0, mean=_MEAN, std=_STD, layout="NHWC",
                           threads=self.threads)

    def detect(self, image: np.ndarray) -> Detections:
        """Faces of one decoded image: (H, W, 3) uint8 RGB (any strides; gray, RGBA and uint16 are
        converted). Thread-safe."""
        img = _rgb8(image)
        H, W = img.shape[:2]
        # the networks take (W, H) images (Keras-transposed): crops of the transposed image in NHWC are
        # exactly that layout, and contiguous rows let crop_resize use its SIMD path
        # (cv2.transpose: a blocked copy, ~15x NumPy's strided one for 3-byte pixels; the same bytes)
        img_t = None
        if img.strides[2] == 1:
            try:
                img_t = cv2.transpose(img)
            except cv2.error:  # (sizes past OpenCV's limits)
                img_t = None
        if img_t is None or img_t.shape != (W, H, 3):
            img_t = np.ascontiguousarray(img.transpose(1, 0, 2))
        scales = self.scales(H, W)
        if scales:  # the first level is the largest: an upsampled one is bounded like a model input
            big = math.ceil(H * scales[0]) * math.ceil(W * scales[0])
            if big > max(H * W, MAX_INPUT_PIXELS):
                raise ValueError(f"min_face_size={self.min_face_size:g} enlarges this {W}x{H} image "
                                 f"{scales[0]:.3g} times for P-Net ({big} pixels, more than the "
                                 f"{MAX_INPUT_PIXELS} a model input may have): use a larger min_face_size "
                                 f"(at least {12 * math.sqrt(H * W / MAX_INPUT_PIXELS):.3g}) or enlarge the image")
        boxes = self._stage1(img_t)
        if len(boxes):
            reg, prob = self._rnet.run(self._crops(img_t, boxes, 24))
            sc = prob[:, 1].astype(np.float64)
            ok = sc > self.thresholds[1]
            boxes, sc, reg = boxes[ok], sc[ok], reg[ok].astype(np.float64)
            if len(boxes):
                keep = nms(_edges(boxes), sc, 0.7)
                boxes, reg = boxes[keep], reg[keep]
                w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
                boxes = np.fix(_square(boxes + reg * np.stack([w, h, w, h], 1)))
                boxes = boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        if not len(boxes):
            return Detections(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32),
                              class_id=np.zeros(0, np.int32), class_names=_NAMES,
                              keypoints=np.zeros((0, 5, 2), np.float32))
        reg, pts, prob = self._onet.run(self._crops(img_t, boxes, 48))
        sc = prob[:, 1].astype(np.float64)
        ok = sc > self.thresholds[2]
        boxes, sc, reg, pts = boxes[ok], sc[ok], reg[ok].astype(np.float64), pts[ok].astype(np.float64)
        w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        kp = np.stack([pts[:, :5] * w[:, None] + boxes[:, :1] - 1, pts[:, 5:] * h[:, None] + boxes[:, 1:2] - 1], 2)
        xyxy = _edges(boxes + reg * np.stack([w, h, w, h], 1))
        keep = _nms_min(xyxy, sc, 0.7) if len(xyxy) else np.zeros(0, np.int64)
        if self.max_det is not None:
            keep = keep[: self.max_det]
        xyxy = np.clip(xyxy[keep], 0, [W, H, W, H])
        return Detections(xyxy=xyxy.astype(np.float32), confidence=sc[keep].astype(np.float32),
                          class_id=np.zeros(len(keep), np.int32), class_names=_NAMES,
                          keypoints=kp[keep].astype(np.float32))

    # ------------------------------------------------------------------ inputs
    def _predict_workers(self, it: Iterator[Item], workers: int, errors: str,
                         stats: dict | None) -> Iterator[DetectionResult]:
        """``workers`` threads each read, decode and detect whole images on one core; results in
        input order, at most ``2 * workers`` images taken ahead."""
        one = self._one_core()

        def task(item: Item):
            t0 = time.thread_time()
            try:
                img, info = load_item(item, return_info=True)
            except Exception as e:  # noqa: BLE001 - recorded per item
                return None, None, e, time.thread_time() - t0, 0.0
            t1 = time.thread_time()
            try:
                det = one.detect(img)
            except (ValueError, TypeError) as e:
                return None, info, e, t1 - t0, time.thread_time() - t1
            return det, info, None, t1 - t0, time.thread_time() - t1

        pending: collections.deque = collections.deque()
        failed: Exception | None = None  # the input iterator's error: raised after the images before it
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pyimgcls-faces")
        try:
            while True:
                while failed is None and len(pending) < 2 * workers:
                    try:
                        item = next(it, None)
                    except Exception as e:  # noqa: BLE001 - raised at its place
                        failed = e
                        break
                    if item is None:
                        break
                    pending.append((item, pool.submit(task, item)))
                if not pending:
                    if failed is not None:
                        raise failed
                    return
                item, fut = pending.popleft()
                det, info, err, dt_load, dt_detect = fut.result()
                yield _result(item, det, info, err, errors, stats, dt_load, dt_detect)
        finally:
            for _, fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)

    def predict_one(self, image) -> DetectionResult:
        """One image (array, path, bytes or PIL image) in, its faces out, on the calling thread.

        Thread-safe. Errors raise (``ImageDecodeError``, ``ValueError``, ``TypeError``)."""
        item = Item(source_name(image), image)
        img, info = load_item(item, return_info=True)
        return DetectionResult(source=item.source, detections=self.detect(img), image_size=info.full_size,
                               stored_size=info.stored_size)

    def predict(self, inputs, *, batch_size: int = 16, errors: str = "record", fast_decode: bool = False,
                item_timeout: float | None = None) -> list[DetectionResult]:
        """Detects faces in ``inputs`` (paths, folders, bytes, arrays, PIL images, or an iterable of them).

        Args:
            batch_size: images decoded ahead of the detector (in threads) while it works.
            errors: ``"record"`` (a bad item gets ``error`` set, the rest go on) or ``"raise"``.
            fast_decode: only ``False`` (the detectors' common signature): MTCNN's pyramid starts at
                ``12 / min_face_size`` of the full resolution, so images are always decoded in full.
            item_timeout: seconds one input may take to read and decode (``None``: no limit).

        Returns:
            One ``DetectionResult`` per input item, in input order (a folder gives one per image
            file inside it, sorted), boxes in full-resolution pixels of the EXIF-rotated image.
        """
        return list(self.predict_iter(inputs, batch_size=batch_size, errors=errors, fast_decode=fast_decode,
                                      item_timeout=item_timeout))

    def predict_iter(self, inputs, *, batch_size: int = 16, errors: str = "record", fast_decode: bool = False,
                     items: Iterable[Item] | None = None, stats: dict | None = None,
                     item_timeout: float | None = None) -> Iterator[DetectionResult]:
        """Like ``predict`` but yields results as they come (bounded memory for huge inputs).

        ``stats``, when given, accumulates ``decode_s`` (wait for decoding) and ``inference_s``
        (with CPU workers: the thread-seconds of reading + decoding and of the cascade)."""
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
        if fast_decode:
            raise ValueError("FaceDetector decodes images in full (fast_decode=False): MTCNN's pyramid starts at "
                             "12 / min_face_size of the full resolution")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")

        it = iter(iter_items(inputs) if items is None else items)
        n_workers = self._workers()
        if n_workers > 1 and item_timeout is None:
            it, short = peek(it, 2 * n_workers)
            if not short:  # enough images for one per core: each worker does whole images
                yield from self._predict_workers(it, n_workers, errors, stats)
                return
        workers = max(1, min(4, self.threads))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pyimgcls-faces-decode") as pool:
            pending: list[tuple[Item, Any]] = []
            failed: list[Exception] = []  # the input iterator's error: raised after the images before it

            def fill() -> None:
                while not failed and len(pending) < batch_size:
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    except Exception as e:  # noqa: BLE001 - raised at its place
                        failed.append(e)
                        return
                    pending.append((item, pool.submit(load_item, item, return_info=True)))

            fill()
            while pending:
                item, fut = pending.pop(0)
                det = info = None
                t0 = time.perf_counter()
                try:
                    img, info = fut.result(timeout=item_timeout)
                except FutureTimeout:
                    fut.cancel()
                    err: BaseException | None = TimeoutError(f"{item.source}: not read and decoded within {item_timeout} s")
                except Exception as e:  # noqa: BLE001 - recorded per item
                    err = e
                else:
                    err = None
                fill()
                t1 = time.perf_counter()
                if err is None:
                    try:
                        det = self.detect(img)
                    except (ValueError, TypeError) as e:
                        err = e
                yield _result(item, det, info, err, errors, stats, t1 - t0, time.perf_counter() - t1)
            if failed:
                raise failed[0]
