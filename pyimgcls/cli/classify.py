"""``pyimgcls classify``: classify images (files, folders) and print the top classes as they come."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ._args import HelpFormatter, UsageError, add_input_options, add_model_options, add_run_options, \
    clamp_top_k, make_classifier, resolve_inputs

__all__ = ["register", "run"]

log = logging.getLogger("pyimgcls")


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    c = sub.add_parser("classify", parents=parents, formatter_class=HelpFormatter,
                       help="classify images (files, folders) and print the top classes",
                       description="Classify images and print each one's top classes as soon as it is done. "
                                   "Exit status 1 when any input failed.")
    add_input_options(c)
    add_model_options(c)
    add_run_options(c, batch_size=32)
    c.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
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


def _bar(args: argparse.Namespace, inputs: list):
    """A progress bar on standard error when it is a terminal and the input is large."""
    if args.quiet or not sys.stderr.isatty():
        return None
    import os
    import threading

    from tqdm import tqdm

    from ..io.sources import iter_items

    bar = tqdm(total=None, unit="img", dynamic_ncols=True, desc="pyimgcls classify", file=sys.stderr, leave=False,
               disable=True)
    countable = all(isinstance(x, str) and (os.path.isdir(x) or x.startswith("@")) for x in inputs)

    def count() -> None:
        n = sum(1 for _ in iter_items(inputs, include_hidden=args.include_hidden))
        if n >= 200:  # large: show it
            bar.disable = False
            bar.total = n
            bar.refresh()

    if countable:
        threading.Thread(target=count, name="pyimgcls-count", daemon=True).start()
    return bar


def run(args: argparse.Namespace) -> int:
    inputs = resolve_inputs(args)
    clf = make_classifier(args)
    top_k = clamp_top_k(clf, args.top_k)
    from ..io.sources import iter_items

    items = (it for x in inputs for it in iter_items(x, include_hidden=args.include_hidden))
    results = clf.predict_iter(None, items=items, batch_size=args.batch_size, top_k=top_k,
                               fast_decode=args.fast_decode, item_timeout=args.item_timeout)
    bar = _bar(args, inputs)

    def emit(line: str) -> None:
        if bar is not None and not bar.disable:
            bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    n = n_err = 0
    width = None
    header = f"top-{top_k} (probability)"
    for r in results:
        n += 1
        n_err += r.error is not None
        if bar is not None:
            bar.update(1)
        if args.json:
            emit(json.dumps(_classification_json(r)))
            continue
        if width is None:  # set by the first path; later rows stream without waiting
            width = min(max(len(r.source), 20), 60)
            emit(f"{'file':<{width}}  {header}")
        text = f"ERROR {r.error}" if r.error else ", ".join(f"{nm} {p:.1%}" for _, nm, p in r.top_k)
        emit(f"{r.source:<{width}}  {text}")
    if bar is not None:
        bar.close()
    if n == 0:
        raise UsageError(f"no images found in {' '.join(str(x) for x in args.paths + args.list) or 'the input'}")
    if n_err:
        log.warning("%d of %d inputs failed", n_err, n)
    return 1 if n_err else 0
