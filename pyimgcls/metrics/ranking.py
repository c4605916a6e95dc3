"""Ranking metrics of scores against binary truth: average precision, ROC AUC, the
precision-recall curve and the threshold that reaches a target precision. Equal to
scikit-learn's ``average_precision_score``, ``roc_auc_score`` and ``precision_recall_curve``
(tied scores form one threshold). Sorting is a native radix sort, threaded over labels."""

from __future__ import annotations

import warnings

import numpy as np

from .. import _core
from ..runtime.threads import resolve_threads
from ._common import UndefinedMetricWarning

__all__ = ["average_precision", "roc_auc", "precision_recall_curve", "threshold_for_precision", "RankingState"]

_AVERAGES = (None, "macro", "micro", "weighted")


def _truth_scores(y_true, scores):
    t = np.asarray(y_true)
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scores must be numeric, got {s.dtype}")
    if t.shape != s.shape or t.ndim not in (1, 2):
        raise ValueError(f"y_true and scores must have the same (N,) or (N, L) shape, got {t.shape} and {s.shape}")
    if t.size:
        if t.dtype == bool:
            pass
        elif t.dtype.kind == "u" and t.dtype.itemsize == 1:
            if t.max() > 1:
                raise ValueError("y_true must hold 0/1 (or boolean) labels")
        elif not np.isin(t, (0, 1)).all():
            raise ValueError("y_true must hold 0/1 (or boolean) labels")
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    # finiteness is checked by the native kernels, which name the offending position
    return np.ascontiguousarray(t).view(np.uint8) if t.dtype == bool else np.ascontiguousarray(t, dtype=np.uint8), \
        np.ascontiguousarray(s)


def _columns(t: np.ndarray, s: np.ndarray, threads: int):
    if t.ndim == 1:
        t, s = t[:, None], s[:, None]
    return _core.ap_auc_columns(np.ascontiguousarray(s), np.ascontiguousarray(t), resolve_threads(threads))


def _average(values: np.ndarray, t: np.ndarray, average, micro_fn) -> np.ndarray | float:
    if average is None:
        return values
    if average == "macro":
        return float(np.mean(values))
    if average == "weighted":
        w = t.sum(axis=0).astype(np.float64)
        return float(np.average(values, weights=w)) if w.sum() else 0.0
    return micro_fn()


def average_precision(y_true, scores, average: str | None = "macro", *, threads: int = 0):
    """Average precision: sum over thresholds of (R_n - R_{n-1}) * P_n.

    Args:
        y_true: (N,) binary or (N, L) multi-label 0/1 truth.
        scores: same shape.
        average: for (N, L): ``None`` (per label), ``"macro"``, ``"micro"`` (all pairs as one
            problem) or ``"weighted"`` (by positives). Ignored for (N,).
        threads: worker threads over labels (0 = all usable cores).

    A label without positives scores 0.0 (with a warning), as in scikit-learn.
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    t, s = _truth_scores(y_true, scores)
    ap, _ = _columns(t, s, threads)
    if np.isnan(ap).any():
        warnings.warn("No positive class found in y_true: average precision is set to 0.0 for those labels",
                      UndefinedMetricWarning, stacklevel=2)
        ap = np.nan_to_num(ap, nan=0.0)
    if t.ndim == 1:
        return float(ap[0])
    return _average(ap, t, average, lambda: average_precision(t.reshape(-1), s.reshape(-1)))


def roc_auc(y_true, scores, average: str | None = "macro", *, threads: int = 0):
    """Area under the ROC curve (trapezoid over distinct thresholds), like ``roc_auc_score``.

    Raises:
        ValueError: a label (or the binary truth) has only one class, where AUC is undefined.
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    t, s = _truth_scores(y_true, scores)
    if t.ndim == 2 and average == "micro":
        return roc_auc(t.reshape(-1), s.reshape(-1))
    _, auc = _columns(t, s, threads)
    if np.isnan(auc).any():
        bad = int(np.flatnonzero(np.isnan(auc))[0])
        where = "" if t.ndim == 1 else f" (label {bad})"
        raise ValueError(f"Only one class present in y_true{where}. ROC AUC score is not defined in that case.")
    if t.ndim == 1:
        return float(auc[0])
    return _average(auc, t, average, None)


