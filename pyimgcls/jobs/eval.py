"""``evaluate``: a classifier on a labelled dataset: the numbers, the plots and a report to share.

Datasets (``pyimgcls.io.datasets``): an ImageFolder tree (one sub-folder per class) or a CSV /
TSV / Parquet table of ``path,label`` (several label columns or a ``;``-separated field for
multi-label). Dataset classes are matched to the model's classes by name, then by class id
(WordNet ids such as ``n01440764`` for ImageNet models, ``Classifier.class_ids``), then by name
ignoring case, ``_`` and ``-``, or through an explicit class map; unmatched classes are an error
that lists them.

Predictions come from the model (streamed through ``Classifier.predict_batches``: decoding,
preprocessing and inference overlap, and nothing but a few numbers per image is kept), or from a
file written by ``pyimgcls score`` (``predictions=``): curves, AP and the threshold plot need its
``probabilities`` column (``score --probabilities``); without it, what the top-k lists allow is
reported (accuracy, per-class P / R / F1, confusion matrix, top-k accuracy, calibration of the
top-1 confidence) and the report says what is missing.

Memory: the confusion matrix (C x C int64) and the calibration histogram are streaming, mergeable
states; per image the truth, the prediction, the top-1 confidence and the top-k hit are kept
(O(N), for the bootstrap), and, for the per-class curves and AP, the scores of the dataset's K
classes (4 N K bytes; ``curves=False`` drops them). The model pass fills these per batch
(``SingleLabelStates``); with ``engine="ray"`` Ray actors fill them per block and the driver merges
them, and the rest (the report) is the same code for both engines.

Numbers (``pyimgcls.metrics``, equal to scikit-learn): accuracy, balanced accuracy, macro /
weighted precision, recall and F1, per-class report (over the classes present in the truth or
the predictions, as ``sklearn.metrics.classification_report`` does by default), top-k accuracy,
per-class AP and ROC AUC (one-vs-rest on the probabilities), expected calibration error (equal-width
bins of the top-1 confidence, binned as ``sklearn.calibration.calibration_curve`` bins), and
bootstrap 95% intervals (percentile, seeded) of the headline numbers. Multi-label: per-label P / R /
F1 at the thresholds, AP, ROC AUC, subset accuracy and Hamming loss.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..io.datasets import ClassificationDataset, read_image_folder, read_label_table
from ..io.sources import Item
from ..metrics import (ConfusionMatrix, MultilabelReport, RankingState, average_precision, precision_recall_curve,
                       roc_auc)
from ..metrics._common import UndefinedMetricWarning

__all__ = ["evaluate", "EvalReport", "load_classification_dataset", "match_classes", "read_class_map",
           "CalibrationHistogram", "SingleLabelStates"]

TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet")
DEFAULT_BINS = 15


# ============================================================================ class matching

def _items(paths) -> list[Item]:
    """One input per dataset row, as it is: the model gets exactly the rows' paths, in order (a
    row naming a folder is that row's error, not the folder's images), and no path is stat'ed
    again before it is read."""
    return [Item(p, p) for p in paths]

def read_class_map(path: str | os.PathLike) -> dict[str, str]:
    """Reads a class map: dataset class -> model class.

    Formats: a JSON object (``{"T-shirt_top": "T-shirt/top"}``), or a CSV / TSV text file of
    two-field lines ``dataset_class,model_class`` (tab-separated when the first line has a tab;
    fields may be quoted; ``#`` starts a comment line; a header ``dataset,model`` is skipped).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class map not found: {path}")
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if path.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"class map {path}: not valid JSON ({e})") from None
        if not isinstance(d, dict) or not all(isinstance(v, (str, int)) for v in d.values()):
            raise ValueError(f"class map {path}: expected a JSON object of dataset class -> model class names")
        return {str(k): str(v) for k, v in d.items()}
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    delim = "\t" if lines and "\t" in lines[0] else ","
    out: dict[str, str] = {}
    for n, row in enumerate(csv.reader(lines, delimiter=delim), 1):
        if len(row) != 2:
            raise ValueError(f"class map {path}: line {n} has {len(row)} fields, expected 2 "
                             f"(dataset_class{delim}model_class): {row!r}")
        a, b = row[0].strip(), row[1].strip()
        if n == 1 and (a.lower(), b.lower()) in (("dataset", "model"), ("dataset_class", "model_class")):
            continue
        if a in out and out[a] != b:
            raise ValueError(f"class map {path}: {a!r} is mapped twice ({out[a]!r} and {b!r})")
        out[a] = b
    return out


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").replace("-", " ").casefold().split())


def match_classes(dataset_classes: Sequence[str], model_labels: Sequence[str], *,
                  class_ids: Sequence[str] | None = None, class_map: dict[str, str] | None = None) -> list[int]:
    """The model class index of every dataset class.

    Each dataset class (or its ``class_map`` entry) is looked up by exact name, then among the
    model's ``class_ids`` (WordNet ids), then by name ignoring case, ``_`` and ``-`` (only when
    that is unambiguous).

    Raises:
        ValueError: listing every dataset class that matches no model class.
    """
    labels = [str(x) for x in model_labels]
    by_name = {n: i for i, n in reversed(list(enumerate(labels)))}
    by_id = {str(c): i for i, c in reversed(list(enumerate(class_ids)))} if class_ids else {}
    norm: dict[str, list[int]] = {}
    for i, n in enumerate(labels):
        norm.setdefault(_norm(n), []).append(i)
    out, unmatched = [], []
    for d in dataset_classes:
        name = class_map.get(d, d) if class_map else d
        if name in by_name:
            out.append(by_name[name])
        elif name in by_id:
            out.append(by_id[name])
        elif len(norm.get(_norm(name), [])) == 1:
            out.append(norm[_norm(name)][0])
        else:
            unmatched.append(d if name == d else f"{d} -> {name}")
            out.append(-1)
    if unmatched:
        shown = ", ".join(repr(u) for u in unmatched[:20]) + (f", ... ({len(unmatched)} in all)"
                                                              if len(unmatched) > 20 else "")
        sample = ", ".join(repr(x) for x in labels[:10]) + (", ..." if len(labels) > 10 else "")
        raise ValueError(f"{len(unmatched)} of {len(dataset_classes)} dataset classes match no model class "
                         f"(by name{', WordNet id' if class_ids else ''} or a class map): {shown}; the model's "
                         f"{len(labels)} classes: {sample}; map them with a class map (--class-map FILE: lines "
                         "'dataset_class,model_class' or a JSON object)")
    return out


def load_classification_dataset(data: Any) -> ClassificationDataset:
    """A ``ClassificationDataset`` from a folder (ImageFolder), a label table (.csv, .tsv,
    .parquet) or an existing ``ClassificationDataset``."""
    if isinstance(data, ClassificationDataset):
        return data
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a folder, a label table path or a ClassificationDataset, "
                        f"got {type(data).__name__}")
    p = os.fspath(data)
    if os.path.isdir(p):
        return read_image_folder(p)
    if os.path.isfile(p):
        if os.path.splitext(p)[1].lower() not in TABLE_EXTENSIONS:
            raise ValueError(f"{p}: a classification dataset is a folder of class folders or a label table "
                             f"({', '.join(TABLE_EXTENSIONS)})")
        return read_label_table(p)
    raise FileNotFoundError(f"dataset not found: {p}")


