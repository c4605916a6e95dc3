"""``pyimgcls info``: a model's inputs, outputs, metadata, preprocessing and providers."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("info", help="show a model's inputs, outputs, metadata, preprocessing and providers")
    i.add_argument("model", nargs="?", default=None, help="ONNX model (default: the embedded model)")
    i.add_argument("--json", action="store_true")
    i.add_argument("--providers", default="auto")
    i.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..runtime.session import Session

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Session(args.model, providers=args.providers)
    d = s.describe()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    i = d["input"]
    print(f"model       {d['source']}")
    print(f"input       {i['name']}: {i['layout']} {i['dtype']}, batch {i['batch']}, size {i['size']}, "
          f"{i['channels']} channels")
    for o in d["outputs"]:
        print(f"output      {o['name']}: {o['shape']} ({d['output_kind']})")
    print(f"classes     {d['classes'] if d['classes'] else 'no labels in metadata'}")
    p = d["preprocess"]
    print(f"preprocess  {p['resize']} {tuple(p['size'])} crop_pct={p['crop_pct']} {p['interpolation']}, "
          f"mean={tuple(p['mean'])} std={tuple(p['std'])}, {p['channel_order']} {p['layout']} {p['dtype']}")
    for a in d["assumed"]:
        print(f"assumed     {a}")
    print(f"providers   {', '.join(d['providers'])} (threads {d['threads']}, spinning "
          f"{'on' if d['allow_spinning'] else 'off'})")
    for k, v in d["metadata"].items():
        if k not in ("pyimgcls.preprocess", "pyimgcls.labels"):
            print(f"metadata    {k} = {v}")
    return 0
