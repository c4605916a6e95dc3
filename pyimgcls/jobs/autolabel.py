"""The auto-label loop: a few labelled images in, every image labelled with a confidence, the
uncertain ones queued for review.

1. Embed the labelled and the unlabelled images (cached, see ``_embeddings``).
2. Fit a head on the L2-normalised labelled embeddings: multinomial logistic regression
   (scikit-learn, lbfgs); multi-label data gets one logistic regression (a sigmoid) per label.
   The inverse regularisation ``C`` is chosen from ``Cs`` by the log-loss of the calibrated
   out-of-fold predictions of a stratified k-fold cross-validation, each fold warm-started along
   the ascending ``Cs``. Above ``HOLDOUT_ABOVE`` labels one held-out fold replaces the k folds,
   the fits run Newton-CG on float32 features (same convex optimum; a few Newton steps from the
   previous ``C``'s solution where lbfgs took hundreds; with three or more classes and one label
   an image, the native Newton-CG of ``_softmax_head``, else scikit-learn's), the path stops at
   the first ``C`` whose held-out log-loss rises, or once the last step's slope in log C, carried
   to the largest ``C``, promises less than ``HOLDOUT_MIN_GAIN`` (1%), and the final head stops at
   tol 1e-6 (1e-5 otherwise).
3. Calibrate: one temperature ``T`` (logits / T) fitted to the out-of-fold logits by maximum
   likelihood (Guo et al. 2017, "On Calibration of Modern Neural Networks"); the expected
   calibration error (15 equal-width bins) is reported before and after.
4. Threshold: the calibrated out-of-fold predictions of all classes are pooled and ranked by
   confidence; the threshold is the lowest confidence at which a one-sided Clopper-Pearson lower
   bound (level ``1 - alpha``) of the precision of the predictions above it still reaches
   ``target_precision`` (a conservative choice: with ~100 labels the point estimate is noisy).
   A class with at least ``own_threshold_labels`` labels gets its own threshold from its own
   predictions when its bound can reach the target.
   When no threshold's bound reaches the target (unlucky or hard labels: with 100 labels,
   about 69 of 100 correct out-of-fold already rules out every threshold at 0.90), ``label``
   falls back to the images it labels (single-label heads, ``pool_fallback``): after temperature
   scaling, the expected precision of accepting every image with calibrated confidence >= t is
   the mean calibrated confidence of those images, and the threshold is the lowest t at which
   that mean reaches ``target_precision`` (``pool_precision_threshold``). This estimate rests on
   the calibration alone (the temperature fitted to the out-of-fold predictions), not on a bound.
5. Label: every image gets the head's label, its calibrated confidence, ``accepted`` (at or
   above its class threshold) and the estimated precision of its class at that threshold.
6. Review queue: the ``n`` images whose labels would teach the head most, by weighted K-Means
   (Zhdanov 2019, "Diverse mini-batch Active Learning", arXiv:1901.05954): the candidates (every
   image, or the ``max_candidates`` most uncertain) are grouped into ``n`` clusters of the
   embedding space by K-Means weighted by each image's uncertainty (1 - margin, the margin being
   the gap between the two best calibrated probabilities), and each cluster gives the image
   nearest its centre. The centres sit in uncertain regions while covering the space, and the
   image nearest a centre is typical of its region rather than a lone outlier, so the ``n`` are
   uncertain, representative and not near-duplicates. (Measured on Fashion-MNIST, README: the
   earlier rule, each unweighted cluster's smallest-margin image, gained less.)
7. Starting labels that the out-of-fold predictions confidently contradict are listed as likely
   mistakes, by the confident-learning rule (Northcutt et al. 2021, the method of cleanlab): an
   image labelled ``i`` whose calibrated probability of another class ``j`` reaches the mean
   self-confidence of the images labelled ``j``.

Thread safety: an ``AutoLabeler`` is not safe to fit from several threads at once; once fitted,
``predict_proba`` and ``label`` may run concurrently.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._embeddings import EmbeddingSet, l2_normalize, load_embeddings, require_sklearn
from ._softmax_head import fit_softmax_head, one_blas_thread

__all__ = ["AutoLabeler", "AutoLabelResult", "ReviewQueue", "expected_calibration_error", "precision_threshold",
           "clopper_pearson_lower", "pool_precision_threshold"]

log = logging.getLogger("pyimgcls")

DEFAULT_CS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
HOLDOUT_ABOVE = 2000  # labelled images above which one held-out fold replaces k-fold cross-validation
HOLDOUT_MIN_GAIN = 0.01  # held-out mode: the C path stops once the larger Cs could gain less than this (relative)


def _blas_threads(shape):
    """One BLAS / OpenMP thread for small problems: their thread hand-offs cost more than the
    arithmetic (measured: 20x slower lbfgs on 100 x 1280 with two busy cores). Set from the main
    thread only, as ``_softmax_head`` does (the limit is process-wide)."""
    import contextlib

    return one_blas_thread() if shape[0] * shape[1] <= 4_000_000 else contextlib.nullcontext()


# ----------------------------------------------------------------------------- numerics
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _nll(z: np.ndarray, y: np.ndarray, multi: bool) -> float:
    """Mean negative log-likelihood of logits ``z`` (N, K) for labels ``y`` ((N,) or (N, K) 0/1)."""
    if multi:
        # binary cross-entropy summed over labels, stable form
        return float(np.mean(np.sum(np.logaddexp(0, z) - y * z, axis=1)))
    zs = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(zs).sum(axis=1))
    return float(np.mean(lse - zs[np.arange(len(y)), y]))


def _gain_spent(scores: dict, c_max: float | None) -> bool:
    """Whether the Cs still to try, up to ``c_max``, can lower the held-out log-loss by less than
    ``HOLDOUT_MIN_GAIN`` of its last value (held-out mode). The held-out loss is convex in log C
    near its minimum (a U), so its slope in log C only flattens: the last step's gain per unit of
    log C, times log(c_max / C), bounds what the rest of the path can gain. (Measuring the last
    step alone would stop after a short step, 3 -> 3.1, where the loss still falls steeply.) Larger
    Cs, each the slowest fit of the path so far, are not tried once they could gain under 1%.
    (10,000 Fashion-MNIST embeddings: C = 10 -> 30 gained 0.46%, and C = 100 lost 4%.)"""
    tried = list(scores)
    if len(tried) < 2 or c_max is None:
        return False
    c0, c1 = tried[-2], tried[-1]
    prev, last = scores[c0][0], scores[c1][0]
    if last > prev:
        return False  # a rise: the caller's rule
    bound = (prev - last) * math.log(c_max / c1) / math.log(c1 / c0)
    return bool(bound < HOLDOUT_MIN_GAIN * abs(last))


def fit_temperature(z: np.ndarray, y: np.ndarray, multi: bool = False) -> float:
    """The temperature ``T`` minimising the NLL of ``z / T`` (bounded to [0.05, 20])."""
    from scipy.optimize import minimize_scalar

    r = minimize_scalar(lambda lt: _nll(z / math.exp(lt), y, multi), bounds=(math.log(0.05), math.log(20.0)),
                        method="bounded", options={"xatol": 1e-4})
    return float(math.exp(r.x))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE: the bin-weighted mean of ``|accuracy - mean confidence|`` over ``bins`` equal-width
    confidence bins ((0, 1/bins], ...). ``confidence``: (N,) in [0, 1]; ``correct``: (N,) bool."""
    conf = np.asarray(confidence, np.float64)
    corr = np.asarray(correct, np.float64)
    if len(conf) == 0:
        return float("nan")
    b = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for i in range(bins):
        m = b == i
        if m.any():
            ece += m.mean() * abs(corr[m].mean() - conf[m].mean())
    return float(ece)


