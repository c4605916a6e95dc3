"""``pyimgcls quantize``: an int8 copy of a float ONNX classifier, calibrated on your images."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._args import HelpFormatter, UsageError, positive_int, thread_count

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    q = sub.add_parser("quantize", parents=parents, formatter_class=HelpFormatter,
                       help="make an int8 copy of a float ONNX classifier, calibrated on real images",
                       description="ONNX Runtime static quantization (QDQ, uint8 activations, int8 per-channel "
                                   "weights) after ONNX Runtime's own pre-processing of the graph. The calibration "
                                   "images go through pyimgcls' decode and preprocessing, as inference does. The "
                                   "model's metadata is copied and the recipe recorded (pyimgcls info shows it). "
                                   "Ends with a report: agreement with the float model on held-out images (--eval), "
                                   "accuracy of both (--eval-labels), model-only speed of both.")
    q.add_argument("model_path", metavar="MODEL", help="the float ONNX model")
    q.add_argument("--calibration", required=True, metavar="DATA",
                   help="calibration images: a folder (searched recursively), a file, a pattern or @FILE")
    q.add_argument("--out", required=True, help="the int8 model to write (e.g. MODEL.int8.onnx)")
    q.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"),
                   help="how activation ranges are chosen from the calibration images")
    q.add_argument("--percentile", type=float, default=99.999, help="with --method percentile: the share kept")
    q.add_argument("--samples", type=positive_int, default=256,
                   help="calibration images used (a seeded random choice when there are more; at least 16)")
    q.add_argument("--exclude", default="", metavar="NODES",
                   help="comma-separated node names or shell patterns kept in float (e.g. '/_conv_stem/*,"
                        "/_blocks.[0-2]/*': a whole early region, activations included)")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    q.add_argument("--reduce-range", action="store_true",
                   help="7-bit weights: for CPUs without VNNI, where int8 products can saturate")
    q.add_argument("--eval", default=None, metavar="DATA",
                   help="held-out images for the agreement report (not the calibration images)")
    q.add_argument("--eval-labels", action="store_true",
                   help="--eval is a folder of class sub-folders named by the model's class names or ids: "
                        "report the accuracy of both models too")
    q.add_argument("--eval-limit", type=positive_int, default=1000, help="at most this many --eval images")
    q.add_argument("--seed", type=int, default=0, help="seed of the image choice")
    q.add_argument("--threads", type=thread_count, default=0,
                   help="threads for decoding, preprocessing and inference (0 = all usable cores)")
    q.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    q.add_argument("--json", action="store_true", help="the report as JSON")
    q.set_defaults(func=run)


def _labelled(folder: str, model: str) -> tuple[list[str], list[int]]:
    """Paths and class indices of an ImageFolder tree whose sub-folders are the model's class
    names or class ids."""
    import warnings

    from ..io.datasets import read_image_folder
    from ..runtime.session import Session

    if not os.path.isdir(folder):
        raise UsageError(f"--eval-labels needs --eval to be a folder of class sub-folders, got {folder}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(model, providers=["CPUExecutionProvider"])
    index: dict[str, int] = {}
    for names in (s.class_ids or [], s.labels or []):
        for i, n in enumerate(names):
            index.setdefault(n, i)
    if not index:
        raise ValueError(f"--eval-labels: {model} has no class names or ids in its metadata to match the folders to")
    ds = read_image_folder(folder)
    unknown = [c for c in ds.classes if c not in index]
    if unknown:
        raise ValueError(f"--eval-labels: sub-folders of {folder} that are no class name or id of the model: "
                         f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    return list(ds.paths), [index[ds.classes[k]] for k in ds.labels]


def run(args: argparse.Namespace) -> int:
    from ..jobs.quantize import quantize

    model = args.model_path
    if not os.path.isfile(model):
        raise UsageError(f"model not found: {model}")
    if not os.path.exists(args.calibration) and not args.calibration.startswith("@") \
            and not set("*?[") & set(args.calibration):
        raise UsageError(f"--calibration: no such file or folder: {args.calibration}")
    if args.eval is not None and not os.path.exists(args.eval) and not args.eval.startswith("@"):
        raise UsageError(f"--eval: no such file or folder: {args.eval}")
    if args.eval_labels and args.eval is None:
        raise UsageError("--eval-labels needs --eval")
    if os.path.exists(args.out):
        if os.path.abspath(args.out) == os.path.abspath(model):
            raise UsageError("--out is the model itself; write the int8 copy elsewhere")
        if not args.overwrite:
            raise UsageError(f"--out {args.out} exists; give --overwrite to replace it")
    evaluation, labels = args.eval, None
    if args.eval_labels:
        evaluation, labels = _labelled(args.eval, model)

    def status(msg: str) -> None:
        if not args.quiet:
            print(f"pyimgcls quantize: {msg} ...", file=sys.stderr, flush=True)

    import logging

    ort_log = logging.getLogger()  # ONNX Runtime's quantizer logs through the root logger
    level = ort_log.level
    ort_log.setLevel(logging.ERROR if args.verbose < 2 else logging.DEBUG)
    try:
        rep = quantize(model, args.calibration, args.out, method=args.method, samples=args.samples, seed=args.seed,
                       nodes_to_exclude=[n.strip() for n in args.exclude.split(",") if n.strip()],
                       per_channel=not args.per_tensor, reduce_range=args.reduce_range, percentile=args.percentile,
                       evaluation=evaluation, eval_labels=labels, eval_limit=args.eval_limit, threads=args.threads,
                       status=status)
    finally:
        ort_log.setLevel(level)
    print(json.dumps(rep.to_dict(), indent=2) if args.json else rep)
    return 0
