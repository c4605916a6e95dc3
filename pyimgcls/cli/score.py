"""``pyimgcls score``: score a large image set into CSV / JSONL / Parquet, resumably."""

from __future__ import annotations

import argparse
import logging
import sys

from ._args import HelpFormatter, UsageError, add_detection_options, add_input_options, add_model_options, \
    add_run_options, clamp_top_k, make_classifier, make_detector, positive_int, resolve_inputs, shard_arg

__all__ = ["register", "run"]

log = logging.getLogger("pyimgcls")


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    s = sub.add_parser("score", parents=parents, formatter_class=HelpFormatter,
                       help="score a large image set into CSV / JSONL / Parquet (resumable)",
                       description="Score every image into one output row (see README, 'Output'). A run killed "
                                   "at any moment resumes when run again. Exit status 1 when any input failed.")
    add_input_options(s)
    s.add_argument("--out", required=True, help="output file: .csv, .jsonl or .parquet")
    g = s.add_argument_group("output")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue an interrupted run with the same output")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output")
    g.add_argument("--embeddings", action="store_true", help="also write penultimate-layer features")
    g.add_argument("--probabilities", action="store_true",
                   help="also write every class probability per row (for curves, AP and calibration)")
    g.add_argument("--chunk-size", type=positive_int, default=None,
                   help="rows per durable write (default: the batch size, at least 64)")
    g.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                   help="score only share I of N (a stable hash of each path relative to its input argument), "
                        "so N machines split one job")
    s.add_argument("--task", choices=("classify", "detect"), default="classify",
                   help="classify: one class ranking per image (--model: a classifier); detect: the boxes "
                        "(--model: 'faces' or a YOLO ONNX file, default faces)")
    add_model_options(s, model_help="ONNX model (default: the embedded EfficientNet-Lite0 classifier; with --task "
                                    "detect the built-in face detector, or a YOLO ONNX file)")
    add_detection_options(s)
    add_run_options(s, batch_size=64)
    s.set_defaults(func=run)


CLASSIFY_ONLY = (("embeddings", "--embeddings"), ("probabilities", "--probabilities"))
DETECT_ONLY = (("conf", "--conf"), ("iou", "--iou"), ("max_det", "--max-det"), ("classes", "--classes"))


def _check_task_options(args: argparse.Namespace) -> None:
    wrong = CLASSIFY_ONLY if args.task == "detect" else DETECT_ONLY
    given = [flag for dest, flag in wrong if getattr(args, dest) not in (None, False)]
    if given:
        raise UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --task {args.task}")


def _run_detect(args: argparse.Namespace, inputs: list):
    from ..jobs.detect import score_detections

    det = make_detector(args)
    return score_detections(inputs, detector=det, out=args.out, batch_size=args.batch_size, resume=args.resume,
                            progress=not args.quiet, overwrite=args.overwrite, fast_decode=args.fast_decode,
                            item_timeout=args.item_timeout, chunk_size=args.chunk_size, shard=args.shard,
                            include_hidden=args.include_hidden)


def run(args: argparse.Namespace) -> int:
    from ..jobs.score import OutputExistsError, OutputLockedError

    _check_task_options(args)
    inputs = resolve_inputs(args)
    try:
        if args.task == "detect":
            summary = _run_detect(args, inputs)
        else:
            summary = _run_classify(args, inputs)
    except (OutputExistsError, OutputLockedError) as e:
        raise UsageError(str(e)) from None
    if summary.images == 0 and summary.skipped == 0:
        raise UsageError(f"no images found in {' '.join(str(x) for x in args.paths + args.list)}")
    if not args.quiet:
        print(summary, file=sys.stderr)
    return 1 if summary.errors else 0


def _run_classify(args: argparse.Namespace, inputs: list):
    from ..jobs.score import score

    clf = make_classifier(args)
    top_k = clamp_top_k(clf, args.top_k)
    return score(inputs, classifier=clf, out=args.out, batch_size=args.batch_size, resume=args.resume,
                 progress=not args.quiet, top_k=top_k, embeddings=args.embeddings, overwrite=args.overwrite,
                 fast_decode=args.fast_decode, item_timeout=args.item_timeout, probabilities=args.probabilities,
                 chunk_size=args.chunk_size, shard=args.shard, include_hidden=args.include_hidden)
