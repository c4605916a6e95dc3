"""``pyimgcls eval``: a model on a labelled dataset: the numbers, plots and an HTML report."""

from __future__ import annotations

import argparse
import math
import os

from ._args import HelpFormatter, UsageError, float_list, non_negative_int, positive_int, thread_count

__all__ = ["register", "run"]


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {s!r}") from None
    if not math.isfinite(v) or not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {s}")
    return v


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    s = sub.add_parser("eval", parents=parents, formatter_class=HelpFormatter,
                       usage="pyimgcls eval [options] [MODEL] DATA",
                       help="evaluate a model on a labelled dataset: metrics, plots and an HTML report",
                       description="Evaluate a classifier on a labelled dataset (an ImageFolder tree, or a CSV / "
                                   "Parquet table of path,label) and write report.json, the plots and a "
                                   "self-contained report.html into --out. MODEL may be left out: the embedded "
                                   "EfficientNet-Lite0 (or, with --predictions, the score file's own model).")
    s.add_argument("args", nargs="+", metavar="[MODEL] DATA",
                   help="the ONNX model (optional) and the dataset: a folder with one sub-folder per class, or a "
                        ".csv / .tsv / .parquet table of path,label (several label columns or 'a;b' labels: "
                        "multi-label)")
    s.add_argument("--task", choices=("classify", "detect"), default="classify",
                   help="what the model does; detect: DATA is a COCO .json file or a YOLO folder (images/, labels/, "
                        "data.yaml) and MODEL 'faces' (the built-in face detector, the default) or a YOLO ONNX file")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="folder for report.json, confusion_matrix.png, pr_curves.png, f1_threshold.png, "
                        "calibration.png and report.html (default: only the terminal summary)")
    g = s.add_argument_group("evaluation")
    g.add_argument("--predictions", default=None, metavar="FILE",
                   help="evaluate a pyimgcls score output (.parquet / .jsonl / .csv) instead of running the model; "
                        "curves and AP need score --probabilities")
    g.add_argument("--class-map", default=None, metavar="FILE",
                   help="dataset class -> model class: lines 'dataset_class,model_class' or a JSON object")
    g.add_argument("--top-k", type=positive_int, default=5, help="k of the top-k accuracy")
    g.add_argument("--threshold", type=float_list, default=None,
                   help="multi-label score threshold: one value or one per dataset label (comma-separated; "
                        "default 0.5)")
    g.add_argument("--target-precision", type=_fraction, default=0.9,
                   help="precision whose lowest threshold the threshold plot marks")
    g.add_argument("--bootstrap", type=non_negative_int, default=1000,
                   help="bootstrap resamples for the 95%% intervals (0: none; detection: at most 200)")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap")
    g.add_argument("--no-plots", action="store_true", help="write report.json and report.html without plots")
    g.add_argument("--no-html", action="store_true", help="do not write report.html")
    d = s.add_argument_group("detection (--task detect)")
    d.add_argument("--conf", type=_fraction, default=0.001,
                   help="the detector's confidence threshold (0.001, as Ultralytics' val: the curves reach low scores)")
    d.add_argument("--iou", type=_fraction, default=0.7, help="the detector's NMS IoU threshold (YOLO models)")
    d.add_argument("--images-dir", default=None, metavar="DIR",
                   help="COCO: the folder file_name is relative to (default: the JSON file's folder)")
    m = s.add_argument_group("model and device")
    m.add_argument("--model", dest="model_opt", default=None, help="the ONNX model (instead of the first argument)")
    m.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N")
    m.add_argument("--threads", type=thread_count, default=0,
                   help="threads for decoding, preprocessing and inference together (0 = all usable cores)")
    m.add_argument("--batch-size", type=positive_int, default=32, help="images per model call")
    m.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at a reduced DCT scale (faster, answers may change; see README)")
    r = s.add_argument_group("engine (--engine ray: pip install \"pyimgcls[ray]\"; see README, 'Scoring on a Ray cluster')")
    r.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: the model runs on Ray Data actors, the metric states are computed "
                        "on the workers and merged here (the same numbers)")
    r.add_argument("--address", default=None,
                   help="Ray cluster to join (auto, ray://HEAD:10001); default: RAY_ADDRESS, else a local Ray")
    r.add_argument("--concurrency", type=positive_int, default=None,
                   help="Ray actors (default: as many as the cluster's CPUs hold, leaving room for reads)")
    r.add_argument("--actor-cpus", type=float, default=1.0,
                   help="CPUs per Ray actor; also its thread budget (--threads does not apply)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs.eval import evaluate

    pos = list(args.args)
    if len(pos) > 2:
        raise UsageError(f"expected [MODEL] DATA, got {len(pos)} arguments: {' '.join(pos)}")
    model, data = (pos[0], pos[1]) if len(pos) == 2 else (None, pos[0])
    if args.model_opt is not None:
        if model is not None:
            raise UsageError("give the model as the first argument or as --model, not both")
        model = args.model_opt
    if args.task == "detect" and model is None:
        model = "faces"
    for what, p in (("model", None if model == "faces" and args.task == "detect" else model), ("dataset", data), ("predictions", args.predictions),
                    ("class map", args.class_map)):
        if p is not None and not os.path.exists(p):
            raise UsageError(f"{what} not found: {p}")
    engine = {}
    if args.engine == "ray":
        for opt, given in (("--threads", args.threads != 0), ("--predictions", args.predictions is not None)):
            if given:
                raise UsageError(f"{opt} does not apply with --engine ray (the model runs on Ray actors; each "
                                 "actor's thread budget is --actor-cpus)")
        if not math.isfinite(args.actor_cpus) or args.actor_cpus <= 0:
            raise UsageError(f"--actor-cpus must be a positive number, got {args.actor_cpus}")
        opts = {"num_cpus": args.actor_cpus}
        if args.concurrency is not None:
            opts["concurrency"] = args.concurrency
        engine = {"engine": "ray", "address": args.address, "ray_options": opts}
    else:
        for opt, given in (("--address", args.address is not None), ("--concurrency", args.concurrency is not None),
                           ("--actor-cpus", args.actor_cpus != 1.0)):
            if given:
                raise UsageError(f"{opt} applies to --engine ray")
    t = args.threshold or (0.5,)
    thr = t[0] if len(t) == 1 else list(t)
    if args.task == "detect":
        from ..jobs.eval_detect import evaluate_detection

        if args.predictions is not None:
            raise UsageError("--predictions is for classification; a detector is run on the images")
        rep = evaluate_detection(data, model=model, images_dir=args.images_dir, class_map=args.class_map,
                                 conf=args.conf, iou=args.iou, batch_size=args.batch_size, threads=args.threads,
                                 device=None if args.device == "auto" else args.device,
                                 bootstrap=min(args.bootstrap, 200), seed=args.seed, out=args.out,
                                 plots=not args.no_plots, html=not args.no_html, progress=not args.quiet, **engine)
        if not args.quiet:
            print(rep)
        return 0
    rep = evaluate(data, model=model, predictions=args.predictions, task=args.task, out=args.out, top_k=args.top_k,
                   threshold=thr, class_map=args.class_map, batch_size=args.batch_size, threads=args.threads,
                   device=None if args.device == "auto" else args.device, fast_decode=args.fast_decode,
                   bootstrap=args.bootstrap, seed=args.seed, target_precision=args.target_precision,
                   plots=not args.no_plots, html=not args.no_html, progress=not args.quiet, **engine)
    if not args.quiet:
        print(rep)
    return 0
