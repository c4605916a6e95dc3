"""Single-label and multi-label classification metrics, identical to scikit-learn, streaming and
mergeable (``update`` in a loop, ``merge`` across workers). Counting is native (``_core``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import _core
from ._common import nan_average, safe_divide, zero_division_value

__all__ = ["ConfusionMatrix", "ClassificationReport", "MultilabelReport", "top_k_accuracy"]


def _labels_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iub":
        if a.dtype.kind != "f":
            raise TypeError(f"{name} must hold integer class ids, got {a.dtype}")
        bad = ~np.isfinite(a) | (np.mod(a, 1) != 0) | (np.abs(a) > 2.0**62)
        if bad.any():
            raise ValueError(f"{name} must hold whole-number class ids that fit int64, got {float(a[bad][0])!r}")
        a = a.astype(np.int64)
    if a.size and a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds a class id beyond int64: {a.max()}")
    return np.ascontiguousarray(a, dtype=np.int64)


@dataclass
class ClassificationReport:
    """Per-class precision, recall, F1 and support, with accuracy and averages.

    Attributes:
        names: class names, in class-id order.
        precision, recall, f1, support: (C,) arrays.
        accuracy, balanced_accuracy: floats.
        macro, micro, weighted: dicts with ``precision``, ``recall``, ``f1-score``, ``support``.
    """

    names: list[str]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    accuracy: float
    balanced_accuracy: float
    macro: dict
    micro: dict
    weighted: dict
    samples: dict | None = None
    multilabel: bool = False

    def to_dict(self) -> dict:
        """Same structure and values as ``sklearn.metrics.classification_report(..., output_dict=True)``."""
        d: dict = {}
        for i, n in enumerate(self.names):
            d[n] = {"precision": float(self.precision[i]), "recall": float(self.recall[i]),
                    "f1-score": float(self.f1[i]), "support": float(self.support[i])}
        if self.multilabel:
            d["micro avg"] = dict(self.micro)
        else:
            d["accuracy"] = float(self.accuracy)
        d["macro avg"] = dict(self.macro)
        d["weighted avg"] = dict(self.weighted)
        if self.samples is not None:
            d["samples avg"] = dict(self.samples)
        return d

    def __str__(self) -> str:
        w = max([len(n) for n in self.names] + [12])
        head = f"{'':>{w}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"
        lines = [head, ""]
        for i, n in enumerate(self.names):
            lines.append(f"{n:>{w}}  {self.precision[i]:9.4f}  {self.recall[i]:9.4f}  {self.f1[i]:9.4f}  "
                         f"{int(self.support[i]):9d}")
        lines.append("")
        total = int(self.support.sum())
        if not self.multilabel:
            lines.append(f"{'accuracy':>{w}}  {'':9}  {'':9}  {self.accuracy:9.4f}  {total:9d}")
            lines.append(f"{'balanced acc':>{w}}  {'':9}  {'':9}  {self.balanced_accuracy:9.4f}  {total:9d}")
        rows = [("micro avg", self.micro)] if self.multilabel else []
        rows += [("macro avg", self.macro), ("weighted avg", self.weighted)]
        if self.samples is not None:
            rows.append(("samples avg", self.samples))
        for name, a in rows:
            lines.append(f"{name:>{w}}  {a['precision']:9.4f}  {a['recall']:9.4f}  {a['f1-score']:9.4f}  "
                         f"{int(a['support']):9d}")
        return "\n".join(lines)


def _report_from_counts(tp, fp, fn, support, names, zero_division, *, multilabel, accuracy=None,
                        balanced=None, samples=None) -> ClassificationReport:
    precision = safe_divide(tp, tp + fp, zero_division, "Precision")
    recall = safe_divide(tp, tp + fn, zero_division, "Recall")
    f1 = safe_divide(2 * tp, 2 * tp + fp + fn, zero_division, "F-score")
    total = float(support.sum())

    def avg(p, r, f, weights=None):
        return {"precision": nan_average(p, weights), "recall": nan_average(r, weights),
                "f1-score": nan_average(f, weights), "support": total}

    stp, sfp, sfn = tp.sum(), fp.sum(), fn.sum()
    micro = {
        "precision": float(safe_divide(stp, stp + sfp, zero_division, "Precision")),
        "recall": float(safe_divide(stp, stp + sfn, zero_division, "Recall")),
        "f1-score": float(safe_divide(2 * stp, 2 * stp + sfp + sfn, zero_division, "F-score")),
        "support": total,
    }
    return ClassificationReport(
        names=list(names), precision=precision, recall=recall, f1=f1, support=support.astype(np.int64),
        accuracy=float(accuracy) if accuracy is not None else float("nan"),
        balanced_accuracy=float(balanced) if balanced is not None else float("nan"),
        macro=avg(precision, recall, f1), micro=micro, weighted=avg(precision, recall, f1, support),
        samples=samples, multilabel=multilabel)


class ConfusionMatrix:
    """Streaming confusion matrix of a single-label classifier (rows = truth, columns = prediction).

    Args:
        num_classes: C; labels must be in [0, C).
        labels: optional C class names (default: "0" .. "C-1").
    """

    def __init__(self, num_classes: int, *, labels: Sequence[str] | None = None) -> None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)
        if labels is not None:
            labels = [str(x) for x in labels]
            if len(labels) != self.num_classes:
                raise ValueError(f"labels must have {self.num_classes} names, got {len(labels)}")
        self.labels = labels or [str(i) for i in range(self.num_classes)]
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, y_true, y_pred) -> "ConfusionMatrix":
        """Adds pairs; raises ``ValueError`` naming the first label outside [0, C) and its index."""
        t = _labels_1d(y_true, "y_true")
        p = _labels_1d(y_pred, "y_pred")
        if t.shape != p.shape:
            raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}")
        _core.confusion_update(t, p, self.matrix)
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        if not isinstance(other, ConfusionMatrix) or other.num_classes != self.num_classes:
            raise ValueError("can only merge a ConfusionMatrix with the same num_classes")
        self.matrix += other.matrix
        return self

    def __setstate__(self, state: dict) -> None:
        """Unpickled (from another process or worker) with a matrix of its own: Ray hands NumPy
        arrays back read-only, zero-copy from its object store, and ``update`` / ``merge`` write."""
        self.__dict__.update(state)
        self.matrix = np.array(self.matrix, np.int64, copy=True)

    @property
    def count(self) -> int:
        return int(self.matrix.sum())

    def report(self, zero_division="warn") -> ClassificationReport:
        """Precision / recall / F1 per class and averaged, as scikit-learn's classification_report."""
        zero_division_value(zero_division)
        m = self.matrix
        tp = np.diag(m).astype(np.float64)
        support = m.sum(axis=1).astype(np.float64)
        predicted = m.sum(axis=0).astype(np.float64)
        fp = predicted - tp
        fn = support - tp
        n = float(m.sum())
        accuracy = tp.sum() / n if n else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class_recall = tp / support
        present = support > 0
        balanced = float(np.mean(per_class_recall[present])) if present.any() else 0.0
        return _report_from_counts(tp, fp, fn, support, self.labels, zero_division, multilabel=False,
                                   accuracy=accuracy, balanced=balanced)


