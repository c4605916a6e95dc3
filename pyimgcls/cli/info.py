"""``pyimgcls info``: a model's inputs, outputs, metadata, preprocessing and providers."""

from __future__ import annotations

import argparse
import json
import logging

from ._args import HelpFormatter, UsageError, add_model_options, preprocess_overrides

log = logging.getLogger("pyimgcls")

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    i = sub.add_parser("info", parents=parents, formatter_class=HelpFormatter,
                       help="show a model's inputs, outputs, metadata, preprocessing and providers")
    i.add_argument("model_path", nargs="?", default=None, metavar="MODEL",
                   help="ONNX model (default: the embedded model)")
    add_model_options(i)
    i.add_argument("--json", action="store_true", help="the description as JSON")
    i.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..runtime.session import duplicate_onnxruntime
    from ..tasks.classifier import default_model_path

    if args.model_path is not None:
        if args.model is not None and args.model != args.model_path:
            raise UsageError("give the model once (MODEL or --model)")
        args.model = args.model_path
    if args.model is None:
        args.model = default_model_path()
    problem = duplicate_onnxruntime()
    if problem:
        log.warning("%s", problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = _session(args)
    d = s.describe()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    i = d["input"]
    print(f"model       {d['source']}")
    print(f"runtime     onnxruntime {d['onnxruntime']}, device {d['device']}")
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
    print(f"precision   {_precision_text(d['quantization'])}")
    for k, v in d["metadata"].items():
        if k not in ("pyimgcls.preprocess", "pyimgcls.labels", "pyimgcls.quantization"):
            print(f"metadata    {k} = {v}")
    return 0


def _precision_text(q: dict | None) -> str:
    """One line on how a model was quantized (its ``pyimgcls.quantization`` metadata)."""
    if q is None:
        return "float (not quantized by pyimgcls)"
    if "method" not in q:
        return f"quantized ({q})"
    excl = q.get("exclude_patterns") or q.get("nodes_to_exclude") or []
    n_excl = len(q.get("nodes_to_exclude") or [])
    return (f"int8, quantized by pyimgcls: {q.get('format', 'QDQ')} {q.get('activations', '?')} activations, "
            f"{q.get('weights', '?')} {'per-channel ' if q.get('per_channel') else ''}weights"
            f"{' (reduce_range)' if q.get('reduce_range') else ''}; {q['method']} calibration on "
            f"{q.get('samples', '?')} images; kept float: "
            f"{(', '.join(excl) + f' ({n_excl} nodes)') if excl else 'none'}; "
            + (f"bias-corrected: {bc.get('corrected', '?')} Convs on {bc.get('images', '?')} images; "
               if isinstance(bc := q.get("bias_correction"), dict) else "")
            + f"from fp32 sha256 {str(q.get('source_sha256', '?'))[:12]}")


def _session(args: argparse.Namespace):
    """The model's session, with the command line's device and preprocessing overrides applied."""
    from ..runtime.session import Session

    if args.providers and args.device != "auto":
        raise UsageError("give --device or --providers, not both")
    kw = {"threads": args.threads}
    if args.providers:
        kw["providers"] = args.providers
    else:
        kw["device"] = args.device
    s = Session(args.model, **kw)
    changes = preprocess_overrides(args)
    if changes:
        s.preprocess_config = s.check_preprocess(s.preprocess_config.replace(**changes))
    return s
