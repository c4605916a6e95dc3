"""Argument types and option groups shared by the commands, and the code that turns them into a
``Classifier`` and an input list."""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
from typing import Iterator

__all__ = ["positive_int", "positive_seconds", "thread_count", "batch_sizes", "float_list", "image_size_arg",
           "shard_arg", "HelpFormatter", "add_model_options", "add_run_options", "add_input_options",
           "make_classifier", "resolve_inputs", "clamp_top_k", "UsageError", "add_detection_options",
           "make_detector", "class_id_list", "unit_float", "DETECT_MODEL_HELP"]

THREADS_HELP = "threads for decoding, preprocessing and inference together (0 = all usable cores)"
PROVIDERS_HELP = ("ONNX Runtime providers, comma-separated (e.g. CUDAExecutionProvider,CPUExecutionProvider), "
                  "honoured as given; instead of --device")


class UsageError(ValueError):
    """A command line that cannot run (exit status 2): a missing input, conflicting options."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (except for flags and options without one)."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or isinstance(action, argparse._StoreTrueAction):
            return action.help
        return super()._get_help_string(action)


def _int_type(low: int, what: str):
    """An argparse type for an integer in [low, 2^31): ``what`` says which in the error."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None
        if v < low or v > 2**31 - 1:
            raise argparse.ArgumentTypeError(f"must be {what} below 2^31, got {s}")
        return v

    return parse


positive_int = _int_type(1, "a positive integer")
non_negative_int = _int_type(0, "an integer >= 0")
thread_count = _int_type(0, "an integer >= 0 (0 = all usable cores)")


def positive_seconds(s: str) -> float:
    """A finite number of seconds > 0 (``nan`` and ``inf`` would never end a timed loop)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {s!r}") from None
    if not math.isfinite(v) or v <= 0 or v > 86400:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds in (0, 86400], got {s}")
    return v


def batch_sizes(s: str) -> list[int]:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}") from None
    if not vals or min(vals) < 1 or max(vals) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    return vals


def float_list(s: str) -> tuple[float, ...]:
    """``0.5`` or ``0.485,0.456,0.406``: finite numbers."""
    try:
        vals = tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one number or comma-separated numbers, got {s!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {s!r}")
    return vals


def image_size_arg(s: str) -> tuple[int, int]:
    """``224`` (square) or ``H,W`` / ``HxW``."""
    parts = s.lower().replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or H,W, got {s!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or H,W with positive sides, got {s!r}")
    return vals[0], vals[1]


def shard_arg(s: str) -> tuple[int, int]:
    """``I/N``: this machine's share, 0 <= I < N."""
    try:
        i, n = (int(x) for x in s.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {s!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {s!r}")
    return i, n


# ----------------------------------------------------------------------------- option groups
def add_model_options(p: argparse.ArgumentParser, *, preprocessing: bool = True, model_default: str | None = None,
                      model_help: str = "ONNX model (default: the embedded EfficientNet-Lite0, ImageNet-1k)") -> None:
    g = p.add_argument_group("model and device")
    g.add_argument("--model", default=model_default, help=model_help)
    g.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N; an explicit device that cannot run is an "
                        "error (only auto falls back to the CPU)")
    g.add_argument("--providers", default=None, help=PROVIDERS_HELP)
    g.add_argument("--threads", type=thread_count, default=0, help=THREADS_HELP)
    if preprocessing:
        q = p.add_argument_group("preprocessing (overrides what the model declares)")
        q.add_argument("--imgsz", "--size", dest="imgsz", type=image_size_arg, default=None, metavar="SIZE",
                       help="model input size: SIZE for a square, or H,W")
        q.add_argument("--resize", default=None, help="stretch, center_crop or letterbox")
        q.add_argument("--interpolation", default=None,
                       help="nearest, bilinear, bilinear_cv2 (OpenCV uint8 bit-exact), bilinear_aa, area, "
                            "bicubic (OpenCV) or bicubic_aa (Pillow)")
        q.add_argument("--crop-pct", type=float, default=None, help="fraction kept by center_crop, in (0, 1]")
        q.add_argument("--mean", type=float_list, default=None, help="per-channel mean in 0..1 units, e.g. 0.5,0.5,0.5")
        q.add_argument("--std", type=float_list, default=None, help="per-channel std in 0..1 units")


def add_run_options(p: argparse.ArgumentParser, *, batch_size: int) -> None:
    g = p.add_argument_group("running")
    g.add_argument("--batch-size", type=positive_int, default=batch_size, help="images per model call")
    g.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at a reduced DCT scale: faster on large photos, but the top-1 class changes "
                        "on some images (see README)")


def add_input_options(p: argparse.ArgumentParser, *, top_k_help: str = "classes listed per image") -> None:
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="image files, folders (searched recursively), glob patterns, @FILE (a list of paths, one a "
                        "line) or - (paths on standard input)")
    g = p.add_argument_group("inputs")
    g.add_argument("--list", action="append", default=[], metavar="FILE",
                   help="a file listing image paths, one a line (relative to the file); may be repeated")
    g.add_argument("--include-hidden", action="store_true", help="also read hidden files and folders (names with a "
                                                                  "leading dot)")
    g.add_argument("--top-k", type=positive_int, default=5, help=top_k_help)
    g.add_argument("--item-timeout", type=positive_seconds, default=None, metavar="SECONDS",
                   help="an image that takes longer to read and decode becomes an error row (default: no limit)")