def top_k_accuracy(y_true, scores, k: int = 5, *, normalize: bool = True) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    Equal to ``sklearn.metrics.top_k_accuracy_score(y_true, scores, k=k, labels=range(C))``,
    ties included (a tie ranks the larger class index first, as its stable argsort does).
    ``scores`` of shape (N,) is the binary case (positive-class score), as in scikit-learn.
    """
    t = _labels_1d(y_true, "y_true")
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scores must be numeric, got {s.dtype}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 2**62:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if s.dtype.kind == "f" and s.size and not np.isfinite(s).all():
        bad = np.argwhere(~np.isfinite(s))[0]
        raise ValueError(f"scores must be finite, got {s[tuple(bad)]} at {tuple(int(i) for i in bad)}")
    if s.ndim == 1:
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"scores must have shape ({t.shape[0]},), got {s.shape}")
        if k >= 2:
            hits = t.shape[0]
        else:
            thr = 0.5 if s.size and s.min() >= 0 and s.max() <= 1 else 0
            hits = int(np.sum((s > thr) == (t == 1)))
    else:
        if s.ndim != 2 or s.shape[0] != t.shape[0]:
            raise ValueError(f"scores must have shape ({t.shape[0]}, C), got {s.shape}")
        if s.dtype not in (np.float32, np.float64):
            s = s.astype(np.float64)
        hits = _core.top_k_hits(t, np.ascontiguousarray(s), int(k))
    if not normalize:
        return float(hits)
    return hits / t.shape[0] if t.shape[0] else float("nan")


@dataclass
class MultilabelReport(ClassificationReport):
    """Per-label report of a multi-label classifier, plus hamming loss and subset accuracy."""

    hamming_loss: float = float("nan")
    subset_accuracy: float = float("nan")
    counts: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_predictions(cls, y_true, y_pred, *, labels: Sequence[str] | None = None,
                         zero_division="warn") -> "MultilabelReport":
        """From (N, L) boolean indicator matrices; equal to scikit-learn's classification_report,
        hamming_loss and accuracy_score on multilabel-indicator input."""
        t = np.asarray(y_true)
        p = np.asarray(y_pred)
        if t.ndim != 2 or t.shape != p.shape:
            raise ValueError(f"y_true and y_pred must be (N, L) of the same shape, got {t.shape} and {p.shape}")
        for name, a in (("y_true", t), ("y_pred", p)):
            if a.dtype != bool and not np.isin(a, (0, 1)).all():
                raise ValueError(f"{name} must be a 0/1 indicator matrix")
        t = t.astype(bool)
        p = p.astype(bool)
        zero_division_value(zero_division)
        L = t.shape[1]
        names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(L)]
        if len(names) != L:
            raise ValueError(f"labels must have {L} names, got {len(names)}")
        tp = (t & p).sum(axis=0).astype(np.float64)
        fp = (~t & p).sum(axis=0).astype(np.float64)
        fn = (t & ~p).sum(axis=0).astype(np.float64)
        support = t.sum(axis=0).astype(np.float64)
        inter = (t & p).sum(axis=1).astype(np.float64)
        nt = t.sum(axis=1).astype(np.float64)
        npred = p.sum(axis=1).astype(np.float64)
        sp = safe_divide(inter, npred, zero_division, "Precision")
        sr = safe_divide(inter, nt, zero_division, "Recall")
        sf = safe_divide(2 * inter, nt + npred, zero_division, "F-score")
        samples = {"precision": nan_average(sp), "recall": nan_average(sr), "f1-score": nan_average(sf),
                   "support": float(support.sum())}
        base = _report_from_counts(tp, fp, fn, support, names, zero_division, multilabel=True, samples=samples)
        n = t.shape[0]
        return cls(**{f: getattr(base, f) for f in ClassificationReport.__dataclass_fields__},
                   hamming_loss=float((t != p).sum() / (n * L)) if n * L else float("nan"),
                   subset_accuracy=float(np.all(t == p, axis=1).mean()) if n else float("nan"),
                   counts={"tp": tp, "fp": fp, "fn": fn})