def clopper_pearson_lower(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound of a proportion, ``k`` of ``n``."""
    from scipy.stats import beta

    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore"):
        lo = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, np.nan_to_num(lo), 0.0)


def precision_threshold(confidence: np.ndarray, correct: np.ndarray, target: float, alpha: float) -> float:
    """The lowest confidence threshold whose predictions at or above it have a precision lower
    bound (``clopper_pearson_lower``) of at least ``target``; ``inf`` when none has.

    ``confidence``: (N,) calibrated confidences; ``correct``: (N,) bool.
    """
    conf = np.asarray(confidence, np.float64)
    if len(conf) == 0:
        return float("inf")
    order = np.argsort(-conf, kind="stable")
    c = np.asarray(correct, bool)[order]
    s = conf[order]
    k = np.cumsum(c)
    n = np.arange(1, len(c) + 1)
    lcb = clopper_pearson_lower(k, n, alpha)
    # a threshold accepts every tie: only positions where the confidence drops after are cut points
    cut = np.r_[s[1:] < s[:-1], True]
    ok = np.flatnonzero((lcb >= target) & cut)
    return float(s[ok[-1]]) if len(ok) else float("inf")


def pool_precision_threshold(confidence: np.ndarray, target: float) -> tuple[float, float]:
    """``(threshold, estimated precision)``: the lowest confidence threshold at which the mean
    calibrated confidence of the images at or above it (their expected precision, if the
    confidences are calibrated) reaches ``target``, and that mean; ``(inf, nan)`` when none does.

    ``confidence``: (N,) calibrated top-1 confidences of unlabelled images.
    """
    conf = np.asarray(confidence, np.float64)
    if len(conf) == 0:
        return float("inf"), float("nan")
    s = np.sort(conf)[::-1]
    mean = np.cumsum(s) / np.arange(1, len(s) + 1)
    cut = np.r_[s[1:] < s[:-1], True]  # a threshold accepts every tie
    ok = np.flatnonzero((mean >= target - 1e-12) & cut)  # 1e-12: the running sum's rounding
    return (float(s[ok[-1]]), float(mean[ok[-1]])) if len(ok) else (float("inf"), float("nan"))


# ----------------------------------------------------------------------------- results
@dataclass
class AutoLabelResult:
    """Every image with its label, confidence and status.

    Attributes:
        paths: the images (absolute paths, or ``row i`` for arrays).
        classes: the class names.
        label: ``(N,)`` int64 the best class (single-label); for multi-label the best label.
        labels: multi-label only: the names of every label with calibrated probability >= 0.5.
        confidence: ``(N,)`` float64 calibrated probability of the label (multi-label: the least
            certain of the label decisions, ``min(max(p, 1 - p))``).
        accepted: ``(N,)`` bool, confidence at or above the label's class threshold.
        est_precision: ``(N,)`` float64 estimated precision of the label's class at its threshold:
            from the out-of-fold predictions (``threshold_from`` ``"pooled"`` / ``"class"``), or,
            for ``"pool"``, the mean calibrated confidence of this result's accepted images of
            that class (the expected fraction of them that is right if the calibration holds;
            the mean over all accepted images where the class has none).
        probabilities: ``(N, K)`` float32 calibrated probabilities.
        margin: ``(N,)`` float64 gap between the two best probabilities (multi-label: ``2 *
            confidence - 1``).
        classes_report: per class: ``class``, ``threshold``, ``threshold_from`` (``"pooled"`` or
            ``"class"`` from the out-of-fold predictions; ``"pool"``: from the images labelled, see
            the module notes), ``est_precision``, ``est_recall`` (from the out-of-fold predictions;
            ``nan`` for ``"pool"`` classes, which the labels could not certify), ``predicted`` and ``accepted`` (counts here), ``coverage`` (accepted /
            predicted); with truth also ``precision``, ``recall`` (of the accepted labels) and
            ``truth`` (images of the class).
        errors: ``{input: reason}`` for inputs that could not be embedded.
        measured: with truth: overall ``precision``, ``coverage``, ``accuracy`` and ``images``.
    """

    paths: list[str]
    classes: list[str]
    label: np.ndarray
    confidence: np.ndarray
    accepted: np.ndarray
    est_precision: np.ndarray
    probabilities: np.ndarray
    margin: np.ndarray
    classes_report: list[dict] = field(default_factory=list)
    labels: list[list[str]] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    measured: dict | None = None
    embeddings: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        cov = float(self.accepted.mean()) if len(self) else 0.0
        m = f", measured precision {self.measured['precision']:.3f}" if self.measured else ""
        return f"AutoLabelResult({len(self)} images, {cov:.1%} accepted{m})"

    @property
    def coverage(self) -> float:
        """Fraction of the images accepted."""
        return float(self.accepted.mean()) if len(self) else 0.0

    def label_names(self) -> list[str]:
        if self.labels is not None:
            return [";".join(x) for x in self.labels]
        return [self.classes[int(i)] for i in self.label]

    def write(self, path: str | os.PathLike) -> str:
        """One CSV row per image: ``path, label, confidence, status (accepted / review),
        est_precision``; inputs that could not be embedded with ``status`` ``error``."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "confidence", "status", "est_precision", "error"])
            for p, lab, c, a, e in zip(self.paths, self.label_names(), self.confidence, self.accepted,
                                       self.est_precision):
                w.writerow([p, lab, f"{c:.6f}", "accepted" if a else "review", f"{e:.4f}", ""])
            for p, err in self.errors.items():
                w.writerow([p, "", "", "error", "", err])
        os.replace(tmp, path)
        return path

    def report_text(self) -> str:
        """The per-class table as text."""
        cols = ["class", "threshold", "from", "est_prec", "est_recall", "predicted", "accepted", "coverage"]
        truth = self.measured is not None
        if truth:
            cols += ["precision", "recall"]
        lines = ["  ".join(f"{c:>10}" for c in cols)]
        for r in self.classes_report:
            vals = [r["class"][:10], f"{r['threshold']:.3f}", r["threshold_from"], f"{r['est_precision']:.3f}",
                    f"{r['est_recall']:.3f}", str(r["predicted"]), str(r["accepted"]), f"{r['coverage']:.3f}"]
            if truth:
                vals += [f"{r['precision']:.3f}", f"{r['recall']:.3f}"]
            lines.append("  ".join(f"{v:>10}" for v in vals))
        lines.append(f"accepted {int(self.accepted.sum())} of {len(self)} images ({self.coverage:.1%})")
        if truth:
            m = self.measured
            lines.append(f"measured on {m['images']} images with truth: precision of the accepted labels "
                         f"{m['precision']:.3f}, coverage {m['coverage']:.3f}, accuracy of all labels {m['accuracy']:.3f}")
        return "\n".join(lines)


@dataclass
class ReviewQueue:
    """Images to review, most useful first.

    Attributes:
        paths: the images.
        suggested: the head's label for each.
        confidence: its calibrated confidence.
        margin: gap between the two best probabilities.
        rows: the row of each image in the ``AutoLabelResult`` it came from.
    """

    paths: list[str]
    suggested: list[str]
    confidence: np.ndarray
    margin: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def write_csv(self, path: str | os.PathLike) -> str:
        """``path, label, suggested, confidence, margin``: fill in ``label`` and feed the file back
        as labels (``AutoLabeler.fit([old_labels, this_file])``; rows left empty are skipped)."""
        path = os.fspath(path)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "suggested", "confidence", "margin"])
            for p, s, c, m in zip(self.paths, self.suggested, self.confidence, self.margin):
                w.writerow([p, "", s, f"{c:.4f}", f"{m:.4f}"])
        return path

    def write_html(self, path: str | os.PathLike, title: str = "pyimgcls autolabel: review queue") -> str:
        """A self-contained page of thumbnails with the suggested labels."""
        from ._report import HtmlPage, Thumb, thumbnail_png

        page = HtmlPage(title)
        page.paragraph(f"{len(self)} images, most useful to label first. Fill in the label column of the CSV "
                       "beside this page and pass it back with --labeled.")
        thumbs = []
        for i, (p, s, c) in enumerate(zip(self.paths, self.suggested, self.confidence)):
            try:
                png = thumbnail_png(p) if os.path.isfile(p) else None
            except Exception:  # noqa: BLE001 - an unreadable image shows its caption only
                png = None
            thumbs.append(Thumb(png, [f"#{i + 1} {os.path.basename(p)}", f"suggested: {s} ({c:.2f})"], title=p))
        page.gallery(thumbs)
        return page.write(path)


