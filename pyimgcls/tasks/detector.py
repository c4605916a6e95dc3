"""``Detector``: YOLO-family ONNX detectors (Ultralytics v5, v8 / YOLO11 and end-to-end exports).

Images in, ``DetectionResult`` out, boxes in full-resolution pixels of the EXIF-rotated image.

What a model file says about itself, in order of precedence:

* pyimgcls' own metadata (``annotate_model``): ``pyimgcls.preprocess``, ``pyimgcls.labels`` and
  ``pyimgcls.detector`` (JSON: ``layout``, ``conf``, ``iou``, ``max_det``);
* Ultralytics' export metadata: ``task`` (only ``detect`` is run), ``names`` (a Python dict
  literal, read with ``ast.literal_eval``), ``imgsz``, ``stride``, ``end2end`` and ``args``
  (``nms=True``: NMS in the graph);
* otherwise the layout is inferred from the output shape, and a warning says what was assumed.

The preprocessing of a model without ``pyimgcls.preprocess`` is Ultralytics' default ``LetterBox``:
aspect-preserving bilinear resize to ``round(side * r)`` with ``interpolation="bilinear_cv2"`` (the
uint8 pixels OpenCV's ``cv2.resize(INTER_LINEAR)`` gives, bit for bit, as Ultralytics resizes), centred,
padded with 114 (``round(pad / 2 - 0.1)`` before, the rest after), RGB, ``/ 255``, NCHW. The float
``"bilinear"`` kernel (within one uint8 level, a little faster) stays available through ``preprocess=``.
"""

from __future__ import annotations

import ast
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..io.sources import Item
from ..ops.detections import Detections
from ..ops.nms import nms
from ..preprocessing import ImageTransform, PreprocessConfig
from ..runtime.session import DETECTOR_LAYOUTS, META_DETECTOR, ModelInfo, detector_settings
from .base import ModelTask

__all__ = ["DetectionResult", "Detector", "load_detector", "ultralytics_metadata", "infer_layout"]

log = logging.getLogger("pyimgcls")

#: Ultralytics' predict defaults (``ultralytics/cfg/default.yaml``), used where neither the caller
#: nor the model's ``pyimgcls.detector`` metadata gives a value.
DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 300
#: Ultralytics' ``max_nms``: candidates (best first) that enter NMS.
MAX_CANDIDATES = 30000
#: Ultralytics' ``max_wh``: the per-class box shift of its class-aware NMS, in model-input pixels.
MAX_WH = 7680

_LAYOUT_TEXT = ("v5 (N, anchors, 5 + classes): cx, cy, w, h, objectness, class scores; "
                "v8 / YOLO11 (N, 4 + classes, anchors): cx, cy, w, h, class scores; "
                "end2end (N, max_det, 6): x1, y1, x2, y2, score, class (NMS in the graph)")


@dataclass
class DetectionResult:
    """The detections of one input.

    Attributes:
        source: the input's path, or ``<bytes #i>`` / ``<array #i>`` / ``<PIL #i>``.
        detections: boxes (xyxy, float32) in full-resolution pixels of the EXIF-rotated image,
            by descending confidence; ``None`` when ``error`` is set.
        error: why this input has no answer (unreadable, corrupt, wrong shape), else ``None``.
        image_size: ``(h, w)`` of the image the boxes refer to (EXIF orientation applied).
        stored_size: ``(h, w)`` as stored in the file (before orientation).
    """

    source: str
    detections: Detections | None
    error: str | None = None
    image_size: tuple[int, int] | None = None
    stored_size: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"DetectionResult({self.source!r}, error={self.error!r})"
        return f"DetectionResult({self.source!r}, {self.detections!r})"


# ----------------------------------------------------------------------------- model metadata
def _literal(text: str, key: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"Ultralytics metadata {key!r} is not a Python literal: {text[:80]!r}") from None