def class_id_list(s: str) -> list[int]:
    """``0`` or ``0,2,5``: class ids (integers >= 0)."""
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class ids (integers >= 0), got {s!r}") from None
    if not vals or min(vals) < 0 or max(vals) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated class ids (integers >= 0), got {s!r}")
    return sorted(set(vals))


def unit_float(s: str) -> float:
    """A number in [0, 1] (a threshold)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {s!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {s}")
    return v


DETECT_MODEL_HELP = ("detector: 'faces' (the built-in MTCNN face detector) or a YOLO ONNX file (Ultralytics v5, "
                     "v8/v11 or end-to-end exports)")


def add_detection_options(p: argparse.ArgumentParser) -> None:
    """``--conf``, ``--iou``, ``--max-det``, ``--classes`` (Ultralytics' names); unset means the
    detector's own default (YOLO: conf 0.25, iou 0.7, max-det 300)."""
    g = p.add_argument_group("detection (default: the detector's own; YOLO conf 0.25, iou 0.7, max-det 300)")
    g.add_argument("--conf", type=unit_float, default=None, help="minimum confidence of a detection")
    g.add_argument("--iou", type=unit_float, default=None, help="NMS IoU threshold (a box overlapping a better one "
                                                                 "by more is dropped)")
    g.add_argument("--max-det", type=positive_int, default=None, help="at most this many detections per image "
                                                                        "(1: single-object localization)")
    g.add_argument("--classes", type=class_id_list, default=None, metavar="IDS",
                   help="keep only these class ids, comma-separated (e.g. 0,2)")


# ----------------------------------------------------------------------------- building
def preprocess_overrides(args: argparse.Namespace) -> dict | None:
    changes = {}
    for opt, field in (("imgsz", "size"), ("resize", "resize"), ("interpolation", "interpolation"),
                       ("crop_pct", "crop_pct"), ("mean", "mean"), ("std", "std")):
        v = getattr(args, opt, None)
        if v is not None:
            changes[field] = v[0] if field in ("mean", "std") and len(v) == 1 else v
    return changes or None


def make_classifier(args: argparse.Namespace):
    from ..tasks.classifier import Classifier

    kw = {"threads": args.threads, "preprocess": preprocess_overrides(args)}
    if args.providers:
        if args.device != "auto":
            raise UsageError("give --device or --providers, not both")
        kw["providers"] = args.providers
    else:
        kw["device"] = args.device
    return Classifier(args.model, **kw)


def make_detector(args: argparse.Namespace):
    """``load_detector(--model or "faces", ...)`` with the detection, device and thread options given."""
    from ..tasks import load_detector

    kw = {"conf": args.conf, "iou": args.iou, "max_det": args.max_det, "classes": args.classes,
          "preprocess": preprocess_overrides(args)}
    kw = {k: v for k, v in kw.items() if v is not None}
    model = args.model or "faces"
    if model == "faces":
        if "preprocess" in kw:
            raise UsageError("preprocessing options (--imgsz, --resize, ...) apply to YOLO models, not to 'faces'")
        yolo_only = [flag for key, flag in (("iou", "--iou"), ("classes", "--classes")) if key in kw]
        if yolo_only:
            raise UsageError(f"{' and '.join(yolo_only)} apply to YOLO models, not to 'faces' (one class; MTCNN's "
                             "own NMS thresholds)")
    kw["threads"] = args.threads
    if args.providers:
        if args.device != "auto":
            raise UsageError("give --device or --providers, not both")
        kw["providers"] = args.providers
    elif args.device != "auto":
        kw["device"] = args.device
    return load_detector(model, **kw)


def clamp_top_k(clf, top_k: int) -> int:
    """``--top-k`` at most the model's classes, with a note when it was more."""
    if clf.num_classes and top_k > clf.num_classes:
        import logging

        logging.getLogger("pyimgcls").warning("--top-k %d is more than the model's %d classes: using %d", top_k,
                                              clf.num_classes, clf.num_classes)
        return clf.num_classes
    return top_k


def _stdin_paths() -> Iterator[str]:
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if line.strip():
            yield line


def resolve_inputs(args: argparse.Namespace) -> list:
    """The inputs of a command, checked before any work: a path that does not exist, a pattern that
    matches nothing or a list file that cannot be read stops the command (``UsageError``)."""
    paths = list(args.paths) + [f"@{f}" for f in args.list]
    if not paths:
        raise UsageError("no inputs: give image files, folders, patterns, --list FILE or - for standard input")
    if paths.count("-") > 1:
        raise UsageError("- (standard input) may be given once")
    out: list = []
    for p in paths:
        if p == "-":
            out.append(_stdin_paths())
        elif p.startswith("@") and not os.path.exists(p):
            if not os.path.exists(p[1:]) or os.path.isdir(p[1:]):  # a pipe (<(ls ...), /dev/fd/N) is fine
                raise UsageError(f"list file not found: {p[1:]}")
            out.append(p)
        elif os.path.lexists(p):
            out.append(p)
        elif set("*?[") & set(p):
            if not glob.glob(p, recursive=True):
                raise UsageError(f"no file matches {p}")
            out.append(p)
        else:
            raise UsageError(f"no such file or folder: {p}")
    return out
