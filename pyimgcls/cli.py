"""The ``pyimgcls`` command line: ``classify``, ``info`` (and more subcommands as they land)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

__all__ = ["main"]


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _classification_json(r) -> dict:
    return {
        "source": r.source,
        "label": r.label,
        "label_name": r.label_name,
        "score": r.score,
        "top_k": [{"id": i, "name": n, "p": p} for i, n, p in r.top_k],
        "error": r.error,
    }


def _cmd_classify(args: argparse.Namespace) -> int:
    from .classifier import Classifier

    clf = Classifier(args.model, threads=args.threads, providers=args.providers)
    n_err = 0
    width = 0
    rows = []
    for r in clf.predict_iter(args.paths, batch_size=args.batch_size, top_k=args.top_k):
        n_err += r.error is not None
        if args.json:
            print(json.dumps(_classification_json(r)), flush=True)
        else:
            rows.append(r)
            width = max(width, len(r.source))
    if not args.json:
        if not rows:
            print("no images found", file=sys.stderr)
            return 1
        width = min(width, 60)
        print(f"{'file':<{width}}  top-{args.top_k} (probability)")
        for r in rows:
            if r.error:
                text = f"ERROR {r.error}"
            else:
                text = ", ".join(f"{n} {p:.1%}" for _, n, p in r.top_k)
            print(f"{r.source:<{width}}  {text}")
    return 1 if n_err else 0


def _cmd_info(args: argparse.Namespace) -> int:
    import warnings

    from .session import Session

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(args.model, providers=args.providers)
    d = s.describe()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    i = d["input"]
    print(f"model       {d['source']}")
    print(f"input       {i['name']}: {i['layout']} {i['dtype']}, batch {i['batch']}, size {i['size']}, "
          f"{i['channels']} channels")
    for o in d["outputs"]:
        print(f"output      {o['name']}: {o['shape']} ({d['output_kind']})")
    print(f"classes     {d['classes'] if d['classes'] else 'no labels in metadata'}")
    p = d["preprocess"]
    print(f"preprocess  {p['resize']} {tuple(p['size'])} crop_pct={p['crop_pct']} {p['interpolation']}, "
          f"mean={tuple(p['mean'])} std={tuple(p['std'])}, {p['channel_order']} {p['layout']} {p['dtype']}")
    for a in d["assumed"]:
        print(f"assumed     {a}")
    print(f"providers   {', '.join(d['providers'])} (threads {d['threads']}, spinning "
          f"{'on' if d['allow_spinning'] else 'off'})")
    for k, v in d["metadata"].items():
        if k not in ("pyimgcls.preprocess", "pyimgcls.labels"):
            print(f"metadata    {k} = {v}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from .scoring import OutputExistsError, score

    try:
        summary = score(args.paths, model=args.model, out=args.out, batch_size=args.batch_size, resume=args.resume,
                        threads=args.threads or 0, progress=not args.quiet, top_k=args.top_k,
                        embeddings=args.embeddings, overwrite=args.overwrite)
    except OutputExistsError as e:
        print(f"pyimgcls: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary, file=sys.stderr)
    return 0


def _batch_sizes(s: str) -> list[int]:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    return vals


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    res = run_bench(args.model, batch_sizes=args.batch_size, threads=args.threads, duration=args.duration,
                    images=args.images, providers=args.providers)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyimgcls", description="Fast image classification and detection inference.")
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="classify images (files, folders) and print the top classes")
    c.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    c.add_argument("--model", default=None, help="ONNX classifier (default: embedded EfficientNet-Lite0 ImageNet)")
    c.add_argument("--top-k", type=_positive_int, default=5)
    c.add_argument("--json", action="store_true", help="one JSON object per line")
    c.add_argument("--batch-size", type=_positive_int, default=32)
    c.add_argument("--threads", type=_positive_int, default=None, help="threads (default: all cores)")
    c.add_argument("--providers", default="auto",
                   help="'auto' or ONNX Runtime providers, comma-separated (e.g. CUDAExecutionProvider,CPUExecutionProvider)")
    c.set_defaults(func=_cmd_classify)

    s = sub.add_parser("score", help="score a large image set into CSV / JSONL / Parquet (resumable)")
    s.add_argument("paths", nargs="+", help="folders (recursive), files, glob patterns or .txt lists of paths")
    s.add_argument("--out", required=True, help="output file: .csv, .jsonl or .parquet")
    s.add_argument("--model", default=None)
    s.add_argument("--top-k", type=_positive_int, default=5)
    s.add_argument("--batch-size", type=_positive_int, default=64)
    s.add_argument("--threads", type=_positive_int, default=None)
    s.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue an interrupted run with the same output (default: on)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.add_argument("--embeddings", action="store_true", help="also write penultimate-layer features")
    s.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    s.set_defaults(func=_cmd_score)

    b = sub.add_parser("bench", help="measure throughput, latency and per-stage cost")
    b.add_argument("--model", default=None)
    b.add_argument("--batch-size", type=_batch_sizes, default=[1, 8, 32], help="e.g. 1,8,32")
    b.add_argument("--threads", type=_positive_int, default=None)
    b.add_argument("--duration", type=float, default=3.0, help="seconds per batch size")
    b.add_argument("--images", default=None, help="folder of real images (default: synthetic JPEGs)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--providers", default="auto")
    b.set_defaults(func=_cmd_bench)

    i = sub.add_parser("info", help="show a model's inputs, outputs, metadata, preprocessing and providers")
    i.add_argument("model", nargs="?", default=None, help="ONNX model (default: the embedded model)")
    i.add_argument("--json", action="store_true")
    i.add_argument("--providers", default="auto")
    i.set_defaults(func=_cmd_info)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "model", "x") is None and args.command == "info":
        from .classifier import default_model_path

        args.model = default_model_path()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"pyimgcls: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
