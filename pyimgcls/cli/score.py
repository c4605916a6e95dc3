"""``pyimgcls score``: score a large image set into CSV / JSONL / Parquet, resumably."""

from __future__ import annotations

import argparse
import sys

from ._args import THREADS_HELP, positive_int, positive_seconds, thread_count

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("score", help="score a large image set into CSV / JSONL / Parquet (resumable)")
    s.add_argument("paths", nargs="+", help="folders (recursive), files, glob patterns or .txt lists of paths")
    s.add_argument("--out", required=True, help="output file: .csv, .jsonl or .parquet")
    s.add_argument("--model", default=None)
    s.add_argument("--top-k", type=positive_int, default=5)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--threads", type=thread_count, default=0, help=THREADS_HELP)
    s.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue an interrupted run with the same output (default: on)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.add_argument("--embeddings", action="store_true", help="also write penultimate-layer features")
    s.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    s.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at a reduced DCT scale: faster on large photos, but the top-1 class changes on "
                        "some images (see README)")
    s.add_argument("--item-timeout", type=positive_seconds, default=None, metavar="SECONDS",
                   help="an image that takes longer to read and decode becomes an error row (default: no limit)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs.score import OutputExistsError, OutputLockedError, score

    try:
        summary = score(args.paths, model=args.model, out=args.out, batch_size=args.batch_size, resume=args.resume,
                        threads=args.threads, progress=not args.quiet, top_k=args.top_k,
                        embeddings=args.embeddings, overwrite=args.overwrite, fast_decode=args.fast_decode,
                        item_timeout=args.item_timeout)
    except (OutputExistsError, OutputLockedError) as e:
        print(f"pyimgcls: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary, file=sys.stderr)
    return 0
