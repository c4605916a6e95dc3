"""``Classifier.predict`` against the plain per-image loop a user writes, per photo size, in one run.

Like for like:
* exact decode (pyimgcls' default) against the plain PIL loop (full decode);
* ``fast_decode=True`` (DCT-scaled JPEG decode) against the same loop with ``Image.draft()``,
  which asks libjpeg for the same kind of reduced decode, down to the same minimum size.

The plain loop: PIL open -> resize shorter side to 256 (bilinear, antialiased as PIL does) ->
centre crop 224 -> NumPy normalise -> ``session.run`` one image at a time, ONNX Runtime on all
cores. Before timing, the top-1 answers are compared where the plain loop is sure (top-1 ahead by
0.1 or more). Beside each ratio: the pipeline efficiency, throughput over the ceiling that the
single-thread stage costs allow on the cores (cores / (decode + preprocess + inference)).

Dataset: PYIMGCLS_BENCH_IMAGES photos per size (default 150; CI uses a handful), made from the
example photos with crops, flips and rescales, JPEG quality 90.
"""

import os
import time

import onnxruntime as ort
import pytest

import pyimgcls
from _helpers.bench import make_photo_jpegs, stage_costs
from _helpers.peers import plain_classify_loop as plain_loop
from pyimgcls import Classifier, read_image
from pyimgcls.runtime.pipeline import decode_min_size
from pyimgcls.runtime.threads import usable_cores

N = max(3, int(os.environ.get("PYIMGCLS_BENCH_IMAGES", "450")) // 3)
CASES = [((640, 480), False), ((1920, 1080), False), ((4000, 3000), False), ((4000, 3000), True)]


@pytest.fixture(scope="module")
def photo_sets(tmp_path_factory):
    out = {}
    for size in {s for s, _ in CASES}:
        out[size] = make_photo_jpegs(tmp_path_factory.mktemp(f"p{size[0]}"), size, N)
    return out


@pytest.mark.parametrize("size, fast_decode", CASES, ids=[f"{w}x{h}-{'fast' if f else 'exact'}" for (w, h), f in CASES])
def test_predict_vs_plain_loop(benchmark, photo_sets, size, fast_decode):
    files = photo_sets[size]
    cores = usable_cores()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cores
    sess = ort.InferenceSession(pyimgcls.default_model_path(), opts, providers=["CPUExecutionProvider"])
    clf = Classifier(threads=cores)
    draft = tuple(reversed(decode_min_size(clf.config))) if fast_decode else None

    # equality first
    ref = plain_loop(files[:12], sess, draft)
    ours = clf.predict(files[:12], fast_decode=fast_decode, top_k=1)
    sure = [(r, o.label) for (r, m), o in zip(ref, ours) if m >= 0.1]
    assert all(o.ok for o in ours)
    assert sum(a == b for a, b in sure) >= len(sure) - 1, sure

    plain_loop(files[:4], sess, draft)  # warm up
    t0 = time.perf_counter()
    plain_loop(files, sess, draft)
    t_plain = time.perf_counter() - t0

    def run():
        t = time.perf_counter()
        res = clf.predict(files, batch_size=32, fast_decode=fast_decode, top_k=1)
        return res, time.perf_counter() - t

    clf.predict(files[:32], batch_size=8, fast_decode=fast_decode)  # warm up (the CPU workers path too)
    res, t_ours = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    assert len(res) == len(files) and all(r.ok for r in res)

    dec, pre, inf = stage_costs(clf, files, fast_decode)
    ceiling = cores / (dec + pre + inf)
    throughput = len(files) / t_ours
    benchmark.extra_info.update({
        "size": f"{size[0]}x{size[1]}", "decode": "fast" if fast_decode else "exact", "images": len(files),
        "plain_loop_img_s": len(files) / t_plain, "pyimgcls_img_s": throughput,
        "speedup_vs_plain_loop": t_plain / t_ours,
        "decode_ms": dec * 1e3, "preprocess_ms": pre * 1e3, "inference_ms": inf * 1e3,
        "ceiling_img_s": ceiling, "pipeline_efficiency": throughput / ceiling,
        "ceiling_vs_plain_loop": ceiling * t_plain / len(files),
    })
    print("\n" + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in benchmark.extra_info.items()))


def test_predict_one_from_eight_threads(benchmark, photo_sets):
    """Aggregate throughput of 8 threads calling ``predict_one`` on one Classifier, against one
    thread doing the same calls; every answer checked against the single-thread answers."""
    import threading

    files = photo_sets[(640, 480)][:16]
    images = [read_image(f) for f in files]
    clf = Classifier(threads=1)
    want = [clf.predict_one(im).label for im in images]
    calls = max(32, len(images) * 2)

    def one_thread():
        t = time.perf_counter()
        for i in range(calls):
            assert clf.predict_one(images[i % len(images)]).label == want[i % len(images)]
        return time.perf_counter() - t

    t1 = min(one_thread() for _ in range(2))
    wrong = []

    def worker(k):
        for i in range(calls // 8):
            j = (k * 3 + i) % len(images)
            if clf.predict_one(images[j]).label != want[j]:
                wrong.append(j)

    def eight():
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        t = time.perf_counter()
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        return time.perf_counter() - t

    t8 = benchmark.pedantic(lambda: min(eight() for _ in range(2)), rounds=1, iterations=1)
    assert not wrong
    # the alternative design, measured in the same run: one lock around the shared buffers
    lock = threading.Lock()
    per_thread = clf._run_one

    def locked_run_one(image):
        with lock:
            return per_thread(image)

    clf._run_one = locked_run_one
    try:
        t8_locked = min(eight() for _ in range(2))
    finally:
        del clf._run_one
    assert not wrong
    n8 = (calls // 8) * 8
    benchmark.extra_info.update({"one_thread_img_s": calls / t1, "eight_threads_img_s": n8 / t8,
                                 "ratio": n8 / t8 / (calls / t1), "eight_threads_locked_img_s": n8 / t8_locked,
                                 "per_thread_vs_lock": t8_locked / t8})
    print("\n" + "  ".join(f"{k}={v:.3f}" for k, v in benchmark.extra_info.items()))
