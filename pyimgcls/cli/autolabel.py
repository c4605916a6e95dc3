"""``pyimgcls autolabel``: fit a calibrated head on a few labels, label the rest, queue the
uncertain ones for review."""

from __future__ import annotations

import argparse
import math
import os
import sys

from ._args import HelpFormatter, UsageError, add_model_options, make_classifier, positive_int

__all__ = ["register", "run"]


def _precision(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {s!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {s}")
    return v


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    s = sub.add_parser("autolabel", parents=parents, formatter_class=HelpFormatter,
                       help="label images from a few labelled ones, with a confidence, and queue some for review",
                       description="Fit a logistic-regression head (regularisation by cross-validation, temperature "
                                   "calibration) on the labelled images' embeddings, label every image of --images, "
                                   "accept the labels whose class reaches --target-precision (a conservative bound "
                                   "from out-of-fold predictions), and write a review queue. Fill in the queue's "
                                   "label column and pass it as a second --labeled to run the loop again.")
    s.add_argument("--labeled", action="append", required=True, metavar="LABELS",
                   help="label table (CSV / Parquet: path,label) or class-per-folder tree; repeat to add reviewed "
                        "labels (a later file wins)")
    s.add_argument("--images", nargs="+", required=True, metavar="DATA",
                   help="images to label: folders, files, @LIST files, or an embeddings file")
    s.add_argument("--target-precision", type=_precision, default=0.95)
    s.add_argument("--review", type=positive_int, default=100, metavar="N", help="review queue length")
    s.add_argument("--out", default="autolabel.csv", help="labels: path, label, confidence, status, est_precision")
    s.add_argument("--truth", default=None, metavar="FILE",
                   help="known labels of --images: measured precision and recall beside the estimates")
    s.add_argument("--export", default=None, metavar="MODEL.onnx", help="write backbone + head as one ONNX model")
    s.add_argument("--cache", default=None, metavar="DIR", help="embedding cache (default: OUT.embcache)")
    s.add_argument("--seed", type=int, default=0)
    add_model_options(s)
    s.add_argument("--batch-size", type=positive_int, default=32, help="images per model call")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs.autolabel import AutoLabeler

    for f in args.labeled + [x for x in args.images if not x.startswith("@")] + ([args.truth] if args.truth else []):
        if not os.path.exists(f):
            raise UsageError(f"no such file or folder: {f}")
    out = args.out
    cache = args.cache or out + ".embcache"
    al = AutoLabeler(classifier=make_classifier(args), target_precision=args.target_precision, cache=cache,
                     seed=args.seed, batch_size=args.batch_size)
    al.fit(args.labeled if len(args.labeled) > 1 else args.labeled[0])
    images = args.images[0] if len(args.images) == 1 else list(args.images)
    res = al.label(images, truth=args.truth)
    res.write(out)
    stem = os.path.splitext(out)[0]
    q = al.review_queue(args.review, res)
    q.write_csv(stem + ".review.csv")
    q.write_html(stem + ".review.html")
    if args.export:
        al.export(args.export)
    if not args.quiet:
        print(f"head: C={al.C_:g}, temperature {al.temperature_:.3f}, out-of-fold accuracy {al.oof_accuracy_:.3f}, "
              f"ECE {al.ece_before_:.3f} -> {al.ece_after_:.3f} calibrated; pooled threshold {al.threshold_:.3f} for "
              f"precision >= {al.target_precision:g} (bound at {1 - al.alpha:.0%})"
              + ("" if math.isfinite(al.threshold_) or "pool" not in {r["threshold_from"] for r in res.classes_report}
                 else "; from the labelled images' calibrated confidences instead (threshold_from 'pool')"))
        print(res.report_text())
        if al.suspects_:
            print(f"{len(al.suspects_)} starting labels look wrong (out-of-fold prediction confidently disagrees):")
            for s in al.suspects_[:20]:
                print(f"  {s['path']}: labelled {s['given']}, looks like {s['suggested']} ({s['confidence']:.2f})")
        print(f"-> {out}, review queue {stem}.review.csv / .html" + (f", model {args.export}" if args.export else ""),
              file=sys.stderr)
    return 1 if res.errors else 0
