"""Argument types shared by the commands."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "thread_count", "batch_sizes", "PROVIDERS_HELP", "THREADS_HELP"]

THREADS_HELP = "threads for decoding, preprocessing and inference together (0 = all usable cores)"
PROVIDERS_HELP = "'auto' or ONNX Runtime providers, comma-separated (e.g. CUDAExecutionProvider,CPUExecutionProvider)"


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def batch_sizes(s: str) -> list[int]:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    return vals


def thread_count(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (0 = all usable cores), got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (0 = all usable cores), got {s}")
    return v
