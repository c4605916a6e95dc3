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

__all__ = ["evaluate_detection", "load_detection_dataset", "DetectStates"]

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


class DetectStates:
    """What the detector pass leaves, for one block of images or many: the COCO evaluator's
    per-image inputs (mergeable), each evaluated image's kept detections ``(boxes, scores, dataset
    classes, Detections)`` (for the bootstrap and the drawings), the unreadable images and the
    count of detections of classes not in the dataset. Picklable; ``merge`` adds another block's."""

    def __init__(self, num_classes: int, to_dataset: dict, threads: int = 0) -> None:
        self.ev = COCOEvaluator(category_ids=list(range(num_classes)), threads=threads)
        self.to_dataset = dict(to_dataset)
        self.per_image: dict[int, tuple] = {}
        self.errors: list[tuple[int, str]] = []
        self.dropped = 0

    def add(self, i: int, error, d, gt_boxes, gt_classes, gt_iscrowd) -> None:
        """Image ``i``'s answer: ``error`` (a message or None) or ``d`` (``Detections``)."""
        if error is not None:
            self.errors.append((int(i), str(error)))
            return
        keep = np.asarray([int(c) in self.to_dataset for c in d.class_id], bool)
        self.dropped += int((~keep).sum())
        boxes = d.xyxy[keep].astype(np.float64)
        scores = d.confidence[keep].astype(np.float64)
        cls = np.asarray([self.to_dataset[int(c)] for c in d.class_id[keep]], np.int64)
        self.per_image[int(i)] = (boxes, scores, cls, d)
        self.ev.update(int(i), (boxes, scores, cls), gt_boxes, gt_classes, gt_iscrowd=gt_iscrowd)

    def indices(self) -> np.ndarray:
        """(n,) int64: the dataset indices this state answers for (evaluated or unreadable)."""
        return np.asarray(list(self.per_image) + [i for i, _ in self.errors], np.int64)

    def merge(self, other: "DetectStates") -> "DetectStates":
        self.ev.merge(other.ev)
        self.per_image.update(other.per_image)
        self.errors += other.errors
        self.dropped += other.dropped
        return self


def evaluate_detection(data: Any, *, model="faces", detector=None, images_dir=None, split: str | None = None,
                       class_map=None, conf: float = 0.001, iou: float = 0.7, max_det: int = 300,
                       batch_size: int = 16, threads: int = 0, device: str | None = None, bootstrap: int = 200,
                       seed: int = 0, out=None, plots: bool = True, html: bool = True, draw: int = 8,
                       draw_conf: float = 0.25, progress: bool = False, engine: str = "local",
                       address: str | None = None, ray_options: dict | None = None) -> EvalReport:
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
        engine: ``"local"``, or ``"ray"``: the detector runs on Ray actors and the COCO evaluator's
            per-image inputs are built per block on the workers and merged here (the same numbers);
            ``address``, ``ray_options``: as ``jobs.eval.evaluate``.

    Returns:
        ``EvalReport`` with ``task="detect"``; ``metrics`` holds the 12 COCO stats by name.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if engine == "local" and (address is not None or ray_options):
        raise ValueError("address and ray_options apply to engine='ray'")
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
        worker_kw = {k: v for k, v in kw.items() if k != "threads"}
        if engine == "ray":  # on the driver for the class names (and to check the model) only
            kw = dict(worker_kw, threads=1, device="cpu")
        det = load_detector(model, **kw)
    elif engine == "ray":
        raise ValueError("engine='ray' builds the detector in each Ray actor: give model, not detector")
    names = list(det.names)
    mapping = match_classes(ds.classes, names, class_map=cmap)
    to_dataset = {m: k for k, m in enumerate(mapping)}
    K = len(ds.classes)
    problems = list(ds.problems)
    notes: list[str] = []
    if engine == "ray":
        from ..integrations.ray import eval_detect_pass

        states = eval_detect_pass(ds, readable=[i for i, p in enumerate(ds.paths) if os.path.isfile(p)],
                                  to_dataset=to_dataset, model=model, batch_size=batch_size, address=address,
                                  ray_options=ray_options, **worker_kw)
    else:
        states = DetectStates(K, to_dataset, threads=threads)
        bar = _progress_bar(progress, len(ds))
        readable = [i for i, p in enumerate(ds.paths) if os.path.isfile(p)]
        for i, r in zip(readable, det.predict_iter([ds.paths[i] for i in readable], batch_size=batch_size)):
            states.add(i, r.error, r.detections, ds.boxes[i], ds.class_ids[i], ds.iscrowd[i])
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    ev, dropped = states.ev, states.dropped
    ev.threads = threads
    for i, err in sorted(states.errors):
        problems.append(("unreadable_image", f"{ds.paths[i]}: {err}"))
    # a missing file (listed by the dataset reader) or an unreadable one: None
    per_image: list[tuple | None] = [states.per_image.get(i) for i in range(len(ds))]
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
    settings = {"conf": conf, "iou": iou, "max_det": max_det, "bootstrap": bootstrap, "seed": seed, "engine": engine,
                "draw_conf": draw_conf, "class_mapping": {d: names[m] for d, m in zip(ds.classes, mapping)}}
    rep = EvalReport(task="detect", multi_label=False, model=str(model) if detector is None else repr(det),
                     data=data_desc, metrics=metrics, intervals=intervals, per_class=per_class, counts=counts,
                     problems=problems, notes=notes, settings=settings, curves=curves, gallery=gallery)
    rep.coco = res  # the full COCOResult (precision / recall arrays)
    rep.seconds["evaluate"] = time.perf_counter() - t_start
    if out is not None:
        rep.write(out, plots=plots, html=html)
    return rep
