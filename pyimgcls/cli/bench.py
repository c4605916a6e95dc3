"""``pyimgcls bench``: throughput, latency and per-stage cost of a model."""

from __future__ import annotations

import argparse
import json

from ._args import THREADS_HELP, batch_sizes, positive_seconds, thread_count

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="measure throughput, latency and per-stage cost")
    b.add_argument("--model", default=None)
    b.add_argument("--batch-size", type=batch_sizes, default=[1, 8, 32], help="e.g. 1,8,32")
    b.add_argument("--threads", type=thread_count, default=0, help=THREADS_HELP)
    b.add_argument("--duration", type=positive_seconds, default=3.0, help="seconds per batch size")
    b.add_argument("--images", default=None, help="folder of real images (default: synthetic JPEGs)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--providers", default="auto")
    b.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at a reduced DCT scale: faster on large photos, but the top-1 class changes on "
                        "some images (see README)")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs.bench import run_bench

    res = run_bench(args.model, batch_sizes=args.batch_size, threads=args.threads, duration=args.duration,
                    images=args.images, providers=args.providers, fast_decode=args.fast_decode)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res)
    return 0