# ============================================================================ streaming states
_UNIT = 1126  # every finite float64 in [0, 1] is an integer multiple of 2**-1126 (mantissa 2**53, exponent >= -1073)


def _exact_sums(c: np.ndarray, group: np.ndarray, n: int) -> list[int]:
    """The exact sum of the float64 values ``c`` >= 0 in each of ``n`` groups, as Python ints in
    units of ``2**-_UNIT``. Each value is ``m * 2**(e - 53)`` with an integer ``m < 2**53``; the
    mantissas are summed in int64 per (group, exponent) in two 27-bit halves (exact for up to
    2**36 values), then shifted into place."""
    out = [0] * n
    if not c.size:
        return out
    m, e = np.frexp(c)
    mi = (m * float(1 << 53)).astype(np.int64)       # exact: m has 53 significant bits
    key = group.astype(np.int64) * 2200 + (e.astype(np.int64) + 1100)
    order = np.argsort(key, kind="stable")
    key, mi = key[order], mi[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    hi = np.add.reduceat(mi >> 27, starts)
    lo = np.add.reduceat(mi & ((1 << 27) - 1), starts)
    for k, h, l in zip(key[starts].tolist(), hi.tolist(), lo.tolist()):
        g, ex = divmod(k, 2200)
        ex -= 1100
        out[g] += ((h << 27) + l) << (ex + 1073)
    return out


class CalibrationHistogram:
    """Streaming reliability histogram: per equal-width confidence bin, the count, the sum of
    confidences and the sum of hits. Mergeable (``merge``) across workers.

    Bin ``b`` holds confidences in ``(edges[b], edges[b + 1]]`` (the first bin also holds 0), as
    ``sklearn.calibration.calibration_curve(strategy="uniform")`` bins them.
    """

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"bins must be a positive int, got {bins!r}")
        self.edges = np.linspace(0.0, 1.0, int(bins) + 1)
        self.count = np.zeros(int(bins), np.int64)
        self._conf_exact = [0] * int(bins)  # per bin: the exact sum, an int in units of 2**-_UNIT
        self.hit_sum = np.zeros(int(bins), np.float64)

    @property
    def conf_sum(self) -> np.ndarray:
        """(bins,) float64: the sum of the confidences in each bin, correctly rounded from the exact
        sum (so states merged in any order, or split in any way, give the same bits)."""
        return np.asarray([v / (1 << _UNIT) for v in self._conf_exact], np.float64)

    def __setstate__(self, state: dict) -> None:
        """Unpickled with arrays of its own (Ray hands NumPy arrays back read-only)."""
        self.__dict__.update(state)
        self.count = np.array(self.count, np.int64, copy=True)
        self.hit_sum = np.array(self.hit_sum, np.float64, copy=True)

    def update(self, confidence, hit) -> "CalibrationHistogram":
        """Adds ``(N,)`` confidences in [0, 1] and ``(N,)`` 0/1 outcomes."""
        c = np.asarray(confidence, np.float64).reshape(-1)
        h = np.asarray(hit, np.float64).reshape(-1)
        if c.shape != h.shape:
            raise ValueError(f"confidence and hit must have the same length, got {c.shape[0]} and {h.shape[0]}")
        if c.size and (not np.isfinite(c).all() or c.min() < 0 or c.max() > 1):
            raise ValueError("confidence must be finite and in [0, 1]")
        b = np.searchsorted(self.edges[1:-1], c, side="left")
        n = len(self.count)
        self.count += np.bincount(b, minlength=n)
        for k, v in enumerate(_exact_sums(c, b, n)):
            self._conf_exact[k] += v
        self.hit_sum += np.bincount(b, weights=h, minlength=n)  # 0/1 sums: exact in float64 below 2**53
        return self

    def merge(self, other: "CalibrationHistogram") -> "CalibrationHistogram":
        if not isinstance(other, CalibrationHistogram) or other.count.shape != self.count.shape:
            raise ValueError("can only merge a CalibrationHistogram with the same bins")
        self.count += other.count
        self._conf_exact = [a + b for a, b in zip(self._conf_exact, other._conf_exact)]
        self.hit_sum += other.hit_sum
        return self

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean confidence, accuracy, count)`` per bin (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.conf_sum / self.count, self.hit_sum / self.count, self.count.copy()

    def ece(self) -> float:
        """Expected calibration error: sum over bins of ``|accuracy - confidence| * n_b / N``."""
        n = self.count.sum()
        if n == 0:
            return float("nan")
        ok = self.count > 0
        return float(np.abs(self.hit_sum[ok] - self.conf_sum[ok]).sum() / n)

    def mce(self) -> float:
        """Maximum calibration error over non-empty bins."""
        ok = self.count > 0
        if not ok.any():
            return float("nan")
        return float(np.max(np.abs(self.hit_sum[ok] - self.conf_sum[ok]) / self.count[ok]))


# ============================================================================ the report object
@dataclass
class EvalReport:
    """What ``evaluate`` found. ``str(report)`` is the terminal summary, ``to_dict()`` the JSON
    (every number), ``write(out_dir)`` the files (report.json, the plots, report.html).

    Attributes:
        task: ``"classify"``.
        multi_label: a multi-label evaluation.
        model, data: what was evaluated (descriptions).
        metrics: headline numbers (``accuracy``, ``balanced_accuracy``, ``macro_f1``, ...).
        intervals: bootstrap 95% intervals of some headline numbers: name -> ``(low, high)``.
        per_class: one dict per class of the report (name, precision, recall, f1, support, ...).
        counts: images labelled (read from the dataset), evaluated, failed (unreadable, no
            prediction), and the problems by kind (dataset and run).
        problems: ``(kind, detail)`` for everything not evaluated (dataset and run problems).
        notes: remarks (what could not be computed and why).
        confusion: (R, R) int64 confusion matrix over ``confusion_names`` (single-label).
        seconds: timings (``evaluate``, and after ``write``: ``plots``, ``html``).
    """

    task: str
    multi_label: bool
    model: str
    data: str
    metrics: dict
    intervals: dict
    per_class: list[dict]
    counts: dict
    problems: list[tuple[str, str]]
    notes: list[str]
    settings: dict
    confusion: np.ndarray | None = None
    confusion_names: list[str] | None = None
    curves: dict = field(default_factory=dict, repr=False)
    calibration: CalibrationHistogram | None = field(default=None, repr=False)
    threshold_curve: dict | None = field(default=None, repr=False)
    gallery: list[dict] = field(default_factory=list, repr=False)
    seconds: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    coco: Any = field(default=None, repr=False)  # detection: the full COCOResult

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d = {
            "task": self.task, "multi_label": self.multi_label, "model": self.model, "data": self.data,
            "settings": self.settings, "counts": self.counts, "metrics": self.metrics,
            "intervals_95": {k: list(v) for k, v in self.intervals.items()},
            "per_class": self.per_class, "notes": self.notes,
            "problems": [{"kind": k, "detail": v} for k, v in self.problems],
            "seconds": self.seconds,
        }
        if self.confusion is not None:
            d["confusion_matrix"] = {"names": self.confusion_names, "rows_true_columns_predicted":
                                     self.confusion.tolist()}
        if self.calibration is not None:
            conf, acc, cnt = self.calibration.curve()
            d["calibration"] = {"edges": self.calibration.edges.tolist(), "count": cnt.tolist(),
                                "mean_confidence": _nan_list(conf), "accuracy": _nan_list(acc),
                                "ece": self.calibration.ece(), "mce": self.calibration.mce()}
        if self.threshold_curve is not None:
            t = self.threshold_curve
            d["thresholds"] = {k: t[k] for k in ("kind", "best_f1", "target_precision") if k in t}
        if self.gallery:
            d["worst_confusions" if self.task == "classify" else "drawn_images"] = [
                dict(g, examples=[{k: v for k, v in e.items() if k != "draw"} for e in g["examples"]])
                for g in self.gallery]
        d["files"] = self.files
        return _jsonable(d)

    # ------------------------------------------------------------------ terminal
    def __str__(self) -> str:
        m, ci = self.metrics, self.intervals
        c = self.counts

        def line(name: str, key: str) -> str | None:
            if key not in m or m[key] is None:
                return None
            v = m[key]
            s = f"  {name:<22} {v:.4f}" if isinstance(v, float) else f"  {name:<22} {v}"
            if key in ci:
                s += f"   95% CI [{ci[key][0]:.4f}, {ci[key][1]:.4f}]"
            return s

        head = (f"pyimgcls eval: {c['evaluated']} of {c['labelled']} labelled images evaluated, "
                f"{len(self.per_class)} classes" + (" (multi-label)" if self.multi_label else "")
                + (" (detection, COCO bbox)" if self.task == "detect" else ""))
        out = [head]
        if c.get("failed"):
            out.append(f"  {c['failed']} images could not be read (listed in the report)")
        if self.problems:
            kinds = ", ".join(f"{k}: {n}" for k, n in c.get("problems", {}).items())
            out.append(f"  dataset problems: {kinds}")
        if self.task == "detect":
            from ..metrics import STAT_NAMES

            rows = [(k, k) for k in STAT_NAMES]
            if "map" in ci:
                out.append(f"  mAP@[.5:.95] 95% CI [{ci['map'][0]:.4f}, {ci['map'][1]:.4f}]")
        elif self.multi_label:
            rows = [("subset accuracy", "subset_accuracy"), ("hamming loss", "hamming_loss"),
                    ("micro F1", "micro_f1"), ("macro F1", "macro_f1"), ("macro precision", "macro_precision"),
                    ("macro recall", "macro_recall"), ("mAP (macro)", "map"), ("ROC AUC (macro)", "roc_auc")]
        else:
            k = self.settings.get("top_k", 5)
            rows = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"),
                    ("macro precision", "macro_precision"), ("macro recall", "macro_recall"),
                    ("macro F1", "macro_f1"), ("weighted precision", "weighted_precision"),
                    ("weighted recall", "weighted_recall"), ("weighted F1", "weighted_f1"),
                    (f"top-{k} accuracy", "top_k_accuracy"), ("mAP (one-vs-rest)", "map"),
                    ("ECE", "ece")]
        out += [s for s in (line(a, b) for a, b in rows) if s]
        for n in self.notes:
            out.append(f"  note: {n}")
        if self.files:
            out.append(f"  -> {self.files.get('report.html') or next(iter(self.files.values()))}")
        return "\n".join(out)

    # ------------------------------------------------------------------ files
    def write(self, out_dir: str | os.PathLike, *, plots: bool = True, html: bool = True,
              thumbnails: bool = True) -> dict:
        """Writes ``report.json`` and, when asked, the plots (matplotlib) and ``report.html`` into
        ``out_dir`` (created). Returns ``{file name: path}``; timings go to ``seconds``."""
        from . import _plots

        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        files: dict[str, str] = {}
        pngs: dict[str, bytes] = {}
        t0 = time.perf_counter()
        if plots:
            if _plots.have_matplotlib():
                pngs = _make_plots(self, out_dir)
                files.update({k: os.path.join(out_dir, k) for k in pngs})
            elif _plots.MISSING_MESSAGE not in self.notes:
                self.notes.append(_plots.MISSING_MESSAGE)
        self.seconds["plots"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if html:
            from ._eval_html import build_page

            files["report.html"] = os.path.join(out_dir, "report.html")
            self.files = dict(files, **{"report.json": os.path.join(out_dir, "report.json")})
            page = build_page(self, pngs, thumbnails=thumbnails)
            page.write(files["report.html"])
        self.seconds["html"] = time.perf_counter() - t0
        files["report.json"] = os.path.join(out_dir, "report.json")
        self.files = files
        tmp = files["report.json"] + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        os.replace(tmp, files["report.json"])
        return files


def _nan_list(a) -> list:
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, np.float64)]


