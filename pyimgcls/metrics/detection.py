"""Detection metrics: COCO bbox evaluation identical to pycocotools' COCOeval (to 1e-9), and
PASCAL VOC average precision. Matching and accumulation are native and threaded over classes.

Ground-truth id 0: pycocotools' ``evaluateImg`` records a match as the ground truth's annotation id
(``dtMatches``) and ``accumulate`` tests that value for truth, so a detection matched to the annotation
with id 0 is a false positive, the ground truth is still used up (no other detection can match it) and
counts in the recall denominator, and the detection, seen as unmatched, is ignored instead where its
area is outside the area range. A crowd or out-of-range ground truth makes its matches ignored either
way, so there the id changes nothing. faster-coco-eval does the same (it also treats negative ids so;
pycocotools treats them as ordinary). pyimgcls follows pycocotools by default
(``gt_id_zero="pycocotools"``); ``gt_id_zero="match"`` treats id 0 like any other id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..runtime.threads import resolve_threads

__all__ = ["COCOEvaluator", "COCOResult", "evaluate_coco", "voc_average_precision", "STAT_NAMES"]

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large")
_IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_AREAS = np.array([[0, 1e5 ** 2], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]], np.float64)
_AREA_LBL = ("all", "small", "medium", "large")
_MAX_DETS = (1, 10, 100)


@dataclass
class COCOResult:
    """Result of a COCO bbox evaluation.

    Attributes:
        stats: the 12 standard numbers, in pycocotools' order (``STAT_NAMES``).
        per_class_ap: ``{category_id: AP@[.5:.95]}`` (area all, 100 detections); -1 without ground truth.
        precision: (T=10, R=101, K, A=4, M=3) array, -1 where undefined (pycocotools' ``eval['precision']``).
        recall: (T, K, A, M) array.
        category_ids: the K category ids, ascending.
    """

    stats: np.ndarray
    per_class_ap: dict
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list

    def as_dict(self) -> dict:
        return dict(zip(STAT_NAMES, (float(x) for x in self.stats)))

    def __str__(self) -> str:
        return "\n".join(f"{k:>10}  {v:.4f}" for k, v in self.as_dict().items())


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    def one(ap, iou=None, area="all", md=100):
        a = _AREA_LBL.index(area)
        m = _MAX_DETS.index(md)
        if ap:
            s = precision
            if iou is not None:
                s = s[np.where(iou == _IOU_THRS)[0]]
            s = s[:, :, :, a, m]
        else:
            s = recall
            if iou is not None:
                s = s[np.where(iou == _IOU_THRS)[0]]
            s = s[:, :, a, m]
        v = s[s > -1]
        return -1.0 if v.size == 0 else float(np.mean(v))

    return np.array([one(1), one(1, 0.5), one(1, 0.75), one(1, area="small"), one(1, area="medium"),
                     one(1, area="large"), one(0, md=1), one(0, md=10), one(0), one(0, area="small"),
                     one(0, area="medium"), one(0, area="large")])


def _boxes(x, name: str, n: int | None = None) -> np.ndarray:
    b = np.asarray(x, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
    if n is not None and b.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows, got {b.shape[0]}")
    if not np.isfinite(b).all():
        raise ValueError(f"{name} must be finite")
    return b


def _vector(x, name: str, n: int, dtype) -> np.ndarray:
    """A length-``n`` vector as ``dtype``; a value that does not fit (a fractional or NaN class id, a
    number outside the integer type) is refused, never truncated or wrapped."""
    v = np.asarray(x)
    if v.size == 0:
        v = v.reshape(0)
    if v.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {v.shape}")
    dt = np.dtype(dtype)
    if dt.kind in "iub" and v.dtype.kind not in "iub":
        if v.dtype.kind != "f":
            raise TypeError(f"{name} must be numeric, got {v.dtype}")
        bad = ~np.isfinite(v) | (v != np.round(v)) if v.size else np.zeros(0, bool)
        if bad.any():
            raise ValueError(f"{name} must hold whole numbers, got {v[bad][0]}")
    if dt.kind in "iu" and v.size and v.dtype.kind in "iuf":
        info = np.iinfo(dt)
        if v.min() < info.min or v.max() > info.max:
            raise ValueError(f"{name} must fit {dt.name}, got values in [{v.min()}, {v.max()}]")
    if dt.kind == "f" and v.dtype.kind == "f" and v.size and not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite")
    return v.astype(dtype)


_GT_ID_ZERO = ("pycocotools", "match")


class COCOEvaluator:
    """Streaming COCO bbox evaluation (same 12 numbers as pycocotools' COCOeval).

    Args:
        box_format: ``"xyxy"`` (default) or ``"xywh"`` for the boxes given to ``update``.
        category_ids: the categories evaluated (default: every class seen in ground truth).
        threads: worker threads over categories for ``compute`` (0 = all usable cores).
        gt_id_zero: what a match to a ground truth with annotation id 0 (``update(..., gt_ids=...)``)
            counts as: ``"pycocotools"`` (default) a false positive that uses the ground truth up, as
            pycocotools and faster-coco-eval count it (see the module docstring); ``"match"`` an ordinary
            match. Ground truths given without ids never have id 0, so both settings agree on them.
    """

    def __init__(self, *, box_format: str = "xyxy", category_ids=None, threads: int = 0,
                 gt_id_zero: str = "pycocotools") -> None:
        if box_format not in ("xyxy", "xywh"):
            raise ValueError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
        if gt_id_zero not in _GT_ID_ZERO:
            raise ValueError(f"gt_id_zero must be 'pycocotools' or 'match', got {gt_id_zero!r}")
        self.gt_id_zero = gt_id_zero
        self.box_format = box_format
        self.category_ids = None if category_ids is None else sorted(int(c) for c in category_ids)
        resolve_threads(threads)  # checked now, resolved where it runs
        self.threads = threads
        self._images: dict[int, list] = {}

    def _xywh(self, b: np.ndarray) -> np.ndarray:
        if self.box_format == "xywh":
            return b
        return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)

    def update(self, image_id: int, detections, gt_boxes, gt_classes, *, gt_iscrowd=None, gt_area=None,
               gt_ids=None) -> None:
        """Adds one image.

        Args:
            image_id: integer id; updating the same id again adds to it.
            detections: a ``Detections`` (xyxy) or a tuple ``(boxes (D, 4), scores (D,), classes (D,))``
                in ``box_format``.
            gt_boxes: (G, 4) ground-truth boxes in ``box_format``.
            gt_classes: (G,) category ids.
            gt_iscrowd: (G,) crowd flags (crowd boxes are matched but neither rewarded nor penalised).
            gt_area: (G,) areas for the small / medium / large split (default: box area).
            gt_ids: (G,) annotation ids, used only for pycocotools' id-0 rule (``gt_id_zero``): pass them to
                reproduce a pycocotools run on a file whose annotation ids start at 0. Without them no
                ground truth has id 0 (the answer pycocotools gives on the same data numbered from 1).
        """
        if hasattr(detections, "xyxy"):
            db = np.asarray(detections.xyxy, np.float64)
            if self.box_format == "xywh":
                db = np.stack([db[:, 0], db[:, 1], db[:, 2] - db[:, 0], db[:, 3] - db[:, 1]], axis=1)
            ds, dc = detections.confidence, detections.class_id
        else:
            try:
                db, ds, dc = detections
            except (TypeError, ValueError):
                raise TypeError("detections must be a Detections or a (boxes, scores, classes) tuple") from None
        db = _boxes(db, "detection boxes")
        D = db.shape[0]
        ds = _vector(ds, "detection scores", D, np.float64)
        dc = _vector(dc, "detection classes", D, np.int64)
        if not np.isfinite(ds).all():
            raise ValueError("detection scores must be finite")
        gb = _boxes(gt_boxes, "gt_boxes")
        G = gb.shape[0]
        gc = _vector(gt_classes, "gt_classes", G, np.int64)
        crowd = np.zeros(G, np.uint8) if gt_iscrowd is None else _vector(gt_iscrowd, "gt_iscrowd", G, np.uint8)
        gxywh = self._xywh(gb)
        area = gxywh[:, 2] * gxywh[:, 3] if gt_area is None else _vector(gt_area, "gt_area", G, np.float64)
        # -1 where no id was given: only id 0 is special, and pycocotools treats negative ids as ordinary
        ids = np.full(G, -1, np.int64) if gt_ids is None else _vector(gt_ids, "gt_ids", G, np.int64)
        entry = (gxywh, gc, crowd, area, ids, self._xywh(db), dc, ds)
        self._images.setdefault(int(image_id), []).append(entry)

    def merge(self, other: "COCOEvaluator") -> "COCOEvaluator":
        """Adds another evaluator's images (e.g. from another worker); ``compute`` uses this one's settings."""
        if not isinstance(other, COCOEvaluator):
            raise TypeError(f"can only merge a COCOEvaluator, got {type(other).__name__}")
        for k, v in other._images.items():
            self._images.setdefault(k, []).extend(v)
        return self

    def __len__(self) -> int:
        return len(self._images)

    def compute(self) -> COCOResult:
        """The 12 COCO stats, per-class AP and the precision / recall arrays."""
        ids = sorted(self._images)
        gt_parts, dt_parts = [], []
        gt_begin, dt_begin = [0], [0]
        for i in ids:
            for e in self._images[i]:
                gt_parts.append(e[:5])
                dt_parts.append(e[5:])
            gt_begin.append(gt_begin[-1] + sum(len(e[1]) for e in self._images[i]))
            dt_begin.append(dt_begin[-1] + sum(len(e[6]) for e in self._images[i]))

        def cat(parts, k, shape, dtype):
            xs = [p[k] for p in parts]
            return np.ascontiguousarray(np.concatenate(xs) if xs else np.zeros(shape, dtype), dtype=dtype)

        gt_box = cat(gt_parts, 0, (0, 4), np.float64)
        gt_cls = cat(gt_parts, 1, (0,), np.int64)
        cats = self.category_ids if self.category_ids is not None else sorted(set(gt_cls.tolist()))
        precision, recall = _core.coco_evaluate(
            np.array(gt_begin, np.int64), gt_box.reshape(-1), gt_cls, cat(gt_parts, 2, (0,), np.uint8),
            cat(gt_parts, 3, (0,), np.float64), cat(gt_parts, 4, (0,), np.int64), np.array(dt_begin, np.int64),
            cat(dt_parts, 0, (0, 4), np.float64).reshape(-1), cat(dt_parts, 1, (0,), np.int64),
            cat(dt_parts, 2, (0,), np.float64), np.array(cats, np.int64), _IOU_THRS, _REC_THRS, _AREAS,
            np.array(_MAX_DETS, np.int64), self.gt_id_zero == "pycocotools", resolve_threads(self.threads))
        per_class = {}
        for k, c in enumerate(cats):
            v = precision[:, :, k, 0, -1]
            v = v[v > -1]
            per_class[c] = float(np.mean(v)) if v.size else -1.0
        return COCOResult(stats=_summarize(precision, recall), per_class_ap=per_class, precision=precision,
                          recall=recall, category_ids=list(cats))


def _load_json(x):
    if isinstance(x, (str, os.PathLike)):
        with open(x) as f:
            return json.load(f)
    return x


def evaluate_coco(gt_json, dt_json, *, threads: int = 0, gt_id_zero: str = "pycocotools") -> COCOResult:
    """Evaluates COCO-format files (or already loaded dicts / lists) like pycocotools does.

    Args:
        gt_json: ground truth: path or dict with ``images``, ``annotations`` (id, bbox xywh, category_id,
            iscrowd, area) and ``categories``. An annotation without an ``id`` counts as having a non-zero one.
        dt_json: results: path or list of ``{"image_id", "category_id", "bbox", "score"}``.
        gt_id_zero: ``"pycocotools"`` (default): a match to the annotation with id 0 is a false positive,
            as in pycocotools and faster-coco-eval; ``"match"``: an ordinary match (see ``COCOEvaluator``).
    """
    gt = _load_json(gt_json)
    dt = _load_json(dt_json)
    if not isinstance(gt, dict) or "annotations" not in gt:
        raise ValueError("gt_json must be a COCO dict with 'annotations'")
    if isinstance(dt, dict) and "annotations" in dt:
        dt = dt["annotations"]
    if not isinstance(dt, list):
        raise ValueError("dt_json must be a list of result dicts")
    cats = [c["id"] for c in gt.get("categories", [])] or None
    img_ids = [im["id"] for im in gt.get("images", [])]
    known = set(img_ids) if img_ids else None
    ev = COCOEvaluator(box_format="xywh", category_ids=cats, threads=threads, gt_id_zero=gt_id_zero)
    gts: dict = {i: [] for i in img_ids}
    for a in gt["annotations"]:
        gts.setdefault(a["image_id"], []).append(a)
    dts: dict = {}
    for d in dt:
        if known is not None and d["image_id"] not in known:
            raise ValueError(f"result for image_id {d['image_id']} that is not in the ground truth")
        dts.setdefault(d["image_id"], []).append(d)
    for i in sorted(set(gts) | set(dts)):
        g = gts.get(i, [])
        d = dts.get(i, [])
        ev.update(i, (np.array([x["bbox"] for x in d], np.float64).reshape(-1, 4),
                      np.array([x["score"] for x in d], np.float64), np.array([x["category_id"] for x in d], np.int64)),
                  np.array([x["bbox"] for x in g], np.float64).reshape(-1, 4),
                  np.array([x["category_id"] for x in g], np.int64),
                  gt_iscrowd=np.array([x.get("iscrowd", 0) for x in g], np.uint8),
                  gt_area=np.array([x["area"] if "area" in x else x["bbox"][2] * x["bbox"][3] for x in g], np.float64),
                  gt_ids=np.array([x.get("id", -1) for x in g], np.int64))
    return ev.compute()


def voc_average_precision(detections, ground_truths, *, iou_threshold: float = 0.5, use_07_metric: bool = False,
                          num_classes: int | None = None) -> dict:
    """PASCAL VOC AP per class by the devkit's rules (VOCevaldet.m, VOCap.m), in continuous coordinates.

    The rules: per class, the detections of all images in descending score order, equal scores in the
    order given (image, then position: MATLAB's sort is stable). Each detection takes the ground truth of
    its class and image that it overlaps most (the first on equal IoU), taken or not, and matches it when
    that IoU >= ``iou_threshold`` (VOCevaldet.m; py-faster-rcnn's voc_eval.py writes ``>``). A match to a
    difficult box is neither a true nor a false positive; to a box already taken, a false positive (a
    duplicate); otherwise a true positive. Difficult boxes are left out of the recall denominator.
    Where pyimgcls differs from the devkit: coordinates are continuous (IoU as ``box_iou`` computes it;
    the devkit counts integer pixels with both ends included, ``+ 1`` on widths and heights), and a class
    whose ground truths are all difficult has no AP and is left out (the devkit divides by zero).

    Args:
        detections: per image, ``(boxes (D, 4) xyxy, scores (D,), classes (D,))`` or ``Detections``.
        ground_truths: per image, ``(boxes (G, 4) xyxy, classes (G,))`` or with a third
            ``difficult (G,)`` array.
        iou_threshold: in [0, 1]; a detection matches when its IoU >= this. A box it does not overlap
            (IoU 0) never matches, even at 0, as in the devkit.
        use_07_metric: the 11-point VOC2007 metric: the mean of the best precision at recall >= each of
            ``np.arange(0, 1.1, 0.1)``. Those are the levels py-faster-rcnn, Detectron2 and mmdetection use,
            float error included (0.30000000000000004, 0.6000000000000001, 0.7000000000000001: a recall of
            exactly 3/10, 6/10 or 7/10 does not reach its level), kept for identical numbers. Default: the
            all-point AP of VOC2010 and later (area under the monotone precision envelope).
        num_classes: when given, only classes below it are evaluated.

    Returns:
        ``{class_id: AP}`` for every class with a non-difficult ground truth, plus ``"mAP"``, their mean
        (NaN when there is none).
    """
    if len(detections) != len(ground_truths):
        raise ValueError(f"detections and ground_truths must have one entry per image, got "
                         f"{len(detections)} and {len(ground_truths)}")
    iou_threshold = float(iou_threshold)
    if not 0.0 <= iou_threshold <= 1.0:  # NaN fails too
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    from ..ops import box_iou

    gts, dts = [], []
    for g in ground_truths:
        gb, gc, *rest = g
        gb = _boxes(gb, "ground-truth boxes")
        gc = _vector(gc, "ground-truth classes", gb.shape[0], np.int64)
        diff = _vector(rest[0], "difficult", gb.shape[0], bool) if rest else np.zeros(gb.shape[0], bool)
        gts.append((gb, gc, diff))
    for d in detections:
        db, ds, dc = (d.xyxy, d.confidence, d.class_id) if hasattr(d, "xyxy") else d
        db = _boxes(db, "detection boxes")
        dts.append((db, _vector(ds, "detection scores", db.shape[0], np.float64),
                    _vector(dc, "detection classes", db.shape[0], np.int64)))
    classes = sorted({c for _, gc, diff in gts for c in gc[~diff].tolist()})
    if num_classes is not None:
        classes = [c for c in classes if c < num_classes]
    per_class: dict = {}
    for c in classes:
        npos = 0
        ious, image, scores = [], [], []  # per image: IoU (D_c, G_c) of its class-c detections and boxes
        for i, ((db, ds, dc), (gb, gc, diff)) in enumerate(zip(dts, gts)):
            sd, sg = dc == c, gc == c
            npos += int((sg & ~diff).sum())
            ious.append(box_iou(db[sd], gb[sg]))
            image.append(np.full(int(sd.sum()), i))
            scores.append(ds[sd])
        image, scores = np.concatenate(image), np.concatenate(scores)
        row = np.concatenate([np.arange(len(x)) for x in ious])  # position among the image's class-c detections
        order = np.argsort(-scores, kind="stable")
        taken = [np.zeros(x.shape[1], bool) for x in ious]
        difficult = [gts[i][2][gts[i][1] == c] for i in range(len(gts))]
        tp = np.zeros(len(order))
        fp = np.zeros(len(order))
        for n, r in enumerate(order):
            i = image[r]
            v = ious[i][row[r]]
            j = int(np.argmax(v)) if v.size else -1
            if j < 0 or v[j] <= 0 or v[j] < iou_threshold:
                fp[n] = 1
            elif difficult[i][j]:
                continue
            elif taken[i][j]:
                fp[n] = 1
            else:
                taken[i][j] = True
                tp[n] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07_metric:
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                p = prec[rec >= t].max() if np.any(rec >= t) else 0.0
                ap += p / 11.0
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            mpre = np.maximum.accumulate(mpre[::-1])[::-1]
            idx = np.flatnonzero(mrec[1:] != mrec[:-1])
            ap = float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))
        per_class[c] = float(ap)
    per_class["mAP"] = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return per_class