# ----------------------------------------------------------------------------- labelled data
def _merge_labeled(labeled: Any) -> tuple[list[str], list[str], list[list[str]] | None, np.ndarray | None]:
    """``(paths, classes, per-image label names, vectors or None)`` from the supported forms."""
    from ..io.datasets import ClassificationDataset, read_image_folder, read_label_table

    if isinstance(labeled, tuple) and len(labeled) == 2 and isinstance(labeled[0], np.ndarray):
        x, y = labeled
        y = list(y)
        if len(y) != len(x):
            raise ValueError(f"labeled: {len(x)} embeddings but {len(y)} labels")
        names = [[str(v)] if not isinstance(v, (list, tuple, set)) else [str(t) for t in v] for v in y]
        return [f"row {i}" for i in range(len(x))], sorted({n for ns in names for n in ns}), names, \
            np.asarray(x, np.float32)
    parts = labeled if isinstance(labeled, list) and labeled and not isinstance(labeled[0], tuple) else [labeled]
    if isinstance(labeled, list) and labeled and isinstance(labeled[0], tuple):
        parts = [labeled]
    by_path: dict[str, list[str]] = {}
    for part in parts:
        if isinstance(part, list):  # [(path, label), ...]
            for p, lab in part:
                if not os.path.isfile(p):
                    raise FileNotFoundError(f"labeled image not found: {p}")
                by_path[os.path.abspath(p)] = [str(lab)] if not isinstance(lab, (list, tuple)) else list(map(str, lab))
            continue
        if isinstance(part, ClassificationDataset):
            ds = part
            where = "the dataset"
        else:
            p = os.fspath(part)
            ds = read_image_folder(p) if os.path.isdir(p) else read_label_table(p)
            where = p
        missing = [d for k, d in ds.problems if k == "missing_file"]
        if missing:
            raise FileNotFoundError(f"{where}: {len(missing)} labelled images do not exist (first: {missing[0]})")
        empty = [d for k, d in ds.problems if k == "empty_label"]
        if empty:
            log.warning("%s: %d rows without a label skipped (not reviewed yet?), first: %s", where, len(empty),
                        empty[0])
        other = [(k, d) for k, d in ds.problems if k not in ("missing_file", "empty_label")]
        if other:
            log.warning("%s: %d rows not used (first: %s: %s)", where, len(other), *other[0])
        for p, y in zip(ds.paths, ds.labels):
            names = [ds.classes[int(j)] for j in np.flatnonzero(y)] if ds.multi_label else [ds.classes[int(y)]]
            by_path[os.path.abspath(p)] = names  # a later file (a review) overrides an earlier label
    paths = list(by_path)
    names = [by_path[p] for p in paths]
    return paths, sorted({n for ns in names for n in ns}), names, None


