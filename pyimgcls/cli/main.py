"""The ``pyimgcls`` command line: the parser and the entry point; one module per command
(``classify``, ``detect``, ``score``, ``bench``, ``info``, ``eval``, ``quantize``, ``cluster``, ``autolabel``), each with ``register(subparsers, parents)`` and
``run(args)``.

Exit status: 0 all good; 1 some inputs failed (``classify``, ``detect``, ``score``) or the run failed (disk
full, a device that cannot run, ONNX Runtime errors); 2 usage error (bad options, a missing input
or model); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import autolabel, bench, classify, cluster, detect, info, quantize, score
from . import eval as eval_cmd
from ._args import HelpFormatter, UsageError

__all__ = ["build_parser", "main"]

COMMANDS = (classify, detect, score, bench, info, eval_cmd, quantize, cluster, autolabel)
EPILOG = ("exit status: 0 all good, 1 some inputs failed or the run failed, 2 usage error, 130 interrupted. "
          "See README.md for the output formats and limits.")


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail on standard error (-vv: debug, including ONNX Runtime's log)")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors on standard error: no progress, no summary")
    return p


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    ap = argparse.ArgumentParser(prog="pyimgcls", description="Fast image classification and detection inference.",
                                 epilog=EPILOG, formatter_class=HelpFormatter)
    ap.add_argument("--version", action="version", version=f"pyimgcls {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    for command in COMMANDS:
        command.register(sub, [common])
    return ap


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose >= 2 else \
        logging.INFO if args.verbose == 1 else logging.WARNING
    root = logging.getLogger("pyimgcls")
    root.handlers[:] = []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pyimgcls: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # the progress log of long runs shows without -v (on a terminal a bar replaces it)
    logging.getLogger("pyimgcls.progress").setLevel(logging.ERROR if args.quiet else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        msg = str(e)
        print(f"pyimgcls: interrupted{': ' + msg if msg else ''}", file=sys.stderr)
        return 130
    except (UsageError, FileNotFoundError) as e:  # an input or model that is not there
        print(f"pyimgcls: error: {_describe(e)}", file=sys.stderr)
        return 2
    except ValueError as e:  # an input, model or option that cannot be used
        print(f"pyimgcls: error: {_describe(e)}", file=sys.stderr)
        return 2
    except (OSError, MemoryError, RuntimeError) as e:  # disk full, read-only output, device, ONNX Runtime
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