def ultralytics_metadata(meta: dict) -> dict:
    """The Ultralytics export metadata of an ONNX model, parsed (values are never ``eval``-ed).

    Returns:
        A dict with whichever of ``task`` (str), ``names`` (list of str, by class id),
        ``imgsz`` ((h, w)), ``stride`` (int), ``end2end`` (bool) and ``nms`` (bool: exported with
        ``nms=True``) the model has; empty for a model without them.
    """
    out: dict = {}
    if "task" in meta:
        out["task"] = str(meta["task"]).strip()
    if "names" in meta:
        names = _literal(meta["names"], "names")
        if isinstance(names, dict):
            if not all(isinstance(k, int) for k in names):
                raise ValueError("Ultralytics metadata 'names' must map class ids (ints) to names")
            keys = sorted(names)
            if keys != list(range(len(keys))):
                raise ValueError(f"Ultralytics metadata 'names' must have the ids 0..{len(keys) - 1}, got {keys[:10]}")
            out["names"] = [str(names[k]) for k in keys]
        elif isinstance(names, (list, tuple)):
            out["names"] = [str(n) for n in names]
        else:
            raise ValueError(f"Ultralytics metadata 'names' must be a dict or a list, got {type(names).__name__}")
    if "imgsz" in meta:
        sz = _literal(meta["imgsz"], "imgsz")
        if isinstance(sz, int):
            sz = (sz, sz)
        if (not isinstance(sz, (list, tuple)) or len(sz) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sz)):
            raise ValueError(f"Ultralytics metadata 'imgsz' must be [h, w] of positive ints, got {meta['imgsz']!r}")
        out["imgsz"] = (int(sz[0]), int(sz[1]))
    if "stride" in meta:
        st = _literal(meta["stride"], "stride")
        if isinstance(st, (list, tuple)) and st:
            st = max(st)
        if isinstance(st, float) and st.is_integer():
            st = int(st)
        if isinstance(st, bool) or not isinstance(st, int) or st < 1:
            raise ValueError(f"Ultralytics metadata 'stride' must be a positive int, got {meta['stride']!r}")
        out["stride"] = st
    if "end2end" in meta:
        out["end2end"] = str(meta["end2end"]).strip() == "True"
    if "args" in meta:
        try:
            args = ast.literal_eval(meta["args"])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            args = None
        if isinstance(args, dict):
            # a real bool as Ultralytics writes it; a string as end2end is read ("False" is not true)
            v = args.get("nms", False)
            out["nms"] = v if isinstance(v, bool) else str(v).strip() == "True"
    return out


def _anchor_counts(size: tuple[int, int] | None) -> tuple[int, ...]:
    """Anchor (grid cell) counts of the standard P3-P5 heads (strides 8, 16, 32) at ``size``:
    one per cell (v8 / YOLO11) and three per cell (v5)."""
    if size is None:
        return ()
    n = sum(math.ceil(size[0] / s) * math.ceil(size[1] / s) for s in (8, 16, 32))
    return (n, 3 * n)


def infer_layout(shape: Sequence, *, input_size: tuple[int, int] | None = None, classes: int | None = None,
                 end2end: bool = False, source: str = "model") -> tuple[str, int | None]:
    """The output layout of a YOLO-family detector from its output shape.

    Args:
        shape: the first output's shape ``(N, a, b)`` (ints).
        input_size: the model input ``(h, w)``, which tells anchors (8400 at 640) from classes.
        classes: the number of classes when the names are known.
        end2end: the model says NMS is in the graph.
        source: names the model in errors.

    Returns:
        ``(layout, classes)``: layout one of ``"v5"``, ``"v8"``, ``"end2end"``; classes from the
        shape (``None`` for end2end).

    Raises:
        ValueError: a shape no supported layout has, naming the shape and the layouts.
    """
    dims = tuple(shape)

    def bad(why: str = "") -> ValueError:
        return ValueError(f"{source}: detector output of shape {dims} is not a recognised YOLO layout{why}; "
                          f"supported: {_LAYOUT_TEXT}")

    if len(dims) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in dims[1:]):
        raise bad()
    a, b = int(dims[1]), int(dims[2])
    anchors = _anchor_counts(input_size)
    if end2end:
        if b != 6:
            raise bad(" (an end-to-end export has 6 values per row)")
        return "end2end", None
    if classes is not None:
        if a == 4 + classes and (b in anchors or a < b):
            return "v8", classes
        if b == 5 + classes and (a in anchors or a > b):
            return "v5", classes
        if b == 6 and a > b:  # rows of x1, y1, x2, y2, score, class (Ultralytics reads any (N, M, 6) so)
            return "end2end", None
        raise bad(f" for {classes} classes")
    # the anchor counts of the standard heads decide on small inputs, where channels and anchors are
    # near: v8 (84, 21) and v5 (63, 85) at 32x32
    if anchors and b == anchors[0] and a >= 5 and a != anchors[1]:
        return "v8", a - 4
    if anchors and a == anchors[1] and b >= 6 and b != anchors[0]:
        return "v5", b - 5
    if a < b and a >= 5:
        return "v8", a - 4
    if a > b:
        if b == 6 and a not in anchors:
            return "end2end", None
        if b >= 6:
            return "v5", b - 5
    raise bad()


