"""The ``pyimgcls`` command line: the parser and the entry point; one module per command
(``classify``, ``score``, ``bench``, ``info``), each with ``register(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import bench, classify, info, score

__all__ = ["build_parser", "main"]

COMMANDS = (classify, score, bench, info)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyimgcls", description="Fast image classification and detection inference.")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "model", "x") is None and args.command == "info":
        from ..tasks.classifier import default_model_path

        args.model = default_model_path()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:  # a model or input that is not there or not usable
        print(f"pyimgcls: error: {_describe(e)}", file=sys.stderr)
        return 2
    except (OSError, MemoryError, RuntimeError) as e:  # disk full, read-only output, ONNX Runtime failures
        print(f"pyimgcls: error: {_describe(e)}", file=sys.stderr)
        return 1


def _describe(e: BaseException) -> str:
    """One line for an exception: ``file: reason`` for OS errors, the message's last line otherwise."""
    if isinstance(e, OSError) and e.strerror:
        where = e.filename if e.filename is not None else ""
        return f"{where}: {e.strerror}" if where else e.strerror
    if isinstance(e, MemoryError):
        return "out of memory" + (f" ({e})" if str(e) else "")
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())

