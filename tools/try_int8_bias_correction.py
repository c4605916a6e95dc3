"""Empirical bias correction of an int8 (QDQ) copy of the embedded model, and its held-out
agreement with fp32 before and after. ``bias_correct`` is the last step of the shipped recipe
(``tools/make_int8_model.py``); this script tries it on the variants of ``scan_int8_exclusions.py``.

    python tools/scan_int8_exclusions.py --work /tmp/int8-scan --only "all-int8,only block 0 float"
    python tools/scan_int8_exclusions.py --work /tmp/int8-scan --eval-seed 1 --only "all-int8,only block 0 float"
    python tools/try_int8_bias_correction.py --work /tmp/int8-scan --model "only block 0 float" \\
        --nodes '/_conv_stem|/_blocks\\.[1-2]/'

For each int8 Conv whose name matches ``--nodes`` (a regular expression), in graph order: the mean
over ``--images`` calibration crops (the calibration half of ``tools/make_int8_model.py``'s photos)
of each output channel, before requantization, in the int8 model and in the float model (ONNX
Runtime's pre-processed graph); the difference is taken off the Conv's int32 bias (in units of its
scale, input scale x weight scale). Conv by Conv, each measured after the ones before it were
corrected. Only bias values change: the graph, and so the speed, stay those of the model given.
Quantization shifts the mean of the early layers' outputs (block 0's project Conv: a mean shift per
channel of 0.27 against a mean |error| of 0.39), and ONNX Runtime's quantizer does not correct it.

Evaluation: the held-out crops cached by ``tools/scan_int8_exclusions.py`` in ``--work`` (both
draws when both are there).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def channel_means(model, names: list[str], x: np.ndarray, threads: int) -> list[np.ndarray]:
    """The mean of each channel of the tensors ``names`` (exposed as outputs) over the batch ``x``."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    for nm in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(nm, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    acc, cnt = [0.0] * len(names), [0] * len(names)
    for i in range(0, len(x), 16):
        for k, v in enumerate(s.run(None, {s.get_inputs()[0].name: x[i:i + 16]})):
            acc[k] = acc[k] + v.astype(np.float64).sum(axis=(0, 2, 3))
            cnt[k] += v.shape[0] * v.shape[2] * v.shape[3]
    return [a / c for a, c in zip(acc, cnt)]


def bias_correct(q, prep, x: np.ndarray, pattern: str, threads: int = 2) -> list[tuple[str, float, float]]:
    """Corrects ``q`` (an ``onnx.ModelProto``, QDQ) in place; returns (Conv, mean |shift|, max |shift|)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in q.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    float_out = {n.name: n.output[0] for n in prep.graph.node if n.op_type == "Conv"}
    convs = [n for n in q.graph.node if n.op_type == "Conv" and re.match(pattern, n.name) and len(n.input) > 2
             and n.input[0].endswith("_DequantizeLinear_Output") and n.input[2] in producer
             and producer[n.input[2]].op_type == "DequantizeLinear"]
    if not convs:
        raise SystemExit(f"no int8 Conv matches {pattern!r}")
    ref = channel_means(prep, [float_out[n.name] for n in convs], x, threads)
    done = []
    for k, n in enumerate(convs):
        d = channel_means(q, [n.output[0]], x, threads)[0] - ref[k]
        dq = producer[n.input[2]]
        b_init, s_init = inits[dq.input[0]], inits[dq.input[1]]
        b = numpy_helper.to_array(b_init).astype(np.int64)
        scale = numpy_helper.to_array(s_init).astype(np.float64)
        b_init.CopyFrom(numpy_helper.from_array(
            np.clip(b - np.round(d / scale), -2**31, 2**31 - 1).astype(np.int32), b_init.name))
        done.append((n.name, float(np.abs(d).mean()), float(np.abs(d).max())))
        print(f"{n.name:<36} mean shift taken off: |mean| {done[-1][1]:.4f}, max {done[-1][2]:.4f}", flush=True)
    return done


def main() -> int:
    import onnx

    import pyimgcls
    from make_int8_model import dataset
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from pyimgcls.jobs.quantize import _run_all, compare_outputs, load_images
    from pyimgcls.runtime.session import Session
    from scan_int8_exclusions import slug

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="tools/scan_int8_exclusions.py's --work folder")
    ap.add_argument("--model", required=True, help="a variant of scan_int8_exclusions.py (its file in --work)")
    ap.add_argument("--nodes", required=True, help="regular expression of the Conv names to correct")
    ap.add_argument("--images", type=int, default=128, help="calibration crops for the means")
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    src = os.path.join(args.work, slug(args.model) + ".onnx")
    if not os.path.exists(src):
        raise SystemExit(f"{src} is not there: run tools/scan_int8_exclusions.py --only {args.model!r} first")
    cal, _, _, _ = dataset(100, 0)
    cfg = Session(pyimgcls.default_model_path(), providers=["CPUExecutionProvider"]).preprocess_config
    x, _, _ = load_images(cal, cfg, limit=args.images, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        prep_path = os.path.join(tmp, "prep.onnx")
        quant_pre_process(pyimgcls.default_model_path(), prep_path, skip_symbolic_shape=True)
        prep = onnx.load(prep_path)
    q = onnx.load(src)
    bias_correct(q, prep, x, args.nodes, args.threads)
    out = args.out or os.path.join(args.work, slug(args.model) + ".bc.onnx")
    onnx.save(q, out)
    for tag in ("100_0", "100_0_ev1"):
        px, pl = os.path.join(args.work, f"ev_{tag}.npy"), os.path.join(args.work, f"ev_{tag}_fp32.npy")
        if not os.path.exists(pl):
            continue
        xe, ref = np.load(px), np.load(pl)
        for what, path in (("before", src), ("bias-corrected", out)):
            a = compare_outputs(ref, _run_all(Session(path, providers=["CPUExecutionProvider"],
                                                      threads=args.threads), xe))
            print(f"held-out {tag:<10} {what:<15} top-1 {a.top1_agreement:.2%}  confident {a.confident_agreement:.2%} "
                  f"of {a.confident_images}  top-5 {a.top5_containment:.2%}  mean |dp| {a.mean_abs_prob_diff:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
