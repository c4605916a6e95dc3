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
    except (FileNotFoundError, ValueError) as e:
        print(f"pyimgcls: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

