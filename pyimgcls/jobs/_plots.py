"""Plots for the jobs' reports, drawn with matplotlib (the ``pyimgcls[plots]`` extra).

Every function returns PNG bytes (for ``_report.HtmlPage.image``) and writes them to ``path`` when
one is given. Figures are made with ``matplotlib.figure.Figure`` and the Agg canvas directly, never
through ``pyplot``: no global state, no display needed, and safe to call from several threads at
once (each call has its own figure).

Without matplotlib, ``have_matplotlib()`` is False and ``MISSING_MESSAGE`` says what to install;
the callers still compute and report every number.
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np

__all__ = ["MISSING_MESSAGE", "have_matplotlib", "confusion_matrix_plot", "most_confused_classes", "pr_curves_plot",
           "threshold_plot", "calibration_plot", "bar_plot", "scatter_plot", "new_figure", "save_figure"]

MISSING_MESSAGE = ("plots need matplotlib: pip install 'pyimgcls[plots]' (or pip install matplotlib); "
                   "the numbers are all in report.json")


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def new_figure(width: float = 6.4, height: float = 4.8):
    """A matplotlib ``Figure`` on its own Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike | None = None) -> bytes:
    """PNG bytes of ``fig`` (also written to ``path`` when given)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = buf.getvalue()
    if path is not None:
        with open(os.fspath(path), "wb") as f:
            f.write(png)
    return png


def most_confused_classes(matrix: np.ndarray, max_classes: int) -> np.ndarray:
    """Indices of at most ``max_classes`` classes that take part in the most errors (the sum of
    their off-diagonal row and column counts), in ascending index order."""
    m = np.asarray(matrix, np.float64)
    if m.shape[0] <= max_classes:
        return np.arange(m.shape[0])
    off = m - np.diag(np.diag(m))
    errors = off.sum(axis=0) + off.sum(axis=1)
    order = np.lexsort((np.arange(m.shape[0]), -errors))
    return np.sort(order[:max_classes])


def confusion_matrix_plot(matrix: np.ndarray, names: Sequence[str], *, path=None, max_classes: int = 30,
                          title: str = "Confusion matrix (rows normalised: recall)") -> bytes:
    """The row-normalised confusion matrix (rows: truth, columns: prediction) as a heat map.

    Args:
        matrix: (C, C) integer counts.
        names: C class names.
        max_classes: above this many classes, only the most-confused ``max_classes`` are drawn
            (rows still normalised by the full row total, so the cells are true fractions).
    """
    m = np.asarray(matrix, np.float64)
    idx = most_confused_classes(m, max_classes)
    totals = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(totals[:, None] > 0, m / totals[:, None], 0.0)
    sub = norm[np.ix_(idx, idx)]
    labels = [str(names[i]) for i in idx]
    n = len(idx)
    side = min(14.0, max(5.0, 0.45 * n + 2.5))
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(sub, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8 if n <= 30 else 6)
    ax.set_yticks(range(n), labels, fontsize=8 if n <= 30 else 6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    shown = title if n == m.shape[0] else f"{title}\n{n} most-confused of {m.shape[0]} classes"
    ax.set_title(shown, fontsize=10)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if sub[i, j] >= 0.005:
                    ax.text(j, i, f"{sub[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if sub[i, j] > 0.5 else "black")
    return save_figure(fig, path)


def pr_curves_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]], *, path=None, max_curves: int = 20,
                   title: str = "Precision-recall per class") -> bytes:
    """Precision against recall, one line per class.

    Args:
        curves: ``(name, precision, recall, ap)`` per class (arrays as
            ``pyimgcls.metrics.precision_recall_curve`` returns them).
        max_curves: above this many, the classes with the lowest AP are drawn (the ones to look at).
    """
    items = list(curves)
    note = ""
    if len(items) > max_curves:
        items = sorted(items, key=lambda c: (c[3], c[0]))[:max_curves]
        note = f" ({max_curves} lowest-AP of {len(curves)})"
    fig = new_figure(7.5, 5.5)
    ax = fig.add_subplot()
    for name, p, r, ap in items:
        ax.step(r, p, where="post", linewidth=1.2, label=f"{name} (AP {ap:.3f})")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title + note, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2 if len(items) > 10 else 1)
    return save_figure(fig, path)


def threshold_plot(thresholds: np.ndarray, precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, *,
                   best_f1: tuple[float, float] | None = None, target: tuple[float, float, float] | None = None,
                   path=None, title: str = "Precision, recall and F1 against the threshold",
                   xlabel: str = "threshold") -> bytes:
    """P, R and F1 as functions of a score threshold, with two marked thresholds.

    Args:
        thresholds, precision, recall, f1: (T,) arrays, thresholds ascending.
        best_f1: ``(threshold, f1)`` of the best F1.
        target: ``(threshold, precision_target, recall)``: the lowest threshold that reaches the
            target precision (``threshold`` infinite when none does; then nothing is marked).
    """
    fig = new_figure(7.0, 4.8)
    ax = fig.add_subplot()
    ax.plot(thresholds, precision, label="precision", linewidth=1.4)
    ax.plot(thresholds, recall, label="recall", linewidth=1.4)
    ax.plot(thresholds, f1, label="F1", linewidth=1.4)
    if best_f1 is not None and np.isfinite(best_f1[0]):
        ax.axvline(best_f1[0], color="k", linestyle="--", linewidth=1,
                   label=f"best F1 {best_f1[1]:.3f} at {best_f1[0]:.3f}")
    if target is not None and np.isfinite(target[0]):
        ax.axvline(target[0], color="tab:red", linestyle=":", linewidth=1.5,
                   label=f"precision >= {target[1]:.2f} at {target[0]:.3f} (recall {target[2]:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)


def calibration_plot(confidence: np.ndarray, accuracy: np.ndarray, counts: np.ndarray, edges: np.ndarray,
                     ece: float, *, path=None, title: str = "Reliability diagram") -> bytes:
    """Reliability diagram: per confidence bin, the observed accuracy against the mean confidence,
    with the bins' sample counts below and the expected calibration error in the title.

    Args:
        confidence, accuracy, counts: (B,) per-bin mean confidence, accuracy and count (empty bins
            have count 0 and are not drawn).
        edges: (B + 1,) bin edges.
    """
    fig = new_figure(6.0, 6.4)
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(gs[0])
    centers = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    ok = counts > 0
    ax.bar(centers[ok], accuracy[ok], width=widths[ok], edgecolor="k", alpha=0.7, label="accuracy")
    ax.bar(centers[ok], confidence[ok] - accuracy[ok], bottom=accuracy[ok], width=widths[ok], color="tab:red",
           alpha=0.25, edgecolor="tab:red", label="gap")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} (ECE {ece:.4f})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax2 = fig.add_subplot(gs[1], sharex=ax)
    ax2.bar(centers, counts, width=widths, edgecolor="k", color="tab:gray")
    ax2.set_yscale("log" if counts.max(initial=0) > 0 else "linear")
    ax2.set_xlabel("confidence")
    ax2.set_ylabel("count")
    return save_figure(fig, path)


def bar_plot(names: Sequence[str], values: Sequence[float], *, path=None, title: str = "", ylabel: str = "",
             horizontal: bool | None = None) -> bytes:
    """A bar chart of named values (horizontal for more than 12 bars, unless told)."""
    names = [str(n) for n in names]
    vals = np.asarray(values, np.float64)
    horizontal = len(names) > 12 if horizontal is None else horizontal
    if horizontal:
        fig = new_figure(7.0, max(3.0, 0.25 * len(names) + 1.2))
        ax = fig.add_subplot()
        ax.barh(range(len(names)), vals, color="tab:blue")
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        fig = new_figure(max(5.0, 0.5 * len(names) + 2), 4.2)
        ax = fig.add_subplot()
        ax.bar(range(len(names)), vals, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x" if horizontal else "y")
    return save_figure(fig, path)


def scatter_plot(xy: np.ndarray, groups: np.ndarray | None = None, *, names: Sequence[str] | None = None, path=None,
                 title: str = "", max_legend: int = 20) -> bytes:
    """A 2-d scatter (e.g. a projection of embeddings), coloured by integer group (-1: grey noise).

    Args:
        xy: (N, 2) float.
        groups: (N,) int group per point, or None.
        names: a name per group id (legend), when given.
    """
    xy = np.asarray(xy, np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must be (N, 2), got shape {xy.shape}")
    fig = new_figure(6.5, 6.0)
    ax = fig.add_subplot()
    if groups is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6)
    else:
        g = np.asarray(groups)
        ids = np.unique(g)
        cmap = __import__("matplotlib").colormaps["tab20"]
        for k, gid in enumerate(ids):
            sel = g == gid
            color = (0.6, 0.6, 0.6, 0.5) if gid < 0 else cmap(k % 20)
            label = (names[gid] if names is not None and 0 <= gid < len(names) else str(gid)) if gid >= 0 else "noise"
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=color, label=label if len(ids) <= max_legend else None)
        if len(ids) <= max_legend:
            ax.legend(fontsize=7, markerscale=3, loc="best")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)