def _check_layout(layout: str, shape: Sequence, classes: int | None, source: str,
                  input_size: tuple[int, int] | None = None) -> int | None:
    """The class count a declared layout implies for ``shape`` (``ValueError`` if they disagree):
    v8 has fewer channels than anchors, v5 more anchors than values per anchor (or the anchor
    count of the standard heads at ``input_size``)."""
    dims = tuple(shape)
    if len(dims) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in dims[1:]):
        raise ValueError(f"{source}: detector output of shape {dims} does not fit layout {layout!r}; "
                         f"supported: {_LAYOUT_TEXT}")
    a, b = int(dims[1]), int(dims[2])
    need = {"v8": (a, 5, 4), "v5": (b, 6, 5), "end2end": (b, 6, None)}[layout]
    if layout == "end2end":
        if b != 6:
            raise ValueError(f"{source}: layout 'end2end' needs (N, max_det, 6) outputs, got {dims}; "
                             f"supported: {_LAYOUT_TEXT}")
        return None
    value, least, extra = need
    anchors = _anchor_counts(input_size)
    oriented = (a < b or b in anchors) if layout == "v8" else (a > b or a in anchors)
    if value < least or not oriented:
        raise ValueError(f"{source}: detector output of shape {dims} does not fit layout {layout!r}; "
                         f"supported: {_LAYOUT_TEXT}")
    nc = value - extra
    if classes is not None and nc != classes:
        raise ValueError(f"{source}: the model names {classes} classes but its output {dims} in layout "
                         f"{layout!r} has {nc}")
    return nc


# ----------------------------------------------------------------------------- the task
def _as_conf(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(v).__name__} {v!r}")
    f = float(v)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    return f


