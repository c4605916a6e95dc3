"""``pyimgcls classify``: classify images (files, folders) and print the top classes."""

from __future__ import annotations

import argparse
import json
import sys

from ._args import (
    PROVIDERS_HELP,
    THREADS_HELP,
    positive_int,
    positive_seconds,
    thread_count,
)

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("classify", help="classify images (files, folders) and print the top classes")
    c.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    c.add_argument("--model", default=None, help="ONNX classifier (default: embedded EfficientNet-Lite0 ImageNet)")
    c.add_argument("--top-k", type=positive_int, default=5)
    c.add_argument("--json", action="store_true", help="one JSON object per line")
    c.add_argument("--batch-size", type=positive_int, default=32)
    c.add_argument("--threads", type=thread_count, default=0, help=THREADS_HELP)
    c.add_argument("--providers", default="auto", help=PROVIDERS_HELP)
    c.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at a reduced DCT scale: faster on large photos, but the top-1 class changes on "
                        "some images (see README)")
    c.add_argument("--item-timeout", type=positive_seconds, default=None, metavar="SECONDS",
                   help="an image that takes longer to read and decode becomes an error row (default: no limit)")
    c.set_defaults(func=run)


def _classification_json(r) -> dict:
    return {
        "source": r.source,
        "label": r.label,
        "label_name": r.label_name,
        "score": r.score,
        "top_k": [{"id": i, "name": n, "p": p} for i, n, p in r.top_k],
        "error": r.error,
    }


def run(args: argparse.Namespace) -> int:
    from ..tasks.classifier import Classifier

    clf = Classifier(args.model, threads=args.threads, providers=args.providers)
    n_err = 0
    width = 0
    rows = []
    for r in clf.predict_iter(args.paths, batch_size=args.batch_size, top_k=args.top_k, fast_decode=args.fast_decode,
                              item_timeout=args.item_timeout):
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
