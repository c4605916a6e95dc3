"""The HTML page of an ``EvalReport`` (one self-contained file, built with ``_report.HtmlPage``)."""

from __future__ import annotations

import json
import os

from ._report import HtmlPage, Thumb, thumbnail_png

__all__ = ["build_page"]

_HEADLINE = [
    ("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"), ("macro precision", "macro_precision"),
    ("macro recall", "macro_recall"), ("macro F1", "macro_f1"), ("weighted precision", "weighted_precision"),
    ("weighted recall", "weighted_recall"), ("weighted F1", "weighted_f1"), ("top-k accuracy", "top_k_accuracy"),
    ("subset accuracy", "subset_accuracy"), ("Hamming loss", "hamming_loss"), ("micro precision", "micro_precision"),
    ("micro recall", "micro_recall"), ("micro F1", "micro_f1"), ("samples F1", "samples_f1"),
    ("mAP", "map"), ("ROC AUC (macro)", "roc_auc"), ("expected calibration error", "ece"),
    ("maximum calibration error", "mce"), ("mean top-1 confidence", "mean_confidence"),
]

_PLOTS = [
    ("confusion_matrix.png", "Confusion matrix", "Rows: true class, columns: predicted class; each row normalised "
     "to 1 (the diagonal is the recall)."),
    ("pr_curves.png", "Precision-recall curves", "One-vs-rest, from the model's probabilities."),
    ("f1_threshold.png", "Precision, recall and F1 against the threshold", None),
    ("calibration.png", "Calibration", "Accuracy against confidence in equal-width bins; the gap to the diagonal "
     "is the miscalibration."),
]