def _jsonable(x):
    """Plain JSON values: NaN and inf become None, NumPy scalars and arrays become Python ones."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _make_plots(rep: EvalReport, out_dir: str) -> dict[str, bytes]:
    from . import _plots

    pngs: dict[str, bytes] = {}
    if rep.confusion is not None:
        pngs["confusion_matrix.png"] = _plots.confusion_matrix_plot(
            rep.confusion, rep.confusion_names, path=os.path.join(out_dir, "confusion_matrix.png"))
    if rep.curves:
        curves = [(name, c["precision"], c["recall"], c["ap"]) for name, c in rep.curves.items()]
        title = ("Precision-recall per class at IoU 0.5 (COCO's 101 recall points)" if rep.task == "detect"
                 else "Precision-recall per class")
        pngs["pr_curves.png"] = _plots.pr_curves_plot(curves, path=os.path.join(out_dir, "pr_curves.png"),
                                                      title=title)
    t = rep.threshold_curve
    if t is not None and len(t["thresholds"]):
        bf = t["best_f1"]
        tp = t["target_precision"]
        title = ("Auto-labelling: accept the top-1 class when its score >= threshold" if t["kind"] == "top1"
                 else "Micro-averaged over (image, label) pairs")
        pngs["f1_threshold.png"] = _plots.threshold_plot(
            t["thresholds"], t["precision"], t["recall"], t["f1"], best_f1=(bf["threshold"], bf["f1"]),
            target=(tp["threshold"] if tp["threshold"] is not None else float("inf"), tp["target"], tp["recall"]),
            title=title, path=os.path.join(out_dir, "f1_threshold.png"))
    if rep.calibration is not None and rep.calibration.count.sum():
        conf, acc, cnt = rep.calibration.curve()
        pngs["calibration.png"] = _plots.calibration_plot(
            conf, acc, cnt, rep.calibration.edges, rep.calibration.ece(),
            path=os.path.join(out_dir, "calibration.png"),
            title="Reliability of the top-1 confidence" if not rep.multi_label else "Reliability of label scores")
    return pngs


# ============================================================================ predictions from a score file
def _read_predictions(path: str) -> tuple[dict[str, dict], bool]:
    """Rows of a ``score`` output keyed by path, and whether it holds probabilities."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"predictions file not found: {path}")
    if ext == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        cols = set(t.column_names)
        rows = t.to_pylist()
    elif ext == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}: line {n} is not JSON ({e})") from None
        cols = set(rows[0]) if rows else set()
    elif ext == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        cols = set(rows[0]) if rows else set()
        for r in rows:
            for k in ("top_k_ids", "top_k_names", "top_k_scores", "probabilities"):
                if r.get(k):
                    r[k] = json.loads(r[k])
            r["label"] = int(r["label"]) if r.get("label") not in (None, "") else None
            r["score"] = float(r["score"]) if r.get("score") not in (None, "") else None
            r["error"] = r.get("error") or None
    else:
        raise ValueError(f"predictions must be a .parquet, .jsonl or .csv file written by pyimgcls score, got {path}")
    need = {"path", "label", "top_k_ids", "top_k_scores", "error"}
    if rows and not need <= cols:
        raise ValueError(f"{path}: not a pyimgcls score output: columns {sorted(need - cols)} are missing")
    has_probs = "probabilities" in cols
    return {str(r["path"]): r for r in rows}, has_probs