# ----------------------------------------------------------------------------- the labeler
class AutoLabeler:
    """Fits a calibrated head on a few labelled images and labels the rest.

    Args:
        model: ONNX backbone whose embeddings are used (default: the embedded EfficientNet-Lite0).
        target_precision: the precision the accepted labels should reach.
        classifier: an existing ``Classifier`` instead of ``model``.
        cache: folder for the embedding cache (``None``: no cache).
        seed: seed of the folds and the review queue's K-Means.
        folds: cross-validation folds (at most the smallest class's count).
        Cs: candidate inverse regularisation strengths of the logistic regression.
        alpha: the precision bound is one-sided at level ``1 - alpha``.
        own_threshold_labels: labels a class needs before it gets its own threshold.
        batch_size / threads: for embedding.
        pool_fallback: single-label heads only: where the out-of-fold bound sets no pooled
            threshold (``threshold_`` is ``inf``), ``label`` takes it from the calibrated
            confidences of the images it labels (``pool_precision_threshold``) instead of
            accepting nothing; the result's ``classes_report`` says ``"pool"`` for those classes.

    Attributes (after ``fit``): ``classes``, ``multi_label``, ``C_``, ``temperature_``,
    ``ece_before_``, ``ece_after_`` (out-of-fold), ``threshold_`` (pooled; ``inf`` when the
    bound reaches the target nowhere), ``class_thresholds_`` (the fitted ones, before any pool fallback),
    ``threshold_from_``, ``oof_probabilities_``, ``suspects_`` (likely mislabelled starting
    labels: ``path, given, suggested, confidence``), ``fit_seconds_``.
    """

    def __init__(self, model=None, *, target_precision: float = 0.9, classifier=None, cache: str | None = None,
                 seed: int = 0, folds: int = 5, Cs: Sequence[float] = DEFAULT_CS, alpha: float = 0.05,
                 own_threshold_labels: int = 30, batch_size: int = 32, threads: int = 0,
                 pool_fallback: bool = True) -> None:
        require_sklearn("pyimgcls.AutoLabeler")
        if not 0 < float(target_precision) < 1:
            raise ValueError(f"target_precision must be in (0, 1), got {target_precision!r}")
        if not 0 < float(alpha) < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        if int(folds) < 2:
            raise ValueError(f"folds must be at least 2, got {folds!r}")
        if not Cs or any(not (float(c) > 0) for c in Cs):
            raise ValueError(f"Cs must be positive numbers, got {Cs!r}")
        self.model, self.classifier, self.cache = model, classifier, cache
        self.target_precision, self.alpha = float(target_precision), float(alpha)
        self.seed, self.folds, self.Cs = int(seed), int(folds), sorted(float(c) for c in Cs)
        self.own_threshold_labels = int(own_threshold_labels)
        self.pool_fallback = bool(pool_fallback)
        self.batch_size, self.threads = batch_size, threads
        self.fitted = False
        self._last: AutoLabelResult | None = None

    # ------------------------------------------------------------------ embeddings
    def _classifier(self):
        if self.classifier is None:
            from ..tasks.classifier import Classifier

            self.classifier = Classifier(self.model, threads=self.threads)
        return self.classifier

    def _embed(self, data: Any) -> EmbeddingSet:
        if isinstance(data, (np.ndarray, EmbeddingSet)):
            return load_embeddings(data)
        from ._embeddings import is_embeddings_file

        if is_embeddings_file(data):
            return load_embeddings(data)
        return load_embeddings(data, classifier=self._classifier(), cache=self.cache, batch_size=self.batch_size,
                               progress=True)

    # ------------------------------------------------------------------ fitting
    def fit(self, labeled: Any) -> "AutoLabeler":
        """Fits and calibrates the head and chooses the thresholds.

        Args:
            labeled: a label table (CSV / TSV / Parquet: ``path,label``; several labels per image
                make it multi-label), an ImageFolder-style folder, a ``ClassificationDataset``, a
                list of ``(path, label)``, a list of any of these (a later one overrides an
                earlier label of the same image: reviewed labels), or ``(embeddings (N, D),
                labels)`` to skip embedding.

        Raises:
            ValueError: no labelled images, fewer than two classes, a class with a single image
                (named), images that cannot be embedded.
            FileNotFoundError: a labelled image that does not exist (named).
        """
        import time

        paths, classes, names, vecs = _merge_labeled(labeled)
        if not paths:
            raise ValueError("no labelled images")
        if vecs is None:
            es = self._embed(paths)
            if es.errors:
                p, e = next(iter(es.errors.items()))
                raise ValueError(f"{len(es.errors)} labelled images could not be embedded (first: {p}: {e}); fix or "
                                 "remove them from the labels")
            order = {p: i for i, p in enumerate(es.paths)}
            vecs = np.asarray(es.vectors)[[order[p] for p in paths]]
        t0 = time.perf_counter()
        self._fit_arrays(np.asarray(vecs, np.float32), names, classes, paths)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _fit_arrays(self, x: np.ndarray, names: list[list[str]], classes: list[str], paths: list[str]) -> None:
        from sklearn.model_selection import KFold, StratifiedKFold

        if not np.isfinite(x).all():
            raise ValueError("labelled embeddings hold NaN or infinite values")
        self.multi_label = any(len(n) != 1 for n in names)
        self.classes = list(classes)
        if len(self.classes) < 2:
            raise ValueError(f"need at least two classes to label, got {self.classes}")
        index = {c: i for i, c in enumerate(self.classes)}
        if self.multi_label:
            y = np.zeros((len(names), len(self.classes)), np.float64)
            for i, ns in enumerate(names):
                y[i, [index[n] for n in ns]] = 1
            counts = y.sum(axis=0).astype(int)
        else:
            y = np.asarray([index[n[0]] for n in names], np.int64)
            counts = np.bincount(y, minlength=len(self.classes))
        few = [f"{self.classes[j]!r} ({counts[j]})" for j in range(len(self.classes)) if counts[j] < 2]
        if few:
            raise ValueError(f"every class needs at least 2 labelled images to be cross-validated; these have fewer: "
                             f"{', '.join(few)}. Label more images of them or leave them out")
        self.label_counts_ = counts
        counts_all = counts
        f = l2_normalize(x).astype(np.float64)
        n_splits = int(min(self.folds, counts.min()))
        if self.multi_label:
            splits = list(KFold(n_splits, shuffle=True, random_state=self.seed).split(f))
        else:
            splits = list(StratifiedKFold(n_splits, shuffle=True, random_state=self.seed).split(f, y))
        holdout = len(f) > HOLDOUT_ABOVE
        if holdout:  # plenty of labels: one held-out fold calibrates as well, at 1/k of the cost
            keep = splits[0][1]
            splits = [splits[0]]
            # the cost is reading the features once per solver step: float32 halves the bytes; and
            # Newton-CG converges in a few steps from the previous C's solution where lbfgs took
            # 100-300 (10,000 x 1280, one thread, measured: 17-33 s against 52 s for the path and the final fit)
            f = f.astype(np.float32)
            # three or more classes, one label each: the native Newton-CG (``_softmax_head``; scikit-learn's
            # multinomial problem and tolerance, each pass over the rows about half the time of BLAS's);
            # two classes are scikit-learn's binary model and multi-label heads one per label: scikit-learn
            solver = "native" if not self.multi_label and len(self.classes) >= 3 else "newton-cg"
        else:
            keep = np.arange(len(f))
            solver = "lbfgs"
        self.calibration_rows_ = len(keep)
        yk = y[keep]
        # out-of-fold logits for every C, each fold warm-started along the ascending C path
        oof = {}
        scores = {}
        fold_models: list = [None] * len(splits)
        best_models = None
        with _blas_threads(f.shape):
            for c in self.Cs:
                z = np.zeros((len(f), len(self.classes)))
                for i, (tr, te) in enumerate(splits):
                    fold_models[i] = self._fit_head(f[tr], y[tr], c, warm=fold_models[i], solver=solver)
                    z[te] = self._logits(fold_models[i], f[te])
                oof[c] = z
                t = fit_temperature(z[keep], yk, self.multi_label)
                scores[c] = (_nll(z[keep] / t, yk, self.multi_label), t)
                if scores[c][0] <= min(v[0] for v in scores.values()):
                    best_models = copy.deepcopy(fold_models[0]) if holdout else None
                elif holdout:
                    # the held-out log-loss of 2,000+ rows is smooth in C: once it rises, larger Cs
                    # (each the slowest fit so far) are not tried
                    break
                if holdout and _gain_spent(scores, self.Cs[-1] if c < self.Cs[-1] else None):
                    break
            self.C_ = min(scores, key=lambda c: scores[c][0])
            self.cv_log_loss_ = {c: scores[c][0] for c in scores}
            self.temperature_ = scores[self.C_][1]
            # held-out mode: the final head starts from the fold's solution at C_ (fewer iterations, same
            # convex optimum) and stops at tol 1e-6: 2 s more on 10,000 x 1280 than 1e-5, at which the
            # warm-started Newton-CG stopped 7e-3 in probability from a tol=1e-8 fit at C=30 (2e-4 at 1e-6)
            self._head = self._fit_head(f, y, self.C_, warm=best_models, solver=solver,
                                        tol=1e-6 if holdout else 1e-5)
        y = yk
        paths = [paths[i] for i in keep]
        z = oof[self.C_][keep]
        p = self._probs(z / self.temperature_)
        conf, correct, pred = self._decisions(p, y)
        conf_raw, _, _ = self._decisions(self._probs(z), y)
        self.ece_before_ = expected_calibration_error(conf_raw, correct)
        self.ece_after_ = expected_calibration_error(conf, correct)
        self.oof_probabilities_, self.oof_confidence_, self.oof_correct_ = p, conf, correct
        self.oof_accuracy_ = float(correct.mean())
        self._y = y
        self._thresholds(conf, correct, pred, y, counts_all)
        self.suspects_ = self._suspects(p, y, paths)
        self.fitted = True

    def _fit_head(self, f: np.ndarray, y: np.ndarray, c: float, warm, solver: str = "lbfgs", tol: float = 1e-5):
        from sklearn.linear_model import LogisticRegression

        if solver == "native":
            return [fit_softmax_head(f, y, len(self.classes), c, warm=warm[0] if warm else None, tol=tol,
                                     max_iter=1000)]

        def one(target, prev):
            m = prev if prev is not None else LogisticRegression(max_iter=1000, warm_start=True, solver=solver)
            m.set_params(C=c, tol=tol)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # lbfgs convergence notes: the CV score judges the fit
                m.fit(f, target)
            return m

        if self.multi_label:
            return [one(y[:, j], warm[j] if warm else None) for j in range(y.shape[1])]
        return [one(y, warm[0] if warm else None)]

    def _logits(self, models, f: np.ndarray) -> np.ndarray:
        if self.multi_label:
            return np.stack([m.decision_function(f) for m in models], axis=1)
        return models[0].decision_function(f)

    def _probs(self, z: np.ndarray) -> np.ndarray:
        return _sigmoid(z) if self.multi_label else _softmax(z)

    def _decisions(self, p: np.ndarray, y: np.ndarray | None):
        """``(confidence, correct or None, predicted)`` of calibrated probabilities ``p``."""
        if self.multi_label:
            pred = (p >= 0.5)
            conf = np.min(np.maximum(p, 1 - p), axis=1)
            correct = None if y is None else np.all(pred == (y > 0.5), axis=1)
            top = np.argmax(p, axis=1)
            return conf, correct, top
        pred = np.argmax(p, axis=1)
        conf = p[np.arange(len(p)), pred]
        return conf, (None if y is None else pred == y), pred

    def _thresholds(self, conf, correct, pred, y, counts) -> None:
        k = len(self.classes)
        self.threshold_ = precision_threshold(conf, correct, self.target_precision, self.alpha)
        if not math.isfinite(self.threshold_):
            log.warning("no confidence threshold reaches a precision bound of %.2f on the %d out-of-fold predictions "
                        "(accuracy %.2f): %s; label more images", self.target_precision, len(conf),
                        float(np.mean(correct)),
                        "the threshold will come from the calibrated confidences of the images labelled"
                        if self.pool_fallback and not self.multi_label else "nothing will be accepted")
        self.class_thresholds_ = np.full(k, self.threshold_)
        self.threshold_from_ = ["pooled"] * k
        for j in range(k):
            if counts[j] >= self.own_threshold_labels:
                m = pred == j
                t = precision_threshold(conf[m], correct[m], self.target_precision, self.alpha)
                if math.isfinite(t):
                    self.class_thresholds_[j] = t
                    self.threshold_from_[j] = "class"
        # estimates per class from the out-of-fold predictions at the class thresholds
        acc = conf >= self.class_thresholds_[pred]
        pooled = float(correct[acc].mean()) if acc.any() else float("nan")
        self.oof_precision_, self.oof_coverage_ = pooled, float(acc.mean())
        prior = 10.0  # pseudo-counts at the pooled precision: few predictions of a class stay near it
        self.class_est_precision_ = np.zeros(k)
        self.class_est_recall_ = np.zeros(k)
        for j in range(k):
            m = acc & (pred == j)
            base = pooled if math.isfinite(pooled) else self.target_precision
            self.class_est_precision_[j] = (correct[m].sum() + prior * base) / (m.sum() + prior)
            truth_j = (y[:, j] > 0.5) if self.multi_label else (y == j)
            self.class_est_recall_[j] = float((acc & correct & truth_j).sum() / max(1, truth_j.sum()))

    def _suspects(self, p: np.ndarray, y: np.ndarray, paths: list[str]) -> list[dict]:
        if self.multi_label:
            return []
        k = len(self.classes)
        t = np.array([p[y == j, j].mean() if (y == j).any() else 1.0 for j in range(k)])
        above = p >= t[None, :]
        above[np.arange(len(y)), y] = False
        masked = np.where(above, p, -1.0)
        j = masked.argmax(axis=1)
        sus = np.flatnonzero(masked[np.arange(len(y)), j] > p[np.arange(len(y)), y])
        sus = sus[np.argsort(-(p[sus, j[sus]] - p[sus, y[sus]]), kind="stable")]
        return [{"path": paths[i], "given": self.classes[y[i]], "suggested": self.classes[j[i]],
                 "confidence": float(p[i, j[i]]), "given_probability": float(p[i, y[i]])} for i in sus]

    # ------------------------------------------------------------------ using
    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("the AutoLabeler is not fitted: call fit(labeled) first")

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw embeddings ``(N, D)`` -> ``(N, K)`` float64."""
        self._check_fitted()
        x = np.asarray(embeddings, np.float32)
        if x.ndim != 2 or x.shape[1] != self._head[0].coef_.shape[1]:
            raise ValueError(f"embeddings must be (N, {self._head[0].coef_.shape[1]}), got shape {x.shape}")
        return self._probs(self._logits(self._head, l2_normalize(x).astype(np.float64)) / self.temperature_)

    def label(self, images: Any, *, truth: Any = None) -> AutoLabelResult:
        """Labels every image.

        Args:
            images: folders, files, ``@LIST`` files, an embeddings file or an ``(N, D)`` array.
            truth: optional known labels (a label table, ``{path: label}``, or one label per
                row) for the measured precision and recall beside the estimates.

        Raises:
            ValueError: an empty image set.
        """
        self._check_fitted()
        es = self._embed(images)
        if len(es) == 0:
            raise ValueError("no images to label" + (f" ({len(es.errors)} could not be embedded, first: "
                                                     f"{next(iter(es.errors.items()))})" if es.errors else ""))
        x = np.asarray(es.vectors, np.float32)
        p = self.predict_proba(x)
        conf, _, pred = self._decisions(p, None)
        thr, src, est = self._label_thresholds(conf, pred)
        accepted = conf >= thr[pred]
        if self.multi_label:
            margin = 2 * conf - 1
            labels = [[self.classes[j] for j in np.flatnonzero(r >= 0.5)] for r in p]
        else:
            s = np.sort(p, axis=1)
            margin = s[:, -1] - s[:, -2]
            labels = None
        res = AutoLabelResult(paths=list(es.paths), classes=self.classes, label=pred.astype(np.int64),
                              confidence=conf, accepted=accepted, est_precision=est[pred],
                              probabilities=p.astype(np.float32), margin=margin, labels=labels,
                              errors=dict(es.errors), embeddings=x)
        res.classes_report = self._class_report(res, truth, thr, src, est)
        self._last = res
        return res

    def _label_thresholds(self, conf: np.ndarray, pred: np.ndarray):
        """``(thresholds (K,), sources, est. precision (K,))`` for these images: the fitted ones,
        except that classes on a pooled threshold no out-of-fold bound could set (``inf``) get
        the threshold of ``pool_precision_threshold`` over these images' confidences."""
        thr = self.class_thresholds_.copy()
        src = list(self.threshold_from_)
        est = self.class_est_precision_.copy()
        use = np.array([s == "pooled" and not math.isfinite(t) for s, t in zip(src, thr)])
        m = use[pred]
        if self.multi_label or not self.pool_fallback or not m.any():
            return thr, src, est
        t, pooled = pool_precision_threshold(conf[m], self.target_precision)
        acc = m & (conf >= t)
        for j in np.flatnonzero(use):
            thr[j], src[j] = t, "pool"
            aj = acc & (pred == j)
            if aj.any():
                est[j] = float(conf[aj].mean())
            elif math.isfinite(pooled):
                est[j] = pooled
        return thr, src, est

    def _class_report(self, res: AutoLabelResult, truth: Any, thr, src, est) -> list[dict]:
        k = len(self.classes)
        rows = []
        t = None
        if truth is not None and not self.multi_label:
            t = self._truth_indices(truth, res.paths)
        for j in range(k):
            pj = res.label == j
            r = {"class": self.classes[j], "labels": int(self.label_counts_[j]),
                 "threshold": float(thr[j]), "threshold_from": src[j], "est_precision": float(est[j]),
                 "est_recall": float(self.class_est_recall_[j]) if src[j] != "pool" else float("nan"),
                 "predicted": int(pj.sum()), "accepted": int((pj & res.accepted).sum()),
                 "coverage": float((pj & res.accepted).sum() / max(1, pj.sum()))}
            if t is not None:
                known = t >= 0
                a = pj & res.accepted & known
                r["precision"] = float((t[a] == j).mean()) if a.any() else float("nan")
                r["truth"] = int((t == j).sum())
                r["recall"] = float(((t == j) & a).sum() / max(1, (t == j).sum()))
            rows.append(r)
        if t is not None:
            known = t >= 0
            a = res.accepted & known
            res.measured = {"images": int(known.sum()),
                            "precision": float((res.label[a] == t[a]).mean()) if a.any() else float("nan"),
                            "coverage": float(a.sum() / max(1, known.sum())),
                            "accuracy": float((res.label[known] == t[known]).mean()) if known.any() else float("nan")}
        return rows

    def _truth_indices(self, truth: Any, paths: list[str]) -> np.ndarray:
        from .cluster import _read_truth

        vals = _read_truth(truth, paths)
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({str(v) for v in vals if v is not None and str(v) not in index})
        if unknown:
            log.warning("truth names classes the labels do not have (counted as wrong): %s", ", ".join(unknown[:10]))
        return np.asarray([-1 if v is None else index.get(str(v), len(self.classes)) for v in vals], np.int64)

    def review_queue(self, n: int, result: AutoLabelResult | None = None, *, pool_factor: int | None = None,
                     max_candidates: int = 20000) -> ReviewQueue:
        """The ``n`` images to review next (see the module's notes), most uncertain first.

        Args:
            n: queue length.
            result: the ``label`` result to pick from (default: the last one).
            pool_factor: candidates considered per queued image (the most uncertain ones);
                ``None``: every image, up to ``max_candidates`` (the most uncertain beyond that).
                Measured on Fashion-MNIST with the earlier, unweighted rule (README): spreading over
                the whole pool gained most; the weighted rule was measured over the whole pool only.
            max_candidates: bound on the candidates K-Means groups.
        """
        from sklearn.cluster import KMeans

        res = result if result is not None else self._last
        if res is None:
            raise RuntimeError("no labelled images to pick from: call label(images) first")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        n = min(int(n), len(res))
        order = np.argsort(res.margin, kind="stable")
        limit = max_candidates if pool_factor is None else min(max_candidates, pool_factor * n)
        cand = order[:min(len(res), max(n, limit))]
        if len(cand) > n and res.embeddings is not None:
            x = l2_normalize(res.embeddings[cand])
            # uncertainty weights: certain images barely pull the centres (a floor keeps every weight positive)
            w = np.maximum(1.0 - res.margin[cand], 1e-6)
            km = KMeans(n, n_init=1, random_state=self.seed).fit(x, sample_weight=w)
            pick = []
            for c in range(n):
                m = np.flatnonzero(km.labels_ == c)
                if len(m):
                    d = np.einsum("ij,ij->i", x[m] - km.cluster_centers_[c], x[m] - km.cluster_centers_[c])
                    pick.append(cand[m[np.argmin(d)]])
            chosen = set(pick)
            pick += [i for i in cand if i not in chosen][:n - len(pick)]  # empty clusters: next most uncertain
            rows = np.asarray(pick, np.int64)
            rows = rows[np.argsort(res.margin[rows], kind="stable")]
        else:
            rows = cand[:n]
        names = res.label_names()
        return ReviewQueue(paths=[res.paths[i] for i in rows], suggested=[names[i] for i in rows],
                           confidence=res.confidence[rows], margin=res.margin[rows], rows=rows)

    # ------------------------------------------------------------------ export
    def head_parameters(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(W (K, D), b (K,), T)``: calibrated logits are ``(normalize(x) @ W.T + b) / T``."""
        self._check_fitted()
        if self.multi_label:
            w = np.concatenate([m.coef_ for m in self._head], axis=0)
            b = np.concatenate([m.intercept_ for m in self._head])
        else:
            w, b = self._head[0].coef_, self._head[0].intercept_
            if w.shape[0] == 1:  # scikit-learn's binary case: one row for class 1
                w = np.concatenate([-w / 2, w / 2])
                b = np.concatenate([-b / 2, b / 2])
        return np.asarray(w, np.float64), np.asarray(b, np.float64), float(self.temperature_)

    def export(self, path: str | os.PathLike) -> str:
        """Writes backbone and head as one ONNX model: the backbone's embedding tensor is
        L2-normalised (``LpNormalization``), multiplied by the head (``MatMul``, ``Add``), divided
        by the temperature and turned into probabilities (``Softmax``; ``Sigmoid`` for
        multi-label), the one graph output ``probabilities`` ``(N, K)``. The class names and the
        backbone's preprocessing go into the metadata, so ``Classifier(path)`` runs it."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        from ..runtime.session import annotate_model

        self._check_fitted()
        clf = self._classifier()
        emb = clf.embedding_output()
        m = onnx.load_from_string(clf.session.model_bytes)
        w, b, t = self.head_parameters()
        if w.shape[1] != (clf.embedding_dim() or w.shape[1]):
            raise ValueError(f"the head takes {w.shape[1]} features but the model's embedding has "
                             f"{clf.embedding_dim()}: fit with this model's embeddings")
        prefix = "pyimgcls_head_"
        inits = [numpy_helper.from_array((w.T / t).astype(np.float32), prefix + "W"),
                 numpy_helper.from_array((b / t).astype(np.float32), prefix + "b")]
        nodes = [helper.make_node("Flatten", [emb], [prefix + "flat"], axis=1, name=prefix + "flatten"),
                 helper.make_node("LpNormalization", [prefix + "flat"], [prefix + "norm"], axis=1, p=2,
                                  name=prefix + "l2"),
                 helper.make_node("MatMul", [prefix + "norm", prefix + "W"], [prefix + "mm"], name=prefix + "matmul"),
                 helper.make_node("Add", [prefix + "mm", prefix + "b"], [prefix + "logits"], name=prefix + "add"),
                 helper.make_node("Sigmoid" if self.multi_label else "Softmax", [prefix + "logits"], ["probabilities"],
                                  name=prefix + "out", **({} if self.multi_label else {"axis": 1}))]
        src = {p.key: p.value for p in m.metadata_props}
        del m.metadata_props[:]  # the backbone's class names and ids are not the head's
        if "pyimgcls.source" in src:
            m.metadata_props.add(key="pyimgcls.backbone", value=src["pyimgcls.source"])
        m.graph.node.extend(nodes)
        m.graph.initializer.extend(inits)
        del m.graph.output[:]
        m.graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                            ["batch", len(self.classes)]))
        onnx.checker.check_model(m)
        path = os.fspath(path)
        cfg = clf.config
        annotate_model(m.SerializeToString(), path, preprocess=cfg, labels=self.classes, output="probabilities")
        # the head's own facts, for whoever reads the model later
        mm = onnx.load(path)
        mm.metadata_props.add(key="pyimgcls.autolabel", value=json.dumps(
            {"temperature": t, "C": self.C_, "target_precision": self.target_precision,
             "class_thresholds": [float(v) for v in self.class_thresholds_], "multi_label": self.multi_label}))
        onnx.save(mm, path)
        return path