class Detector(ModelTask):
    """Object detector on a YOLO-family ONNX model (Ultralytics v5, v8, YOLO11 and end-to-end exports).

    The argument names and defaults are Ultralytics' predict arguments (``conf=0.25``,
    ``iou=0.7``, ``max_det=300``, ``classes``, ``agnostic_nms``); the low-level
    ``pyimgcls.ops.decode_yolo`` keeps its own names and defaults (``conf_threshold=0.25``,
    ``iou_threshold=0.45``, ``max_det=300``, ``class_agnostic=False``).

    Post-processing is Ultralytics' ``non_max_suppression``, arithmetic included: each anchor's
    best class, kept when its score is ``> conf`` (v5 layout: objectness ``> conf`` first, score
    = objectness * class score), with ``classes`` only when that best class is one of them, the
    30000 best candidates, greedy NMS (a box is dropped when its IoU with a kept box is ``> iou``)
    over boxes shifted by ``class * 7680`` px in float32 so that classes do not meet
    (``agnostic_nms``: unshifted), the ``max_det`` best. Candidate selection is NumPy, the NMS
    native (``ops.nms``). End-to-end exports (NMS in the graph) get ``conf``, ``classes`` and
    ``max_det`` applied to their rows. Boxes are mapped back with the letterbox's exact per-axis
    scale and padding (what Ultralytics' ``scale_boxes`` computes too, see
    ``ImageTransform``) into full-resolution pixels of the EXIF-rotated image, clipped to it.

    ``max_det=1`` is single-object localization: the one best box (and its class) per image.

    Thread safety: ``predict_one`` may be called from any number of threads at once (each thread
    gets its own buffers and IO binding); ``predict`` / ``predict_iter`` calls may run
    concurrently (each has its own pipeline) but share the one thread budget.

    Args:
        model: path / bytes / ``onnx.ModelProto`` of the ONNX detector.
        conf: score threshold (keep ``> conf``). ``None``: the model's ``pyimgcls.detector``
            value, else 0.25.
        iou: NMS IoU threshold. ``None``: the model's, else 0.7.
        max_det: detections kept per image (>= 1). ``None``: the model's, else 300.
        classes: keep only these class ids (``None``: all).
        agnostic_nms: one NMS over all classes.
        layout: ``"v5"``, ``"v8"`` or ``"end2end"`` to override what the file says or its shape
            suggests (``None``: from the file).
        preprocess: replaces the model's preprocessing (a ``PreprocessConfig`` or a dict of
            fields to change). Without ``pyimgcls.preprocess`` in the file the default is
            Ultralytics' letterbox with ``interpolation="bilinear_cv2"`` (OpenCV's uint8 pixels
            exactly); ``preprocess={"interpolation": "bilinear"}`` takes the float kernel instead.
        **session_options: passed to ``Session`` (``device``, ``providers``, ``threads``, ...).

    Attributes:
        names: class names by class id (from ``pyimgcls.labels``, else Ultralytics' ``names``,
            else the ids as strings).
        layout: the output layout in use.
        stride: the model's stride (Ultralytics metadata; 32 when absent).
        conf, iou, max_det, classes, agnostic_nms: the settings in use.
        assumptions: what was inferred rather than read from the file (also warned).
    """

    def __init__(self, model, *, conf: float | None = None, iou: float | None = None, max_det: int | None = None,
                 classes: Sequence[int] | None = None, agnostic_nms: bool = False, layout: str | None = None,
                 preprocess=None, **session_options: Any) -> None:
        self._assumed: list[str] = []
        super().__init__(model, preprocess=preprocess, **session_options)
        self._init_args = (model, preprocess, dict(session_options))
        self._settings = dict(conf=conf, iou=iou, max_det=max_det, classes=classes, agnostic_nms=agnostic_nms,
                              layout=layout)
        src = self.session.source
        meta = self.session.info.metadata
        ul = ultralytics_metadata(meta)
        task = ul.get("task")
        if task is not None and task != "detect":
            raise ValueError(f"{src}: an Ultralytics {task!r} model; Detector runs detection models "
                             f"(task 'detect') only")
        if len(self.session.info.outputs) != 1 and task is None:
            shapes = [s for _, s in self.session.info.outputs]
            if any(len(s) == 4 for s in shapes[1:]):
                raise ValueError(f"{src}: outputs {shapes} look like a segmentation export (mask prototypes); "
                                 "Detector runs detection models only")
        own = detector_settings(meta[META_DETECTOR], f"{src}: {META_DETECTOR}") if META_DETECTOR in meta else {}
        self.stride: int = ul.get("stride", 32)
        names = self.session.labels or ul.get("names")
        # output shape: declared, or seen on one run of a blank image when the model leaves it open
        out_name, shape = self.session.info.outputs[0]
        if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
            if len(shape) in (0, 3):
                blank = np.zeros((1,) + self._input_shape()[1:], np.dtype(self.config.dtype))
                shape = tuple(self.session.run(blank)[0].shape)
        if layout is not None:
            if layout not in DETECTOR_LAYOUTS:
                raise ValueError(f"layout must be one of {DETECTOR_LAYOUTS}, got {layout!r}")
            nc = _check_layout(layout, shape, len(names) if names else None, src, self.config.size)
        elif "layout" in own:
            layout = own["layout"]
            nc = _check_layout(layout, shape, len(names) if names else None, src, self.config.size)
        else:
            end2end = bool(ul.get("end2end") or ul.get("nms"))
            layout, nc = infer_layout(shape, input_size=self.config.size, classes=len(names) if names else None,
                                      end2end=end2end, source=src)
            if not ul:
                self._assume(f"{src}: no pyimgcls.detector or Ultralytics metadata; output {out_name} "
                             f"{tuple(shape)} taken as layout {layout!r}"
                             + (f" with {nc} classes" if nc is not None else "")
                             + ". Store it with pyimgcls.annotate_model(src, dst, detector={'layout': ...}).")
        self.layout: str = layout
        if names is None and nc is not None:
            names = [str(i) for i in range(nc)]
        self.names: list[str] = list(names) if names else []
        self.num_classes: int | None = nc if nc is not None else (len(self.names) or None)
        self.conf = _as_conf(own.get("conf", DEFAULT_CONF) if conf is None else conf, "conf")
        self.iou = _as_conf(own.get("iou", DEFAULT_IOU) if iou is None else iou, "iou")
        md = own.get("max_det", DEFAULT_MAX_DET) if max_det is None else max_det
        if isinstance(md, bool) or not isinstance(md, (int, np.integer)) or md < 1:
            raise ValueError(f"max_det must be an int >= 1, got {md!r}")
        self.max_det: int = int(md)
        self.classes: tuple[int, ...] | None = self._check_classes(classes)
        self.agnostic_nms: bool = bool(agnostic_nms)
        self.assumptions: list[str] = list(self.session.assumptions) + self._assumed

    # ------------------------------------------------------------------ construction helpers
    def _assume(self, msg: str) -> None:
        self._assumed.append(msg)
        warnings.warn(msg, stacklevel=3)

    def _input_shape(self) -> tuple[int, ...]:
        H, W = self.config.size
        C = self.config.channels
        return (1, C, H, W) if self.config.layout == "NCHW" else (1, H, W, C)

    def _default_preprocess(self, info: ModelInfo) -> tuple[PreprocessConfig, str | None]:
        """Ultralytics' LetterBox at the model's ``imgsz`` (or its fixed input size)."""
        ul = ultralytics_metadata(info.metadata)
        size, msg = ul.get("imgsz") or info.size, None
        if size is None:
            size = (640, 640)
            msg = ("model input size is not fixed and the file has no Ultralytics 'imgsz': assuming 640x640 "
                   "(pass preprocess={'size': ...} or store it with pyimgcls.annotate_model)")
        if info.size is not None and tuple(size) != tuple(info.size):
            raise ValueError(f"Ultralytics metadata imgsz {tuple(size)} disagrees with the model input size {info.size}")
        cfg = PreprocessConfig(size=size, resize="letterbox", interpolation="bilinear_cv2", mean=(0.0,) * info.channels,
                               std=(1.0,) * info.channels, pad_value=114.0, channel_order="RGB",
                               layout=info.layout, dtype=info.dtype, channels=info.channels)
        if not ul and msg is None:
            msg = (f"model has no pyimgcls.preprocess or Ultralytics metadata; assuming Ultralytics' letterbox "
                   f"{size[0]}x{size[1]} (bilinear_cv2, pad 114, RGB, /255, {info.layout})")
        return cfg, msg

    def _check_classes(self, classes) -> tuple[int, ...] | None:
        if classes is None:
            return None
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            classes = [classes]
        try:
            ids = [c for c in classes]
        except TypeError:
            raise TypeError(f"classes must be a class id or a sequence of them, got {type(classes).__name__}") from None
        out = []
        for c in ids:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
                raise TypeError(f"classes must hold int class ids, got {type(c).__name__} {c!r}")
            if c < 0 or (self.num_classes is not None and c >= self.num_classes):
                raise ValueError(f"class id {int(c)} is out of range: the model has "
                                 f"{self.num_classes} classes (0..{(self.num_classes or 1) - 1})")
            out.append(int(c))
        return tuple(sorted(set(out)))

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["settings"] = self._settings
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model"], preprocess=state["preprocess"], **state["settings"], **state["session_options"])

    # ------------------------------------------------------------------ post-processing
    def _class_names(self):
        return tuple(self.names) if self.names else None

    def _nms(self, o: np.ndarray) -> Detections:
        """One image of a v5 / v8 output, as Ultralytics' ``non_max_suppression`` does it.

        NumPy picks the candidates (each anchor's best class, score ``> conf``, the ``classes``
        filter, the 30000 best), native ``ops.nms`` runs the greedy NMS. Class-aware NMS is one
        NMS over boxes shifted by ``class * 7680`` px in float32, Ultralytics' own arithmetic, so
        that an IoU within float32 rounding of ``iou`` is decided the same way (pyimgcls'
        ``decode_yolo`` and ``batched_nms`` compare classes exactly instead).
        """
        nc = self.num_classes
        if self.layout == "v8":
            cls_scores = o[4:4 + nc]                                   # (C, A)
            best = cls_scores.max(axis=0) if nc else np.zeros(o.shape[1], np.float32)
            cand = np.nonzero(best > self.conf)[0]
            j = cls_scores[:, cand].argmax(axis=0)
            score = best[cand]
            xywh = o[:4, cand].T
        else:  # YOLOv5: objectness first, then objectness * class score
            obj = o[:, 4]
            cand = np.nonzero(obj > self.conf)[0]
            prod = o[cand, 5:5 + nc] * obj[cand, None]
            j = prod.argmax(axis=1) if nc else np.zeros(0, np.int64)
            score = prod[np.arange(len(cand)), j]
            keep = score > self.conf
            cand, j, score = cand[keep], j[keep], score[keep]
            xywh = o[cand, :4]
        if self.classes is not None:
            keep = np.isin(j, self.classes)
            j, score, xywh = j[keep], score[keep], xywh[keep]
        if len(score) > MAX_CANDIDATES:
            top = np.argsort(-score, kind="stable")[:MAX_CANDIDATES]
            j, score, xywh = j[top], score[top], xywh[top]
        half = xywh[:, 2:4] / np.float32(2)
        xyxy = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1).astype(np.float32, copy=False)
        if not np.isfinite(xyxy).all() or not np.isfinite(score).all():
            raise ValueError(f"{self.session.source}: the model's boxes or scores are not finite")
        shifted = xyxy if self.agnostic_nms else xyxy + (j.astype(np.float32) * np.float32(MAX_WH))[:, None]
        kept = nms(shifted, score.astype(np.float32, copy=False), self.iou,
                   max_output=min(self.max_det, len(score)))  # any max_det >= 1 (nms takes <= 2^62)
        return Detections(xyxy=xyxy[kept], confidence=score[kept], class_id=j[kept].astype(np.int32),
                          class_names=self._class_names())

    def _end2end(self, rows: np.ndarray) -> Detections:
        """One image of an end-to-end output ``(max_det, 6)``: conf, classes, max_det."""
        r = np.asarray(rows, np.float32)
        score = r[:, 4]
        sel = np.nonzero(score > self.conf)[0]
        r = r[sel]
        cls = r[:, 5]
        if not np.isfinite(r).all() or (cls < 0).any() or (cls != np.round(cls)).any():
            raise ValueError(f"{self.session.source}: end-to-end output rows must be finite with integer "
                             "class ids >= 0")
        if cls.size and cls.max() > np.iinfo(np.int32).max:  # would wrap in the int32 class_id
            raise ValueError(f"{self.session.source}: end-to-end output has class id {float(cls.max()):.0f}, "
                             f"past the int32 class ids (at most {np.iinfo(np.int32).max})")
        cls = cls.astype(np.int64)
        if self.num_classes is not None and cls.size and cls.max() >= self.num_classes:
            raise ValueError(f"{self.session.source}: end-to-end output has class id {int(cls.max())} but the "
                             f"model names {self.num_classes} classes")
        if self.classes is not None:
            m = np.isin(cls, self.classes)
            r, cls = r[m], cls[m]
        order = np.argsort(-r[:, 4], kind="stable")[: self.max_det]
        return Detections(xyxy=r[order, :4], confidence=r[order, 4], class_id=cls[order].astype(np.int32),
                          class_names=self._class_names())

    def decode(self, outputs: np.ndarray) -> list[Detections]:
        """Raw model outputs ``(B, ...)`` -> one ``Detections`` per image, boxes in model-input pixels.

        Args:
            outputs: float array of the model's first output for ``B`` images, in this
                detector's ``layout``.

        Returns:
            ``B`` ``Detections`` (xyxy float32 in model-input pixels, by descending confidence).
        """
        out = np.asarray(outputs)
        if out.ndim != 3:
            raise ValueError(f"{self.session.source}: detector output of shape {out.shape} is not a recognised "
                             f"YOLO layout; supported: {_LAYOUT_TEXT}")
        if self.layout == "end2end":
            return [self._end2end(o) for o in out]
        out = np.asarray(out, np.float32)
        return [self._nms(o) for o in out]

    def _decode_rows(self, outputs: np.ndarray, n: int) -> list:
        """``decode`` of the model's first output for a batch of ``n`` images: per image its
        ``Detections``, or the ``ValueError`` that says why its output cannot be decoded
        (non-finite boxes or scores, bad class ids), so that one image's bad output does not take
        its batch with it. An output that is not the batch's (shape or batch size) raises."""
        out = np.asarray(outputs)
        if out.ndim != 3:
            raise ValueError(f"{self.session.source}: detector output of shape {out.shape} is not a recognised "
                             f"YOLO layout; supported: {_LAYOUT_TEXT}")
        if out.shape[0] != n:
            raise ValueError(f"{self.session.source}: the model gave an output of shape {out.shape} for a batch of "
                             f"{n} image{'s' if n != 1 else ''}; its first dimension must be the batch")
        try:
            return list(self.decode(out))
        except ValueError:
            pass
        rows: list = []
        for r in range(n):
            try:
                rows.append(self.decode(out[r:r + 1])[0])
            except ValueError as e:
                rows.append(e)
        return rows

    def _to_image(self, det: Detections, transform: ImageTransform) -> Detections:
        return det.to_original(transform)

    # ------------------------------------------------------------------ batch path
    def predict(self, inputs, *, batch_size: int = 16, errors: str = "record", fast_decode: bool = False,
                item_timeout: float | None = None) -> list[DetectionResult]:
        """Detects objects in ``inputs`` (paths, folders, bytes, arrays, PIL images, or an iterable of them).

        Args:
            batch_size: images per model call (a fixed-batch model gets its own size in chunks).
            errors: ``"record"`` (a bad item gets ``error`` set, the rest go on) or ``"raise"``.
            fast_decode: decode JPEGs at a reduced DCT scale that keeps the letterbox a
                downscale (faster on large photos; pixels differ from a full decode). Boxes are in
                full-resolution pixels either way.
            item_timeout: seconds one input may take to read and decode (``None``: no limit).

        Returns:
            One ``DetectionResult`` per input item, in input order (a folder gives one per image
            file inside it, each with its ``source``).
        """
        return list(self.predict_iter(inputs, batch_size=batch_size, errors=errors, fast_decode=fast_decode,
                                      item_timeout=item_timeout))

    def predict_iter(self, inputs, *, batch_size: int = 16, errors: str = "record", fast_decode: bool = False,
                     item_timeout: float | None = None, items: Iterator[Item] | None = None,
                     stats: dict | None = None) -> Iterator[DetectionResult]:
        """Like ``predict`` but yields results as they come (bounded memory for huge inputs).

        ``stats``: a dict that gets the seconds spent in ``decode_s``, ``preprocess_s``,
        ``inference_s`` and ``postprocess_s`` added.
        """
        import time

        for prep, outs in self._run_batches(inputs, batch_size=batch_size, errors=errors, fast_decode=fast_decode,
                                            items=items, stats=stats, item_timeout=item_timeout):
            t0 = time.perf_counter()
            dets = self._decode_rows(outs[0], len(prep.ok)) if outs is not None else []
            row = {j: r for r, j in enumerate(prep.ok)}
            results = []
            for j, item in enumerate(prep.items):
                e = prep.errors.get(j)
                if e is None and isinstance(dets[row[j]], ValueError):
                    e = dets[row[j]]  # this image's output cannot be decoded (non-finite boxes, ...)
                    if errors == "raise":
                        raise ValueError(f"{item.source}: {e}") from None
                if e is not None:
                    results.append(DetectionResult(source=item.source, detections=None,
                                                   error=f"{type(e).__name__}: {e}"))
                    continue
                r = row[j]
                info = prep.infos[r]
                results.append(DetectionResult(source=item.source,
                                               detections=self._to_image(dets[r], prep.transforms[r]),
                                               image_size=info.full_size, stored_size=info.stored_size))
            if stats is not None:
                stats["postprocess_s"] = stats.get("postprocess_s", 0.0) + time.perf_counter() - t0
            yield from results

    # ------------------------------------------------------------------ one image, low latency
    def predict_one(self, image) -> DetectionResult:
        """The low-latency path: one image (array, path, bytes or PIL image) in, detections out.

        Preprocessed on the calling thread into a preallocated input buffer (per thread), so it
        is safe to call from many threads at once. Errors raise.
        """
        run = self._run_one(image)
        det = self._decode_rows(run.outputs[0], 1)[0]
        if isinstance(det, ValueError):
            raise ValueError(f"{run.source}: {det}") from None
        info = run.info
        return DetectionResult(source=run.source, detections=self._to_image(det, run.transform),
                               image_size=info.full_size if info else run.transform.original_size,
                               stored_size=info.stored_size if info else None)


def load_detector(spec, **options: Any):
    """The detector a model spec names (the CLI's ``--model``, jobs): ``"faces"`` is the built-in
    ``FaceDetector()``; anything else is a YOLO ONNX file (path or bytes) for ``Detector``.

    Args:
        spec: ``"faces"``, a path, or model bytes.
        **options: passed to the detector's constructor (``conf``, ``iou``, ``max_det``, ``threads``, ...).
    """
    if isinstance(spec, str) and spec.strip().lower() == "faces":
        try:
            from .faces import FaceDetector
        except ImportError as e:
            raise ImportError(f"the built-in face detector (pyimgcls.tasks.faces) is not available in this "
                              f"installation: {e}") from None
        return FaceDetector(**options)
    return Detector(spec, **options)
