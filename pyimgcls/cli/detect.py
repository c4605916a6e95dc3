"""``pyimgcls detect``: detect objects (faces by default) and print each image's boxes as they come;
``--save DIR`` draws them, ``--out`` writes COCO results, Parquet rows or YOLO label files."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from ._args import DETECT_MODEL_HELP, HelpFormatter, UsageError, add_detection_options, add_input_options, \
    add_model_options, add_run_options, make_detector, resolve_inputs

__all__ = ["register", "run"]

log = logging.getLogger("pyimgcls")


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    c = sub.add_parser("detect", parents=parents, formatter_class=HelpFormatter,
                       help="detect objects (default: faces) and print, draw or save the boxes",
                       description="Detect objects in images and print each one's boxes as soon as it is done: the "
                                   "count and the best --top-k boxes (class, score, x1,y1,x2,y2 in pixels of the "
                                   "EXIF-rotated image). Exit status 1 when any input failed.")
    add_input_options(c, top_k_help="boxes listed per image (--json lists all)")
    add_model_options(c, preprocessing=False, model_default="faces", model_help=DETECT_MODEL_HELP)
    add_detection_options(c)
    add_run_options(c, batch_size=16)
    g = c.add_argument_group("results")
    g.add_argument("--json", action="store_true", help="one JSON object per line (every box) instead of a table")
    g.add_argument("--save", default=None, metavar="DIR",
                   help="write each image with its boxes, class names and scores drawn to DIR (same file name; "
                        "a name used twice in a run gets _2, _3, ...)")
    g.add_argument("--out", default=None, metavar="OUT",
                   help="also write the detections: FILE.json COCO results (with FILE.images.json mapping image "
                        "ids to the inputs), FILE.parquet one row per image, or a folder of YOLO .txt labels")
    g.add_argument("--save-conf", action="store_true", help="YOLO labels: the confidence as a sixth column")
    c.set_defaults(func=run)


def _box_text(d, k: int) -> str:
    x1, y1, x2, y2 = (round(v) for v in d.xyxy[k].tolist())
    return f"{d.labels[k] if d.class_names is not None else d.class_id[k]} {float(d.confidence[k]):.2f} " \
           f"[{x1},{y1},{x2},{y2}]"


def _line(r, top_k: int) -> str:
    if r.error:
        return f"ERROR {r.error}"
    d = r.detections
    n = len(d)
    if n == 0:
        return "0 detections"
    shown = ", ".join(_box_text(d, k) for k in range(min(n, top_k)))
    more = f", ... ({n - top_k} more)" if n > top_k else ""
    return f"{n} detection{'s' if n != 1 else ''}: {shown}{more}"


def _json(r) -> dict:
    d = r.detections if r.error is None else None
    kp = getattr(d, "keypoints", None) if d is not None else None
    dets = []
    if d is not None:
        names = d.labels
        for k in range(len(d)):
            e = {"class_id": int(d.class_id[k]), "class_name": names[k], "score": float(d.confidence[k]),
                 "box": [float(v) for v in d.xyxy[k].tolist()]}
            if kp is not None:
                e["keypoints"] = [[float(x), float(y)] for x, y in kp[k].tolist()]
            dets.append(e)
    return {"source": r.source, "image_size": list(r.image_size) if r.image_size else None,
            "count": None if d is None else len(d), "detections": dets, "error": r.error}


def _input_holding(folder: str, inputs: list) -> str | None:
    """The input (a folder, or a file's own folder) whose images a drawn copy saved in ``folder``
    could replace, if any: ``folder`` is that folder or inside it (folders are walked recursively)."""
    target = os.path.realpath(folder)
    for p in inputs:
        if not isinstance(p, str) or p == "-" or (p.startswith("@") and not os.path.exists(p)):
            continue
        if os.path.isdir(p):
            root = os.path.realpath(p)
            if target == root or target.startswith(root.rstrip(os.sep) + os.sep):
                return p
        elif os.path.exists(p) and target == os.path.realpath(os.path.dirname(os.path.abspath(p))):
            return p
    return None


def run(args: argparse.Namespace) -> int:
    from ..io.sources import iter_items
    from ..jobs.detect import UniqueNames, open_output, save_drawn

    inputs = resolve_inputs(args)
    if args.save and os.path.exists(args.save) and not os.path.isdir(args.save):
        raise UsageError(f"--save must be a folder, got the file {args.save}")
    if args.out and args.save and os.path.abspath(args.out.rstrip("/")) == os.path.abspath(args.save.rstrip("/")):
        raise UsageError("--out and --save must be different folders")
    if args.save:
        inside = _input_holding(args.save, inputs)
        if inside is not None:
            raise UsageError(f"--save {args.save} is inside the input {inside}: the drawn images would replace "
                             "the inputs (same file names); give another folder")
    det = make_detector(args)
    writer = open_output(args.out, det.names, save_conf=args.save_conf) if args.out else None
    names = UniqueNames()
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    items = (it for x in inputs for it in iter_items(x, include_hidden=args.include_hidden))
    results = det.predict_iter(None, items=items, batch_size=args.batch_size, fast_decode=args.fast_decode,
                               item_timeout=args.item_timeout)
    n = n_err = 0
    width = None
    try:
        for r in results:
            n += 1
            if r.error is None and args.save:
                try:
                    save_drawn(r, args.save, names)
                except (OSError, ValueError) as e:  # e.g. the file changed since it was read
                    log.error("%s: not saved: %s", r.source, e)
                    n_err += 1
            n_err += r.error is not None
            if writer is not None:
                writer.add(r)
            if args.json:
                print(json.dumps(_json(r)), flush=True)
                continue
            if width is None:
                width = min(max(len(r.source), 20), 60)
                print(f"{'file':<{width}}  detections", flush=True)
            print(f"{r.source:<{width}}  {_line(r, args.top_k)}", flush=True)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if n == 0:
        if writer is not None:
            writer.abort()
        raise UsageError(f"no images found in {' '.join(str(x) for x in args.paths + args.list) or 'the input'}")
    if writer is not None:
        writer.close()
    if n_err:
        log.warning("%d of %d inputs failed", n_err, n)
    if args.save and not args.quiet:
        print(f"pyimgcls: drawn images in {args.save}", file=sys.stderr)
    return 1 if n_err else 0
