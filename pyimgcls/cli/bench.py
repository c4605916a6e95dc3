"""``pyimgcls bench``: latency, throughput and per-stage cost of a model on this machine."""

from __future__ import annotations

import argparse
import json
import sys

from ._args import HelpFormatter, add_model_options, batch_sizes, non_negative_int, positive_int, \
    positive_seconds

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    b = sub.add_parser("bench", parents=parents, formatter_class=HelpFormatter,
                       help="measure latency, throughput and per-stage cost",
                       description="Latency is one batch with the stages (decode, preprocess, inference, "
                                   "post-process) one after the other; throughput runs them overlapped, as predict "
                                   "and score do.")
    add_model_options(b)
    b.add_argument("--batch-size", type=batch_sizes, default=[1, 8, 32], help="batch sizes, e.g. 1,8,32")
    b.add_argument("--duration", type=positive_seconds, default=3.0, help="seconds per batch size")
    b.add_argument("--warmup", type=non_negative_int, default=3, help="untimed runs per batch size (0 or more)")
    b.add_argument("--iterations", type=positive_int, default=30,
                   help="least number of latency samples per batch size (the run takes longer if needed)")
    b.add_argument("--model-only", action="store_true",
                   help="time the model alone on a prepared batch: the ceiling without decoding and preprocessing")
    b.add_argument("--images", default=None, help="folder of real images (default: synthetic JPEGs)")
    b.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at a reduced DCT scale (answers differ a little; see README)")
    b.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                   help="int8: the embedded model's int8 copy, and the fp32 model measured in the same run for "
                        "the ratios")
    b.add_argument("--json", action="store_true", help="the report as JSON")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs.bench import run_bench
    from ._args import UsageError, preprocess_overrides

    if args.providers and args.device != "auto":
        raise UsageError("give --device or --providers, not both")

    def status(msg: str) -> None:
        if not args.quiet:
            print(f"pyimgcls bench: {msg} ...", file=sys.stderr, flush=True)

    res = run_bench(args.model, batch_sizes=args.batch_size, threads=args.threads, duration=args.duration,
                    images=args.images, providers=args.providers or "auto", device=args.device,
                    fast_decode=args.fast_decode, model_only=args.model_only, warmup=args.warmup,
                    iterations=args.iterations, preprocess=preprocess_overrides(args), status=status,
                    precision=args.precision)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res)
    return 0