def _labels_from_predictions(rows: dict[str, dict], path: str) -> tuple[list[str], list[str] | None]:
    """The model's class names from the score file's manifest model, else from the top-k names."""
    manifest = path + ".pyimgcls.json"
    if os.path.isfile(manifest):
        try:
            with open(manifest, encoding="utf-8") as f:
                info = json.load(f).get("info", {})
            mp = info.get("model_path")
            if mp and os.path.isfile(mp):
                from ..tasks.classifier import Classifier

                clf = Classifier(mp, device="cpu", threads=1)
                return clf.labels, clf.class_ids
        except (OSError, ValueError, RuntimeError):
            pass
    names: dict[int, str] = {}
    n = 0
    for r in rows.values():
        for i, nm in zip(r.get("top_k_ids") or [], r.get("top_k_names") or []):
            names[int(i)] = str(nm)
        if r.get("probabilities"):
            n = max(n, len(r["probabilities"]))
    n = max(n, max(names) + 1 if names else 0)
    return [names.get(i, f"class {i}") for i in range(n)], None


# ============================================================================ the job
def evaluate(data: Any, *, model=None, classifier=None, predictions: str | os.PathLike | None = None,
             task: str = "classify", out: str | os.PathLike | None = None, top_k: int = 5,
             threshold: float | Sequence[float] = 0.5, class_map: str | os.PathLike | dict | None = None,
             batch_size: int = 32, threads: int = 0, device: str | None = None, fast_decode: bool = False,
             bootstrap: int = 1000, seed: int = 0, target_precision: float = 0.9, bins: int = DEFAULT_BINS,
             curves: bool = True, plots: bool = True, html: bool = True, gallery: int = 6,
             progress: bool = False, engine: str = "local", address: str | None = None,
             ray_options: dict | None = None) -> EvalReport:
    """Evaluates a classifier on a labelled dataset.

    Args:
        data: an ImageFolder folder, a label table (.csv / .tsv / .parquet: ``path,label``, several
            label columns or ``;``-separated labels for multi-label) or a ``ClassificationDataset``.
        model: ONNX classifier path (default: the embedded EfficientNet-Lite0); with
            ``predictions`` it only names the classes (the model is not run).
        classifier: an existing ``Classifier`` instead of ``model``.
        predictions: a ``pyimgcls score`` output (.parquet / .jsonl / .csv) to evaluate instead of
            running the model. Curves, AP and the threshold plot need its ``probabilities``.
        task: ``"classify"``, or ``"detect"``: ``eval_detect.evaluate_detection`` on a COCO JSON file or a
            YOLO folder (``model``: ``"faces"`` (default) or a YOLO ONNX file; ``classifier``: a detector;
            the bootstrap at most 200 resamples).
        out: a folder for report.json, the plots and report.html (``None``: nothing written).
        top_k: k of the top-k accuracy.
        threshold: multi-label: the score threshold, one value or one per dataset label.
        class_map: dataset class -> model class: a dict or a file (see ``read_class_map``).
        batch_size, threads, device, fast_decode: as for ``Classifier.predict``.
        bootstrap: resamples for the 95% intervals (0: none); ``seed`` makes them reproducible.
        target_precision: the precision whose lowest threshold the threshold plot marks.
        bins: calibration bins.
        curves: keep the K dataset-class scores per image for PR curves and AP (4 N K bytes).
        plots, html: with ``out``, draw the plots (matplotlib) and write report.html.
        gallery: worst confusion pairs shown with thumbnails in the HTML report.
        progress: a progress bar / log lines while the model runs.
        engine: ``"local"`` (this process) or ``"ray"``: the model runs on Ray actors
            (``pyimgcls.integrations.ray``, the actors of ``score_dataset``) and the metric states
            (confusion matrix, calibration histogram, ranking state of the scores; COCO per-image
            inputs for detection) are computed per block on the workers and merged here: the same
            numbers as ``"local"``, bit for bit. Needs ``model`` as a path readable on every node
            (not ``classifier``), single-label data, no ``predictions``; ``threads`` does not apply
            (each actor's thread budget is its ``num_cpus``).
        address: with ``engine="ray"``, the cluster to join (``"auto"``, ``"ray://head:10001"``);
            ``None``: the one ``ray.init`` connected to, else ``RAY_ADDRESS``, else a local one.
        ray_options: with ``engine="ray"``: ``concurrency``, ``num_cpus``, ``num_gpus``,
            ``read_num_cpus``, ``item_timeout`` (as ``integrations.ray.score_dataset``).

    Returns:
        ``EvalReport``.

    Raises:
        ValueError: dataset classes that match no model class (listed), an empty dataset, bad options.

    Thread safety: calls are independent (each owns its states and report) and may run in several
    threads at once, sharing one ``classifier`` if given (its batch path is thread-safe); an
    ``EvalReport`` is a plain object, to be written by one thread at a time.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if engine == "ray":
        if classifier is not None:
            raise ValueError("engine='ray' builds the model in each Ray actor: give model (a path readable on every "
                             "node), not classifier")
        if predictions is not None:
            raise ValueError("engine='ray' runs the model; predictions from a file are evaluated with engine='local'")
        if threads:
            raise ValueError("threads does not apply with engine='ray' (each actor's thread budget is its num_cpus: "
                             "ray_options={'num_cpus': ...})")
    elif address is not None or ray_options:
        raise ValueError("address and ray_options apply to engine='ray'")
    if task == "detect":
        from .eval_detect import evaluate_detection

        kw = {"model": "faces" if model is None else model, "class_map": class_map, "batch_size": batch_size,
              "threads": threads, "device": device, "bootstrap": min(bootstrap, 200), "seed": seed, "out": out,
              "plots": plots, "html": html, "progress": progress, "engine": engine, "address": address,
              "ray_options": ray_options}
        if classifier is not None:
            kw["detector"] = classifier
        return evaluate_detection(data, **kw)
    if task != "classify":
        raise ValueError(f"task must be 'classify' or 'detect', got {task!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(f"bootstrap must be an int >= 0, got {bootstrap!r}")
    if not 0.0 < float(target_precision) <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision!r}")
    t_start = time.perf_counter()
    ds = load_classification_dataset(data)
    data_desc = os.fspath(data) if isinstance(data, (str, os.PathLike)) else f"<dataset of {len(ds)} images>"
    if len(ds) == 0:
        raise ValueError(f"{data_desc}: no labelled images to evaluate"
                         + (f" (problems: {_problem_counts(ds.problems)})" if ds.problems else ""))
    cmap = read_class_map(class_map) if isinstance(class_map, (str, os.PathLike)) else class_map
    if cmap is not None and not isinstance(cmap, dict):
        raise TypeError(f"class_map must be a dict or a file path, got {type(class_map).__name__}")
    notes: list[str] = []
    if cmap:
        extra = sorted(set(cmap) - set(ds.classes))
        if extra:
            notes.append(f"class map entries not in the dataset: {', '.join(extra[:10])}"
                         + (" ..." if len(extra) > 10 else ""))

    pred_rows, has_probs = None, True
    clf = classifier
    if predictions is not None:
        predictions = os.fspath(predictions)
        pred_rows, has_probs = _read_predictions(predictions)
        if clf is None and model is not None:  # loaded for its class names only: never run
            from ..tasks.classifier import Classifier

            clf = Classifier(model, device="cpu", threads=1)
            labels, class_ids = clf.labels, clf.class_ids
        elif clf is not None:
            labels, class_ids = clf.labels, clf.class_ids
        else:
            labels, class_ids = _labels_from_predictions(pred_rows, predictions)
        model_desc = f"predictions {predictions}"
        if ds.multi_label:
            raise ValueError("multi-label evaluation from a score file is not possible: score writes softmax "
                             "(single-label) probabilities; evaluate with the model instead")
    else:
        if clf is None:
            from ..tasks.classifier import Classifier

            kw: dict[str, Any] = {"threads": threads}
            if device is not None:
                kw["device"] = device
            if engine == "ray":  # on the driver for the class names (and to check the model) only
                kw = {"threads": 1, "device": "cpu"}
            clf = Classifier(model, **kw)
        labels, class_ids = clf.labels, clf.class_ids
        model_desc = str(clf.model_path) if model is not None or classifier is not None else "embedded EfficientNet-Lite0"
    mapping = match_classes(ds.classes, labels, class_ids=class_ids, class_map=cmap)
    num_classes = len(labels)
    settings = {"top_k": top_k, "bootstrap": bootstrap, "seed": seed, "target_precision": float(target_precision),
                "calibration_bins": bins, "batch_size": batch_size, "fast_decode": bool(fast_decode),
                "class_mapping": {d: labels[m] for d, m in zip(ds.classes, mapping)}}

    settings["engine"] = engine
    engine_pass = None
    if engine == "ray":
        if ds.multi_label:
            raise ValueError("engine='ray' evaluates single-label datasets; evaluate this multi-label one with "
                             "engine='local'")

        def engine_pass(truth_model, cols, k_eff, keep_scores, bins_):
            from ..integrations.ray import eval_classify_pass

            return eval_classify_pass(list(ds.paths), truth_model, num_classes=num_classes, cols=cols, k_eff=k_eff,
                                      keep_scores=keep_scores, bins=bins_, model=model, batch_size=batch_size,
                                      fast_decode=fast_decode, address=address, ray_options=ray_options,
                                      **({} if device is None else {"device": device}))
    if ds.multi_label:
        rep = _evaluate_multilabel(ds, clf, labels, mapping, threshold, batch_size, fast_decode, bootstrap, seed,
                                   float(target_precision), bins, progress, notes, settings)
    else:
        rep = _evaluate_single(ds, clf, pred_rows, has_probs, labels, num_classes, mapping, top_k, batch_size,
                               fast_decode, bootstrap, seed, float(target_precision), bins, curves, gallery, progress,
                               notes, settings, predictions_path=predictions, engine_pass=engine_pass)
    rep.model, rep.data = model_desc, data_desc
    rep.seconds["evaluate"] = time.perf_counter() - t_start
    if out is not None:
        rep.write(out, plots=plots, html=html)
    return rep


def _problem_counts(problems) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, _ in problems:
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def _progress_bar(enabled: bool, total: int):
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", dynamic_ncols=True, desc="pyimgcls eval")


def _abs_key(p: str) -> str:
    from ._writers import path_text

    return path_text(os.path.abspath(p))


# ---------------------------------------------------------------------------- single-label
class _Worst:
    """The most confident mistakes per (true, predicted) pair, a bounded heap each."""

    def __init__(self, per_pair: int = 6) -> None:
        self.per_pair = per_pair
        self.heaps: dict[tuple[int, int], list] = {}
        self.counter = 0

    def add(self, t: int, p: int, conf: float, path: str, top: list) -> None:
        h = self.heaps.setdefault((t, p), [])
        self.counter += 1
        item = (conf, -self.counter, path, top)
        if len(h) < self.per_pair:
            heapq.heappush(h, item)
        elif conf > h[0][0]:
            heapq.heapreplace(h, item)


class SingleLabelStates:
    """What the model pass of a single-label evaluation leaves, for one block of images or many:
    the mergeable states (confusion matrix, calibration histogram, ranking state of the dataset
    classes' scores) and the few numbers per image the report needs (prediction, top-1 confidence,
    top-k hit; the dataset classes' scores are the ranking state's rows), plus the unreadable
    images and the most confident mistakes of each (true, predicted) pair. Picklable; ``merge``
    adds another block's (a Ray worker's). Not thread-safe."""

    def __init__(self, num_classes: int, num_cols: int, bins: int, keep_scores: bool, per_pair: int = 6) -> None:
        self.cm = ConfusionMatrix(num_classes)
        self.cal = CalibrationHistogram(bins)
        self.ranking = RankingState(num_cols) if keep_scores else None
        self.per_pair = per_pair
        self.idx: list[np.ndarray] = []      # dataset indices of the evaluated images, block by block
        self.pred: list[np.ndarray] = []
        self.conf: list[np.ndarray] = []
        self.hit: list[np.ndarray] = []
        self.errors: list[tuple[int, str]] = []
        self.mistakes: list[tuple] = []      # (index, true, predicted, confidence, [(class, score)] * 3)

    def add_block(self, gi: np.ndarray, ok: np.ndarray, probabilities: np.ndarray, errors, truth: np.ndarray,
                  cols: np.ndarray, k_eff: int) -> None:
        """One block: ``gi`` (n,) dataset indices, ``ok`` (n,) bool, ``probabilities`` (n, C)
        float32 (rows of failed images ignored), ``errors`` (n,) messages, ``truth`` (n,) model
        class of each image, ``cols`` the dataset's model classes."""
        for j in np.flatnonzero(~np.asarray(ok, bool)):
            self.errors.append((int(gi[j]), errors[j]))
        rows = np.flatnonzero(ok)
        if not rows.size:
            return
        P = probabilities[rows]
        C = P.shape[1]
        kk = min(max(k_eff, 3), C)
        order = np.argsort(-P, axis=1, kind="stable")[:, :kk]  # ties: the lower class id first
        g, t = np.asarray(gi)[rows], np.asarray(truth)[rows]
        pred = order[:, 0]
        conf = P[np.arange(len(rows)), pred].astype(np.float64)
        hit = (order[:, :k_eff] == t[:, None]).any(axis=1)
        self.idx.append(g.astype(np.int64))
        self.pred.append(pred.astype(np.int64))
        self.conf.append(conf)
        self.hit.append(hit)
        self.cm.update(t, pred)
        self.cal.update(np.clip(conf, 0.0, 1.0), t == pred)
        if self.ranking is not None:
            self.ranking.update((t[:, None] == cols[None, :]).astype(np.uint8), P[:, cols])
        wrong = np.flatnonzero(pred != t)
        if wrong.size:
            self.mistakes += [(int(g[r]), int(t[r]), int(pred[r]), float(conf[r]),
                               [(int(j), float(P[r, j])) for j in order[r, :3]]) for r in wrong]
            self._prune()

    def _prune(self) -> None:
        """Keeps the ``per_pair`` most confident mistakes of each pair (ties: the lower index), which
        hold the top ``per_pair`` of any union of blocks, as ``_Worst`` ranks them."""
        by_pair: dict = {}
        for m in self.mistakes:
            by_pair.setdefault((m[1], m[2]), []).append(m)
        self.mistakes = sorted((m for v in by_pair.values() for m in sorted(v, key=lambda m: (-m[3], m[0]))
                                [:self.per_pair]), key=lambda m: m[0])

    def indices(self) -> np.ndarray:
        """(n,) int64: the dataset indices this state answers for (evaluated or unreadable)."""
        return np.concatenate(self.idx + [np.asarray([i for i, _ in self.errors], np.int64)])

    def merge(self, other: "SingleLabelStates") -> "SingleLabelStates":
        self.cm.merge(other.cm)
        self.cal.merge(other.cal)
        if self.ranking is not None:
            self.ranking.merge(other.ranking)
        self.idx += other.idx
        self.pred += other.pred
        self.conf += other.conf
        self.hit += other.hit
        self.errors = sorted(self.errors + other.errors)
        self.mistakes += other.mistakes
        self._prune()
        return self

    def fill(self, y_pred, conf, hit_k, scores, ok) -> None:
        """Writes the per-image numbers into the dataset-ordered arrays."""
        if not self.idx:
            return
        g = np.concatenate(self.idx)
        if len(np.unique(g)) != len(g):
            raise RuntimeError("an image was answered twice")  # pragma: no cover - the engines dedupe
        y_pred[g] = np.concatenate(self.pred)
        conf[g] = np.concatenate(self.conf)
        hit_k[g] = np.concatenate(self.hit)
        ok[g] = True
        if scores is not None:
            scores[g] = self.ranking.arrays()[1]  # the ranking state's rows, in the same block order


