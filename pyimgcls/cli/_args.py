"""Argument types shared by the commands."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "positive_seconds", "thread_count", "batch_sizes", "PROVIDERS_HELP", "THREADS_HELP"]

THREADS_HELP = "threads for decoding, preprocessing and inference together (0 = all usable cores)"
PROVIDERS_HELP = "'auto' or ONNX Runtime providers, comma-separated (e.g. CUDAExecutionProvider,CPUExecutionProvider)"


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s!r}") from None
    if v < 1 or v > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer below 2^31, got {s}")
    return v


def positive_seconds(s: str) -> float:
    """A finite number of seconds > 0 (``nan`` and ``inf`` would never end a timed loop)."""
    import math

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


def thread_count(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (0 = all usable cores), got {s!r}") from None
    if v < 0 or v > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (0 = all usable cores), got {s}")
    return v