def precision_recall_curve(y_true, scores):
    """Precision, recall and thresholds of a binary problem, as scikit-learn returns them.

    Returns:
        ``(precision, recall, thresholds)``: thresholds are the distinct scores ascending;
        precision and recall have one more entry (the final 1 and 0).
    """
    t, s = _truth_scores(y_true, scores)
    if t.ndim != 1:
        raise ValueError(f"precision_recall_curve takes binary (N,) inputs, got shape {t.shape}")
    thr, tps, fps = _core.binary_curve(s, t)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tps / (tps + fps)
    precision[(tps + fps) == 0] = 1.0
    if tps.size and tps[-1] == 0:
        warnings.warn("No positive class found in y_true, recall is set to one for all thresholds",
                      UndefinedMetricWarning, stacklevel=2)
        recall = np.ones_like(tps)
    else:
        recall = tps / tps[-1] if tps.size else tps
    return np.hstack((precision[::-1], 1.0)), np.hstack((recall[::-1], 0.0)), thr[::-1].copy()


def threshold_for_precision(y_true, scores, target: float) -> tuple[float, float]:
    """The lowest threshold whose precision (of ``score >= threshold``) reaches ``target``.

    Returns:
        ``(threshold, recall)`` kept at that threshold; ``(inf, 0.0)`` when no threshold reaches
        the target.
    """
    if not (0.0 <= float(target) <= 1.0):
        raise ValueError(f"target must be in [0, 1], got {target!r}")
    precision, recall, thr = precision_recall_curve(y_true, scores)
    ok = np.flatnonzero(precision[:-1] >= target)
    if ok.size == 0:
        return float("inf"), 0.0
    i = int(ok[0])  # thresholds ascend: the first qualifying one is the lowest
    return float(thr[i]), float(recall[i])


class RankingState:
    """The inputs of per-label average precision and ROC AUC, gathered as they come and mergeable
    across workers (``update`` / ``merge``, picklable), for evaluations split over machines.

    Exact: AP and AUC depend only on the multiset of ``(truth, score)`` pairs of each label (tied
    scores form one threshold), so states merged in any order give the numbers of one machine, bit
    for bit. Memory: every pair is kept (N x L truth bytes and scores), as the exact answer needs.
    Not thread-safe: one state per thread, merged at the end.

    Args:
        num_labels: L, or ``None`` to take it from the first ``update``.
    """

    def __init__(self, num_labels: int | None = None) -> None:
        if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer))
                                       or num_labels < 1):
            raise ValueError(f"num_labels must be a positive int, got {num_labels!r}")
        self.num_labels = None if num_labels is None else int(num_labels)
        self._binary: bool | None = None  # (N,) inputs: one binary problem
        self._truth: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def update(self, y_true, scores) -> "RankingState":
        """Adds rows: ``y_true`` (N,) binary or (N, L) 0/1 truth, ``scores`` the same shape."""
        t, s = _truth_scores(y_true, scores)
        binary = t.ndim == 1
        if binary:
            t, s = t[:, None], s[:, None]
        if self._binary is not None and binary != self._binary:
            raise ValueError(f"y_true must be {'(N,)' if self._binary else '(N, L)'} like the earlier updates, "
                             f"got shape {np.shape(y_true)}")
        if self.num_labels is not None and t.shape[1] != self.num_labels:
            raise ValueError(f"y_true and scores must have {self.num_labels} labels (columns), got {t.shape[1]}")
        self._binary, self.num_labels = binary, t.shape[1]
        self._truth.append(np.array(t, copy=True))
        self._scores.append(np.array(s, copy=True))
        return self

    def merge(self, other: "RankingState") -> "RankingState":
        """Adds another state's rows (e.g. from another worker)."""
        if not isinstance(other, RankingState):
            raise TypeError(f"can only merge a RankingState, got {type(other).__name__}")
        if other._truth and self._truth and (other.num_labels != self.num_labels or other._binary != self._binary):
            raise ValueError(f"can only merge states with the same labels: {self.num_labels} and {other.num_labels}")
        if other._truth:
            self._binary, self.num_labels = other._binary, other.num_labels
        self._truth += other._truth
        self._scores += other._scores
        return self

    def __len__(self) -> int:
        return sum(len(t) for t in self._truth)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(y_true, scores)`` of every row so far: (N,) or (N, L) uint8 truth and the scores."""
        if not self._truth:
            raise ValueError("RankingState has no rows: update it first")
        t, s = np.concatenate(self._truth), np.concatenate(self._scores)
        return (t[:, 0], s[:, 0]) if self._binary else (t, s)

    def average_precision(self, average: str | None = "macro", *, threads: int = 0):
        """``average_precision`` of every row so far (per label with ``average=None``)."""
        return average_precision(*self.arrays(), average, threads=threads)

    def roc_auc(self, average: str | None = "macro", *, threads: int = 0):
        """``roc_auc`` of every row so far."""
        return roc_auc(*self.arrays(), average, threads=threads)
