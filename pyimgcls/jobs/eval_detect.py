"""``evaluate_detection``: a detector on a labelled detection dataset (COCO JSON or the YOLO layout).

The detector (``tasks.load_detector``: ``"faces"`` or a YOLO ONNX file) runs at ``conf=0.001`` by
default, as Ultralytics' ``val`` does, so the precision-recall curves reach low scores; the boxes are
scored with ``pyimgcls.metrics.COCOEvaluator`` (equal to pycocotools' COCOeval, bbox, 100 detections;
the ground truth's area is its box area, as for YOLO labels). The numbers: the 12 COCO stats, the
per-class AP@[.5:.95] and AP50, PR curves at IoU 0.5, a bootstrap 95% interval of mAP (resampled
images), and images with the ground truth (green) and the predictions at ``draw_conf`` drawn.

Memory: the detections of every image are kept (for the bootstrap and the drawings): at most
``max_det`` boxes per image (about 20 bytes each).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..io.datasets import DetectionDataset, read_coco, read_yolo
from ..metrics import STAT_NAMES, COCOEvaluator
from .eval import EvalReport, _interval, _problem_counts, _progress_bar, match_classes, read_class_map

__all__ = ["evaluate_detection", "load_detection_dataset"]

GT_COLOR = (0, 200, 0)


def load_detection_dataset(data: Any, *, images_dir=None, split: str | None = None) -> DetectionDataset:
    """A ``DetectionDataset`` from a COCO JSON file, a YOLO folder (``images/``, ``labels/``,
    ``data.yaml``) or an existing ``DetectionDataset``."""
    if isinstance(data, DetectionDataset):
        return data
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a COCO JSON path, a YOLO folder or a DetectionDataset, got {type(data).__name__}")
    p = os.fspath(data)
    if os.path.isfile(p):
        if not p.lower().endswith(".json"):
            raise ValueError(f"{p}: a detection dataset is a COCO .json file or a YOLO folder (images/, labels/)")
        return read_coco(p, images_dir)
    if os.path.isdir(p):
        if not os.path.isdir(os.path.join(p, "images")):
            raise ValueError(f"{p}: not a YOLO dataset folder (no images/ inside); COCO: give the .json file")
        return read_yolo(p, split=split)
    raise FileNotFoundError(f"dataset not found: {p}")


def _draw(image: np.ndarray, gt_boxes: np.ndarray, gt_names: list[str], dets, names: list[str]) -> np.ndarray:
    """The image with the ground truth (green, thin) and the detections (``Detections.annotate``
    where this installation has it, else OpenCV rectangles) drawn."""
    import cv2

    img = np.ascontiguousarray(image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])
    t = max(1, round(0.003 * (img.shape[0] + img.shape[1]) / 2))
    if dets is not None and len(dets):
        if hasattr(dets, "annotate"):
            img = dets.annotate(img)
        else:
            for (x0, y0, x1, y1), c, k in zip(dets.xyxy, dets.confidence, dets.class_id):
                cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), (230, 40, 40), t)
                cv2.putText(img, f"{names[k] if k < len(names) else k} {c:.2f}", (int(x0), max(10, int(y0) - 3)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4 * t, (230, 40, 40), max(1, t // 2))
    for (x0, y0, x1, y1), n in zip(gt_boxes, gt_names):
        cv2.rectangle(img, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), GT_COLOR, t)
        cv2.putText(img, f"GT {n}", (int(x0), min(img.shape[0] - 3, int(y1) + 12 * t)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * t, GT_COLOR, max(1, t // 2))
    return img


def evaluate_detection(data: Any, *, model="faces", detector=None, images_dir=None, split: str | None = None,
                       class_map=None, conf: float = 0.001, iou: float = 0.7, max_det: int = 300,
                       batch_size: int = 16, threads: int = 0, device: str | None = None, bootstrap: int = 200,
                       seed: int = 0, out=None, plots: bool = True, html: bool = True, draw: int = 8,
                       draw_conf: float = 0.25, progress: bool = False) -> EvalReport:
    """Evaluates a detector on COCO JSON or YOLO-layout ground truth.

    Args:
        data: a COCO ``instances_*.json`` (images relative to its folder or ``images_dir``), a YOLO
            dataset folder (``split``: a sub-folder of ``images/``), or a ``DetectionDataset``.
        model: ``"faces"`` (the built-in face detector) or a YOLO ONNX file; ``detector``: an
            existing detector instead.
        class_map: dataset class -> detector class (dict or file, see ``read_class_map``).
        conf, iou, max_det: the detector's thresholds (``conf=0.001`` as Ultralytics' val).
        bootstrap: resamples of the images for the mAP interval (0: none).
        draw: images drawn with ground truth and predictions (``draw_conf`` and above) in the report.

    Returns:
        ``EvalReport`` with ``task="detect"``; ``metrics`` holds the 12 COCO stats by name.
    """
    t_start = time.perf_counter()
    ds = load_detection_dataset(data, images_dir=images_dir, split=split)
    data_desc = os.fspath(data) if isinstance(data, (str, os.PathLike)) else f"<dataset of {len(ds)} images>"
    if len(ds) == 0:
        raise ValueError(f"{data_desc}: no images to evaluate")
    cmap = read_class_map(class_map) if isinstance(class_map, (str, os.PathLike)) else class_map
    det = detector
    if det is None:
        from ..tasks import load_detector

        kw: dict[str, Any] = {"conf": conf, "threads": threads, "max_det": max_det}
        if not (isinstance(model, str) and model.strip().lower() == "faces"):
            kw["iou"] = iou
        if device is not None:
            kw["device"] = device
        det = load_detector(model, **kw)
    names = list(det.names)
    mapping = match_classes(ds.classes, names, class_map=cmap)
    to_dataset = {m: k for k, m in enumerate(mapping)}
    K = len(ds.classes)
    ev = COCOEvaluator(category_ids=list(range(K)), threads=threads)
    problems = list(ds.problems)
    notes: list[str] = []
    per_image: list[tuple | None] = []
    dropped = 0
    bar = _progress_bar(progress, len(ds))
    readable = [i for i, p in enumerate(ds.paths) if os.path.isfile(p)]
    results = {}
    for i, r in zip(readable, det.predict_iter([ds.paths[i] for i in readable], batch_size=batch_size)):
        results[i] = r
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    for i in range(len(ds)):
        r = results.get(i)
        if r is None:
            per_image.append(None)  # a missing file: listed by the dataset reader
            continue
        if r.error is not None:
            problems.append(("unreadable_image", f"{ds.paths[i]}: {r.error}"))
            per_image.append(None)
            continue
        d = r.detections
        keep = np.asarray([int(c) in to_dataset for c in d.class_id], bool)
        dropped += int((~keep).sum())
        boxes = d.xyxy[keep].astype(np.float64)
        scores = d.confidence[keep].astype(np.float64)
        cls = np.asarray([to_dataset[int(c)] for c in d.class_id[keep]], np.int64)
        per_image.append((boxes, scores, cls, d))
        ev.update(i, (boxes, scores, cls), ds.boxes[i], ds.class_ids[i], gt_iscrowd=ds.iscrowd[i])
    evaluated = [i for i, x in enumerate(per_image) if x is not None]
    if not evaluated:
        raise ValueError(f"none of the {len(ds)} images could be evaluated (problems: {_problem_counts(problems)})")
    if dropped:
        notes.append(f"{dropped} detections of detector classes that are not in the dataset were left out")
    res = ev.compute()
    metrics = {k: float(v) for k, v in zip(STAT_NAMES, res.stats)}
    metrics["map"] = metrics["AP"]
    gt_count = np.bincount(np.concatenate([ds.class_ids[i] for i in evaluated] or [np.zeros(0, np.int64)]),
                           minlength=K)
    per_class, curves = [], {}
    rec = np.linspace(0.0, 1.0, 101)
    for k in range(K):
        p50 = res.precision[0, :, k, 0, 2]
        ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else float("nan")
        ap = float(res.per_class_ap.get(k, -1))
        npred = sum(int(((x[2] == k) & (x[1] >= draw_conf)).sum()) for x in per_image if x is not None)
        per_class.append({"name": names[mapping[k]], "dataset_names": [ds.classes[k]], "model_index": mapping[k],
                          "ap": ap if ap >= 0 else float("nan"), "ap50": ap50, "support": int(gt_count[k]),
                          "predicted": npred})
        if (p50 > -1).any():
            curves[names[mapping[k]]] = {"precision": np.where(p50 > -1, p50, 0.0), "recall": rec, "ap": ap50}
    intervals = {}
    if bootstrap:
        rng = np.random.default_rng(seed)
        maps = []
        for _ in range(bootstrap):
            e = COCOEvaluator(category_ids=list(range(K)), threads=threads)
            for j, i in enumerate(rng.choice(evaluated, len(evaluated))):
                b, s, c, _ = per_image[i]
                e.update(j, (b, s, c), ds.boxes[i], ds.class_ids[i], gt_iscrowd=ds.iscrowd[i])
            maps.append(float(e.compute().stats[0]))
        intervals["map"] = _interval([m for m in maps if m >= 0])
    # drawn images: those where the confident predictions and the ground truth disagree most in count
    order = sorted(evaluated, key=lambda i: (-abs(int((per_image[i][1] >= draw_conf).sum()) - len(ds.boxes[i])), i))
    gallery = []
    if draw:
        ex = []
        for i in order[:draw]:
            b, s, c, d = per_image[i]
            sel = np.flatnonzero(d.confidence >= draw_conf)
            ex.append({"path": ds.paths[i], "draw": {"gt_boxes": ds.boxes[i], "gt_names": [ds.classes[k] for k in
                                                                                               ds.class_ids[i]],
                                                     "detections": d[sel] if len(sel) else None, "names": names},
                       "true_count": int(len(ds.boxes[i])), "predicted_count": int(len(sel)),
                       "confidence": float(s.max()) if len(s) else 0.0, "top": []})
        gallery.append({"true": "ground truth (green)", "predicted": f"predictions >= {draw_conf:g}",
                        "count": len(ex), "examples": ex})
    counts = {"labelled": len(ds), "evaluated": len(evaluated), "failed": len(ds) - len(evaluated),
              "problems": _problem_counts(problems)}
    settings = {"conf": conf, "iou": iou, "max_det": max_det, "bootstrap": bootstrap, "seed": seed,
                "draw_conf": draw_conf, "class_mapping": {d: names[m] for d, m in zip(ds.classes, mapping)}}
    rep = EvalReport(task="detect", multi_label=False, model=str(model) if detector is None else repr(det),
                     data=data_desc, metrics=metrics, intervals=intervals, per_class=per_class, counts=counts,
                     problems=problems, notes=notes, settings=settings, curves=curves, gallery=gallery)
    rep.coco = res  # the full COCOResult (precision / recall arrays)
    rep.seconds["evaluate"] = time.perf_counter() - t_start
    if out is not None:
        rep.write(out, plots=plots, html=html)
    return rep