def _evaluate_single(ds, clf, pred_rows, has_probs, labels, C, mapping, top_k, batch_size, fast_decode, bootstrap,
                     seed, target_precision, bins, keep_curves, gallery, progress, notes, settings,
                     predictions_path=None, engine_pass=None) -> EvalReport:
    n = len(ds)
    truth_model = np.asarray(mapping, np.int64)[ds.labels]       # (N,) model class of each image
    cols = np.asarray(sorted(set(mapping)), np.int64)              # the dataset's K model classes
    col_of = {int(c): k for k, c in enumerate(cols)}
    keep_scores = keep_curves and has_probs
    y_true = np.empty(n, np.int64)
    y_pred = np.empty(n, np.int64)
    conf = np.empty(n, np.float64)
    hit_k = np.zeros(n, bool)
    scores = np.empty((n, len(cols)), np.float32) if keep_scores else None
    ok = np.zeros(n, bool)
    cm = ConfusionMatrix(C, labels=labels)
    cal = CalibrationHistogram(bins)
    worst = _Worst()
    problems = list(ds.problems)
    k_eff = min(top_k, C)
    stored_k = None

    def record(i: int, pred: int, score: float, top_ids, top_scores, probs) -> None:
        y_pred[i] = pred
        conf[i] = score
        hit_k[i] = truth_model[i] in top_ids[:k_eff]
        ok[i] = True
        if keep_scores:
            scores[i] = probs[cols]
        if pred != truth_model[i]:
            worst.add(int(truth_model[i]), pred, score, ds.paths[i],
                      [(labels[j] if 0 <= j < len(labels) else str(j), float(s)) for j, s in
                       zip(list(top_ids)[:3], list(top_scores)[:3])])

    bar = _progress_bar(progress, n)
    states = None
    if pred_rows is None and engine_pass is not None:
        # another engine (Ray) ran the model and built the states; merged here, in dataset order
        states = engine_pass(truth_model, cols, k_eff, keep_scores, bins)
    elif pred_rows is None:
        # one ClassificationBatch of arrays per model call: the per-image work is NumPy on the batch,
        # the same block code the Ray workers run (SingleLabelStates.add_block)
        states = SingleLabelStates(C, len(cols), bins, keep_scores)
        i0 = 0
        for b in clf.predict_batches(_items(ds.paths), batch_size=batch_size, fast_decode=fast_decode):
            nb = len(b.sources)
            states.add_block(np.arange(i0, i0 + nb), b.ok, b.probabilities, b.errors, truth_model[i0:i0 + nb],
                             cols, k_eff)
            i0 += nb
            if bar is not None:
                bar.update(nb)
        if i0 != n:  # pragma: no cover - the pipeline gives one answer per input
            raise RuntimeError(f"the classifier answered {i0} of {n} inputs")
    if states is not None:
        cm, cal, ranking = states.cm, states.cal, states.ranking
        states.fill(y_pred, conf, hit_k, scores, ok)
        for i, err in states.errors:
            problems.append(("unreadable_image", f"{ds.paths[i]}: {err}"))
        for i, t_, p_, c_, top in states.mistakes:
            worst.add(t_, p_, c_, ds.paths[i], [(labels[j], s_) for j, s_ in top])
    else:
        ranking = None
        used = set()
        for i, p in enumerate(ds.paths):
            key = _abs_key(p)
            r = pred_rows.get(key)
            if r is None:
                problems.append(("no_prediction", p))
                continue
            used.add(key)
            if r.get("error"):
                problems.append(("prediction_error", f"{p}: {r['error']}"))
                continue
            ids = [int(x) for x in (r.get("top_k_ids") or [])]
            stored_k = len(ids) if stored_k is None else min(stored_k, len(ids))
            probs = np.asarray(r["probabilities"], np.float64) if keep_scores and r.get("probabilities") else None
            if keep_scores and probs is None:
                problems.append(("prediction_error", f"{p}: no probabilities in the row"))
                continue
            if probs is not None and probs.shape != (C,):
                raise ValueError(f"{predictions_path}: the row of {p} has {probs.shape[0]} probabilities, the model "
                                 f"has {C} classes (predictions written with another model?)")
            if r.get("label") is not None and not 0 <= int(r["label"]) < C:
                raise ValueError(f"{predictions_path}: the row of {p} has label {r['label']}, the model has {C} "
                                 "classes (predictions written with another model?)")
            if r.get("label") is None:
                problems.append(("prediction_error", f"{p}: no label in the row"))
                continue
            record(i, int(r["label"]), float(r["score"]), ids, [float(s) for s in (r.get("top_k_scores") or [])],
                   probs)
        extra = [k for k in pred_rows if k not in used]
        for k in extra:
            problems.append(("prediction_without_label", k))
        if not has_probs:
            notes.append("the predictions have no probabilities (pyimgcls score --probabilities): PR curves, AP and "
                         "ROC AUC are not computed; accuracy, per-class P/R/F1, the confusion matrix, top-k accuracy "
                         "(k up to the stored top-k) and the calibration of the top-1 score are")
        if stored_k is not None and stored_k < top_k:
            notes.append(f"the predictions hold the top-{stored_k} classes: top-{top_k} accuracy is not computed")
    if bar is not None:
        bar.close()

    y_true[:] = truth_model
    idx = np.flatnonzero(ok)
    t, p, c, hk = y_true[idx], y_pred[idx], conf[idx], hit_k[idx]
    if scores is not None:
        scores = scores[idx]
    if len(idx) == 0:
        raise ValueError(f"none of the {n} images could be evaluated (problems: {_problem_counts(problems)})")
    correct = t == p
    if states is None:  # predictions from a file: the states from the arrays
        cm.update(t, p)
        cal.update(np.clip(c, 0.0, 1.0), correct)
        if scores is not None:
            ranking = RankingState(len(cols)).update((t[:, None] == cols[None, :]).astype(np.uint8), scores)

    present = np.flatnonzero(cm.matrix.sum(axis=0) + cm.matrix.sum(axis=1))
    sub = ConfusionMatrix(len(present), labels=[labels[i] for i in present])
    sub.matrix[:] = cm.matrix[np.ix_(present, present)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        cr = sub.report(zero_division=0)
    topk_ok = stored_k is None or stored_k >= top_k
    metrics = {
        "accuracy": cr.accuracy, "balanced_accuracy": cr.balanced_accuracy,
        "macro_precision": cr.macro["precision"], "macro_recall": cr.macro["recall"], "macro_f1": cr.macro["f1-score"],
        "weighted_precision": cr.weighted["precision"], "weighted_recall": cr.weighted["recall"],
        "weighted_f1": cr.weighted["f1-score"],
        "top_k_accuracy": float(hk.mean()) if topk_ok else None, "top_k": top_k,
        "ece": cal.ece(), "mce": cal.mce(), "mean_confidence": float(c.mean()),
    }
    dataset_names = {}
    for d, m in zip(ds.classes, mapping):
        dataset_names.setdefault(m, []).append(d)
    per_class = []
    predicted = sub.matrix.sum(axis=0)
    for j, mi in enumerate(present):
        per_class.append({"name": labels[mi], "model_index": int(mi),
                          "dataset_names": dataset_names.get(int(mi), []),
                          "precision": float(cr.precision[j]), "recall": float(cr.recall[j]),
                          "f1": float(cr.f1[j]), "support": int(cr.support[j]), "predicted": int(predicted[j])})
    extra_pred = [labels[i] for i in present if int(i) not in col_of]
    if extra_pred:
        notes.append(f"{len(extra_pred)} predicted classes are not in the dataset ({', '.join(extra_pred[:8])}"
                     f"{' ...' if len(extra_pred) > 8 else ''}): they count as errors")

    curves: dict = {}
    if scores is not None:
        onehot = (t[:, None] == cols[None, :]).astype(np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            # from the merged ranking state: AP depends only on the (truth, score) pairs, not their order
            ap = np.asarray(ranking.average_precision(average=None), np.float64)
        has_pos = onehot.any(axis=0)
        has_neg = (~onehot.astype(bool)).any(axis=0)
        ap[~has_pos] = np.nan
        for k, mi in enumerate(cols):
            auc = float(roc_auc(onehot[:, k], scores[:, k])) if has_pos[k] and has_neg[k] else float("nan")
            row = next((r for r in per_class if r["model_index"] == mi), None)
            if row is not None:
                row["ap"] = float(ap[k])
                row["roc_auc"] = auc
            if has_pos[k]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UndefinedMetricWarning)
                    pr, rc, _ = precision_recall_curve(onehot[:, k], scores[:, k])
                curves[labels[mi]] = {"precision": pr, "recall": rc, "ap": float(ap[k])}
        metrics["map"] = float(np.nanmean(ap)) if has_pos.any() else None
    thr_curve = _top1_threshold_curve(c, correct, n_total=len(idx), target=target_precision)
    intervals = _bootstrap_single(t, p, hk if topk_ok else None, scores, cols, bootstrap, seed)
    confusion_names = [labels[i] for i in present]
    gal = _gallery_single(worst, gallery, labels, cm.matrix)
    counts = {"labelled": n, "evaluated": int(len(idx)), "failed": int(n - len(idx)),
              "problems": _problem_counts(problems)}
    return EvalReport(task="classify", multi_label=False, model="", data="", metrics=metrics, intervals=intervals,
                      per_class=per_class, counts=counts, problems=problems, notes=notes, settings=settings,
                      confusion=sub.matrix.copy(), confusion_names=confusion_names, curves=curves, calibration=cal,
                      threshold_curve=thr_curve, gallery=gal)


def _top1_threshold_curve(conf: np.ndarray, correct: np.ndarray, *, n_total: int, target: float) -> dict:
    """Accept the top-1 class when its score >= threshold: precision (accuracy of the accepted),
    recall (correct accepted / all images) and F1, at every distinct score."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        pr, rc, thr = precision_recall_curve(correct.astype(np.uint8), conf)
    scale = correct.sum() / n_total if n_total else 0.0
    pr, rc = pr[:-1], rc[:-1] * scale
    return _threshold_summary("top1", thr, pr, rc, target)


def _threshold_summary(kind: str, thr, pr, rc, target: float) -> dict:
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(pr + rc > 0, 2 * pr * rc / (pr + rc), 0.0)
    out = {"kind": kind, "thresholds": thr, "precision": pr, "recall": rc, "f1": f1}
    if len(thr):
        b = int(np.argmax(f1))
        out["best_f1"] = {"threshold": float(thr[b]), "f1": float(f1[b]), "precision": float(pr[b]),
                          "recall": float(rc[b])}
        okp = np.flatnonzero(pr >= target)
        if okp.size:
            i = int(okp[0])
            out["target_precision"] = {"target": target, "threshold": float(thr[i]), "precision": float(pr[i]),
                                       "recall": float(rc[i])}
        else:
            out["target_precision"] = {"target": target, "threshold": None, "precision": None, "recall": 0.0}
    else:
        out["best_f1"] = {"threshold": None, "f1": None}
        out["target_precision"] = {"target": target, "threshold": None, "recall": 0.0}
    return out


def _macro_f1_from(t: np.ndarray, p: np.ndarray, R: int) -> float:
    support = np.bincount(t, minlength=R).astype(np.float64)
    pred = np.bincount(p, minlength=R).astype(np.float64)
    tp = np.bincount(t[t == p], minlength=R).astype(np.float64)
    den = support + pred
    f1 = np.divide(2 * tp, den, out=np.zeros(R), where=den > 0)
    return float(f1.mean())


def _interval(vals) -> tuple[float, float]:
    v = np.asarray(vals, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return (float("nan"), float("nan"))
    return (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))


def _bootstrap_single(t, p, hit_k, scores, cols, B: int, seed: int) -> dict:
    """Percentile bootstrap 95% intervals of accuracy, macro F1 (over the classes of the full
    report), top-k accuracy and mAP, from ``B`` resamples of the images (``numpy`` ``default_rng(seed)``)."""
    if B == 0 or len(t) == 0:
        return {}
    present, tt = np.unique(np.concatenate([t, p]), return_inverse=True)
    tc, pc = tt[:len(t)], tt[len(t):]
    R = len(present)
    rng = np.random.default_rng(seed)
    n = len(t)
    acc, f1, topk, maps = [], [], [], []
    onehot = (t[:, None] == cols[None, :]).astype(np.uint8) if scores is not None else None
    for _ in range(B):
        i = rng.integers(0, n, n)
        a, b = tc[i], pc[i]
        acc.append(float(np.mean(a == b)))
        f1.append(_macro_f1_from(a, b, R))
        if hit_k is not None:
            topk.append(float(hit_k[i].mean()))
        if scores is not None and len(maps) < min(B, 200):  # AP resamples are costlier: 200 are enough
            oh = onehot[i]
            pos = oh.any(axis=0)
            if pos.any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UndefinedMetricWarning)
                    ap = np.asarray(average_precision(oh[:, pos], scores[i][:, pos], average=None, threads=1))
                maps.append(float(ap.mean()))
    out = {"accuracy": _interval(acc), "macro_f1": _interval(f1)}
    if topk:
        out["top_k_accuracy"] = _interval(topk)
    if maps:
        out["map"] = _interval(maps)
    return out


def _gallery_single(worst: _Worst, pairs: int, labels, matrix: np.ndarray) -> list[dict]:
    """The ``pairs`` most frequent (true, predicted) confusions, each with its most confident mistakes."""
    ranked = sorted(worst.heaps, key=lambda tp: (-int(matrix[tp]), tp))
    out = []
    for t, p in ranked[:pairs]:
        examples = sorted(worst.heaps[(t, p)], key=lambda e: (-e[0], -e[1]))
        out.append({"true": labels[t], "predicted": labels[p] if 0 <= p < len(labels) else str(p),
                    "count": int(matrix[t, p]),
                    "examples": [{"path": e[2], "confidence": e[0], "top": e[3]} for e in examples]})
    return out


# ---------------------------------------------------------------------------- multi-label
def _evaluate_multilabel(ds, clf, labels, mapping, threshold, batch_size, fast_decode, bootstrap, seed,
                         target_precision, bins, progress, notes, settings) -> EvalReport:
    n, L = ds.labels.shape
    cols = np.asarray(mapping, np.int64)
    if len(set(mapping)) != len(mapping):
        raise ValueError("multi-label evaluation needs one model class per dataset label; the class map sends "
                         "several labels to one class")
    thr = np.asarray(threshold, np.float64)
    if thr.ndim == 0:
        thr = np.full(L, float(thr))
    if thr.shape != (L,):
        raise ValueError(f"threshold must be one value or one per dataset label ({L}), got shape {thr.shape}")
    scores = np.empty((n, L), np.float32)
    ok = np.zeros(n, bool)
    problems = list(ds.problems)
    bar = _progress_bar(progress, n)
    i0 = 0
    for b in clf.predict_batches(_items(ds.paths), batch_size=batch_size, multi_label=True, fast_decode=fast_decode):
        nb = len(b.sources)
        for j in np.flatnonzero(~b.ok):
            problems.append(("unreadable_image", f"{ds.paths[i0 + j]}: {b.errors[j]}"))
        scores[i0:i0 + nb] = b.probabilities[:, cols]
        ok[i0:i0 + nb] = b.ok
        i0 += nb
        if bar is not None:
            bar.update(nb)
    if bar is not None:
        bar.close()
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        raise ValueError(f"none of the {n} images could be evaluated (problems: {_problem_counts(problems)})")
    T = ds.labels[idx].astype(bool)
    S = scores[idx]
    P = S >= thr[None, :]
    names = [labels[m] for m in cols]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        mr = MultilabelReport.from_predictions(T, P, labels=names, zero_division=0)
        ap = np.asarray(average_precision(T, S, average=None), np.float64)
    has_pos, has_neg = T.any(axis=0), (~T).any(axis=0)
    ap[~has_pos] = np.nan
    aucs = np.full(L, np.nan)
    curves = {}
    per_class = []
    for k in range(L):
        if has_pos[k] and has_neg[k]:
            aucs[k] = roc_auc(T[:, k], S[:, k])
        if has_pos[k]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                pr, rc, _ = precision_recall_curve(T[:, k], S[:, k])
            curves[names[k]] = {"precision": pr, "recall": rc, "ap": float(ap[k])}
        per_class.append({"name": names[k], "model_index": int(cols[k]), "dataset_names": [ds.classes[k]],
                          "threshold": float(thr[k]), "precision": float(mr.precision[k]),
                          "recall": float(mr.recall[k]), "f1": float(mr.f1[k]), "support": int(mr.support[k]),
                          "predicted": int(P[:, k].sum()), "ap": float(ap[k]), "roc_auc": float(aucs[k])})
    cal = CalibrationHistogram(bins).update(np.clip(S.reshape(-1), 0, 1), T.reshape(-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        pr, rc, th = precision_recall_curve(T.reshape(-1), S.reshape(-1))
    thr_curve = _threshold_summary("micro", th, pr[:-1], rc[:-1], target_precision)
    metrics = {"subset_accuracy": mr.subset_accuracy, "hamming_loss": mr.hamming_loss,
               "micro_precision": mr.micro["precision"], "micro_recall": mr.micro["recall"],
               "micro_f1": mr.micro["f1-score"], "macro_precision": mr.macro["precision"],
               "macro_recall": mr.macro["recall"], "macro_f1": mr.macro["f1-score"],
               "samples_f1": mr.samples["f1-score"] if mr.samples else None,
               "map": float(np.nanmean(ap)) if has_pos.any() else None,
               "roc_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else None,
               "ece": cal.ece(), "mce": cal.mce()}
    if (~has_pos).any():
        notes.append(f"labels without positives (no AP): {', '.join(n for n, h in zip(names, has_pos) if not h)}")
    intervals = {}
    if bootstrap:
        rng = np.random.default_rng(seed)
        sa, mf, mp = [], [], []
        for b in range(bootstrap):
            i = rng.integers(0, len(idx), len(idx))
            t, pp = T[i], P[i]
            sa.append(float(np.all(t == pp, axis=1).mean()))
            tp = (t & pp).sum(axis=0)
            den = t.sum(axis=0) + pp.sum(axis=0)
            mf.append(float(np.divide(2 * tp, den, out=np.zeros(L), where=den > 0).mean()))
            if b < 200:
                pos = t.any(axis=0)
                if pos.any():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UndefinedMetricWarning)
                        mp.append(float(np.mean(average_precision(t[:, pos], S[i][:, pos], average=None,
                                                                  threads=1))))
        intervals = {"subset_accuracy": _interval(sa), "macro_f1": _interval(mf)}
        if mp:
            intervals["map"] = _interval(mp)
    # the images with the most wrong labels
    wrong = (T != P).sum(axis=1)
    order = np.lexsort((np.arange(len(idx)), -wrong))[:24]
    gal = []
    if len(order) and wrong[order[0]] > 0:
        ex = []
        for j in order:
            if wrong[j] == 0:
                break
            top = np.argsort(-S[j], kind="stable")[:3]
            ex.append({"path": ds.paths[idx[j]], "confidence": float(wrong[j]),
                       "true_labels": [names[k] for k in np.flatnonzero(T[j])],
                       "predicted_labels": [names[k] for k in np.flatnonzero(P[j])],
                       "top": [(names[k], float(S[j, k])) for k in top]})
        gal.append({"true": "(multi-label)", "predicted": "images with the most wrong labels", "count": len(ex),
                    "examples": ex})
    counts = {"labelled": n, "evaluated": int(len(idx)), "failed": int(n - len(idx)),
              "problems": _problem_counts(problems)}
    settings["thresholds"] = thr.tolist()
    return EvalReport(task="classify", multi_label=True, model="", data="", metrics=metrics, intervals=intervals,
                      per_class=per_class, counts=counts, problems=problems, notes=notes, settings=settings,
                      curves=curves, calibration=cal, threshold_curve=thr_curve, gallery=gal)