def build_page(rep, pngs: dict, *, thumbnails: bool = True) -> HtmlPage:
    from .. import __version__

    title = f"pyimgcls eval: {os.path.basename(rep.data.rstrip(os.sep)) or rep.data}"
    page = HtmlPage(title)
    c = rep.counts
    page.heading("Summary", anchor="summary")
    page.key_values([("model", rep.model), ("data", rep.data), ("task", rep.task + (" (multi-label)"
                                                                                   if rep.multi_label else "")),
                     ("images labelled", c["labelled"]), ("images evaluated", c["evaluated"]),
                     ("images not evaluated", c["failed"]), ("classes in the report", len(rep.per_class)),
                     ("pyimgcls", __version__)])
    for n in rep.notes:
        page.note(n)
    rows = []
    headline = _HEADLINE
    if rep.task == "detect":
        from ..metrics import STAT_NAMES

        headline = [("mAP@[.5:.95]" if k == "AP" else k, k) for k in STAT_NAMES]
    for label, key in headline:
        v = rep.metrics.get(key)
        if v is None:
            continue
        if key == "top_k_accuracy":
            label = f"top-{rep.metrics.get('top_k', 5)} accuracy"
        ci = rep.intervals.get("map" if key == "AP" and rep.task == "detect" else key)
        rows.append([label, v, "" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"])
    page.table(["metric", "value", "bootstrap 95% interval"], rows, caption="Headline numbers")
    if rep.intervals:
        page.paragraph(f"Intervals: percentile bootstrap over images, {rep.settings.get('bootstrap')} resamples "
                       f"(seed {rep.settings.get('seed')}); AP intervals from at most 200 resamples.")
    t = rep.threshold_curve
    if t is not None and t.get("best_f1", {}).get("threshold") is not None:
        bf, tp = t["best_f1"], t["target_precision"]
        kv = [("best F1", bf["f1"]), ("at threshold", bf["threshold"]), ("precision there", bf["precision"]),
              ("recall there", bf["recall"])]
        if tp.get("threshold") is not None:
            kv += [(f"lowest threshold with precision >= {tp['target']:.2f}", tp["threshold"]),
                   ("recall there", tp["recall"])]
        else:
            kv += [(f"precision >= {tp['target']:.2f}", "not reached at any threshold")]
        page.heading("Thresholds", anchor="thresholds")
        page.paragraph("Single-label: the top-1 class is accepted when its score is at least the threshold; precision "
                       "is the accuracy of the accepted images, recall the correct accepted images over all images."
                       if t["kind"] == "top1" else
                       "Multi-label: every (image, label) pair with a score at least the threshold is predicted; "
                       "micro-averaged.")
        page.key_values(kv)

    page.heading("Plots", anchor="plots")
    if not pngs:
        page.note("no plots: " + ("matplotlib is not installed (pip install 'pyimgcls[plots]')"
                                  if not _have_mpl() else "nothing to plot"))
    for name, head, cap in _PLOTS:
        if name in pngs:
            if rep.task == "detect" and name == "pr_curves.png":
                cap = "COCO's interpolated precision at 101 recall points, IoU 0.5, all areas, 100 detections."
            page.heading(head, 3)
            page.image(pngs[name], alt=head, caption=cap)

    page.heading("Per class", anchor="per-class")
    if rep.task == "detect":
        page.table(["class", "dataset name", "AP@[.5:.95]", "AP50", "ground-truth boxes",
                    f"predictions >= {rep.settings.get('draw_conf', 0.25):g}"],
                   [[r["name"], ", ".join(d for d in r["dataset_names"] if d != r["name"]), r["ap"], r["ap50"],
                     r["support"], r["predicted"]] for r in rep.per_class],
                   collapsed=len(rep.per_class) > 50, summary=f"{len(rep.per_class)} classes")
        _detect_gallery(page, rep, thumbnails)
        _problems_and_settings(page, rep)
        return page
    cols = ["class", "dataset name", "precision", "recall", "F1", "support", "predicted"]
    have_ap = any("ap" in r for r in rep.per_class)
    if have_ap:
        cols += ["AP", "ROC AUC"]
    if rep.multi_label:
        cols.insert(2, "threshold")
    body = []
    for r in rep.per_class:
        row = [r["name"], ", ".join(d for d in r["dataset_names"] if d != r["name"])]
        if rep.multi_label:
            row.append(r["threshold"])
        row += [r["precision"], r["recall"], r["f1"], r["support"], r["predicted"]]
        if have_ap:
            row += [r.get("ap", float("nan")), r.get("roc_auc", float("nan"))]
        body.append(row)
    page.table(cols, body, collapsed=len(body) > 50, summary=f"{len(body)} classes")

    if rep.gallery:
        page.heading("Worst confusions" if not rep.multi_label else "Worst images", anchor="gallery")
        page.paragraph("The most frequent confusions, each with its most confident mistakes (thumbnail, true "
                       "class, the model's top guesses)." if not rep.multi_label else
                       "The images with the most wrong labels.")
        for g in rep.gallery:
            thumbs = []
            for e in g["examples"]:
                png = None
                if thumbnails:
                    try:
                        png = thumbnail_png(e["path"], 128)
                    except Exception:  # noqa: BLE001 - an image gone since the run shows its text only
                        png = None
                lines = [os.path.basename(e["path"])]
                if rep.multi_label:
                    lines.append("true: " + (", ".join(e["true_labels"]) or "(none)"))
                    lines.append("predicted: " + (", ".join(e["predicted_labels"]) or "(none)"))
                else:
                    lines.append(f"true: {g['true']}")
                lines += [f"{n}: {s:.3f}" for n, s in e["top"]]
                thumbs.append(Thumb(png, lines, title=e["path"]))
            head = (f"{g['true']} \u2192 {g['predicted']} ({g['count']} images)" if not rep.multi_label
                    else g["predicted"])
            page.gallery(thumbs, title=head)

    _problems_and_settings(page, rep)
    return page


def _detect_gallery(page: HtmlPage, rep, thumbnails: bool) -> None:
    from ..io.images import read_image
    from ._report import encode_png, thumbnail
    from .eval_detect import _draw

    if not rep.gallery:
        return
    page.heading("Images", anchor="gallery")
    page.paragraph("Ground truth in green; predictions at or above the drawing threshold with their scores. "
                   "Shown: the images where the two disagree most in count.")
    for g in rep.gallery:
        thumbs = []
        for e in g["examples"]:
            png = None
            if thumbnails:
                try:
                    d = e["draw"]
                    img = _draw(read_image(e["path"]), d["gt_boxes"], d["gt_names"], d["detections"], d["names"])
                    png = encode_png(thumbnail(img, 480))
                except Exception:  # noqa: BLE001 - an image gone since the run shows its text only
                    png = None
            thumbs.append(Thumb(png, [os.path.basename(e["path"]), f"ground truth: {e['true_count']}",
                                      f"predicted: {e['predicted_count']}"], title=e["path"]))
        page.gallery(thumbs, title=f"{g['true']}, {g['predicted']}", size=360)


def _problems_and_settings(page: HtmlPage, rep) -> None:
    c = rep.counts
    page.heading("Problems", anchor="problems")
    if not rep.problems:
        page.paragraph("None: every image of the dataset was labelled, read and evaluated.")
    else:
        kinds = c.get("problems", {})
        page.table(["kind", "count"], [[k, v] for k, v in kinds.items()], caption="Not evaluated, by kind")
        page.table(["kind", "detail"], [[k, d] for k, d in rep.problems[:2000]], collapsed=True,
                   summary=f"all {len(rep.problems)} problems" + (" (first 2000; all in report.json)"
                                                                  if len(rep.problems) > 2000 else ""))
    page.heading("Settings", anchor="settings")
    s = dict(rep.settings)
    mapping = s.pop("class_mapping", {})
    page.key_values([(k, v if not isinstance(v, (list, dict)) else json.dumps(v)) for k, v in s.items()])
    moved = [[d, m] for d, m in mapping.items() if d != m]
    if moved:
        page.table(["dataset class", "model class"], moved, caption="Classes matched by id or class map",
                   collapsed=len(moved) > 20)


def _have_mpl() -> bool:
    from ._plots import have_matplotlib

    return have_matplotlib()
