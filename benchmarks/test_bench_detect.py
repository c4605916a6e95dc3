"""``Detector.predict`` on 1920x1080 JPEGs against Ultralytics' pipeline, in one run, same threads.

Model: tests/assets/yolo11n_random.onnx (YOLO11n exported by Ultralytics 8.4, random weights,
640x640; see tools/make_yolo_reference.py), ``conf`` = the reference's 0.1 so that images have
boxes. Peers, each on the same ONNX file with the same thread count:

* the twin of Ultralytics' predict (always; tests/_helpers/peers.py ``ultralytics_twin_predict``):
  cv2.imread -> LetterBox with OpenCV -> NumPy -> ``session.run`` one image at a time -> NumPy NMS;
* Ultralytics itself (``YOLO(model).predict(files, rect=False)``), when ``ultralytics`` is
  importable (a tools environment; it is never a dependency of pyimgcls);
* the model-only ceiling: the model alone on already preprocessed batches of the size
  ``Detector`` uses, the faster of one session on all cores and a single-threaded session run
  by one thread per core (as ``Detector``'s CPU batch path runs it), each at batch 1 and 8.

Before timing, the boxes are compared (same class, IoU >= 0.99 for the 10 best boxes of each image).
Dataset: PYIMGCLS_BENCH_IMAGES // 3 photos (default 40; CI uses a handful), made from the example
photos with crops, flips and rescales, JPEG quality 90.
"""

import os
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from _helpers.bench import make_photo_jpegs
from _helpers.peers import ultralytics_twin_predict
from pyimgcls import Detector, preprocess, read_image
from pyimgcls.ops import box_iou
from pyimgcls.runtime.threads import usable_cores

ASSETS = os.path.join(os.path.dirname(__file__), "..", "tests", "assets")
MODEL = os.path.join(ASSETS, "yolo11n_random.onnx")
N = max(4, int(os.environ.get("PYIMGCLS_BENCH_IMAGES", "120")) // 3)
CONF, IOU = 0.1, 0.7
BATCH = 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_photo_jpegs(tmp_path_factory.mktemp("det1080"), (1920, 1080), N)


def _top_match(ours, xyxy, cls, k=10) -> float:
    """Fraction of the peer's ``k`` best boxes with a same-class box of ours at IoU >= 0.99 (or
    corners within 1 px, for boxes clipped to zero area)."""
    want, wcls = xyxy[:k], cls[:k]
    if len(want) == 0:
        return 1.0
    if len(ours) == 0:
        return 0.0
    same = wcls[:, None] == ours.class_id[None, :]
    iou = box_iou(want, ours.xyxy) * same
    corners = np.abs(want[:, None, :] - ours.xyxy[None]).max(axis=2) <= 1.0
    return float(((iou >= 0.99) | (corners & same)).any(axis=1).mean())


def _ultralytics_model():
    try:
        from ultralytics import YOLO
    except ImportError:
        return None
    return YOLO(MODEL, task="detect")


def test_detect_vs_ultralytics(benchmark, files):
    cores = usable_cores()
    det = Detector(MODEL, conf=CONF, iou=IOU, threads=cores)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cores
    sess = ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])
    ul = _ultralytics_model()
    ul_kw = dict(conf=CONF, iou=IOU, imgsz=640, rect=False, verbose=False, batch=1)

    # equality first: the twin, and Ultralytics when it is here
    sample = files[:6]
    ours = det.predict(sample)
    assert all(r.ok for r in ours)
    twin = ultralytics_twin_predict(sample, sess, CONF, IOU)
    assert sum(len(t[0]) for t in twin) > 0
    for r, (xyxy, _, cls) in zip(ours, twin):
        assert _top_match(r.detections, xyxy, cls) == 1.0
    if ul is not None:
        for r, u in zip(ours, ul.predict(sample, **ul_kw)):
            b = u.boxes
            assert _top_match(r.detections, b.xyxy.numpy(), b.cls.numpy().astype(int)) == 1.0

    # warm up every path
    det.predict(files[:4 * BATCH], batch_size=BATCH)  # 4 batches: the CPU workers path and its session too
    ultralytics_twin_predict(files[:2], sess, CONF, IOU)
    if ul is not None:
        list(ul.predict(files[:2], **ul_kw))

    t0 = time.perf_counter()
    ultralytics_twin_predict(files, sess, CONF, IOU)
    t_twin = time.perf_counter() - t0
    t_ul = None
    if ul is not None:
        t0 = time.perf_counter()
        for _ in ul.predict(files, stream=True, **ul_kw):
            pass
        t_ul = time.perf_counter() - t0

    stats: dict = {}

    def run():
        t = time.perf_counter()
        res = list(det.predict_iter(files, batch_size=BATCH, stats=stats))
        return res, time.perf_counter() - t

    res, t_ours = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    assert len(res) == len(files) and all(r.ok for r in res)

    # model-only ceiling: the model alone on inputs already preprocessed, the fastest of one session
    # on all cores and one single-threaded session run by one thread per core (as the CPU batch
    # path runs it), each at batch 1 and at BATCH
    x_all, _ = preprocess([read_image(f) for f in files], det.config, threads=cores)
    one = det.session.single_threaded()

    def model_only(session, bs, workers):
        batches = [x_all[i:i + bs] for i in range(0, len(x_all), bs)]
        session.run(batches[0])
        nxt = iter(batches)
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    x = next(nxt, None)
                if x is None:
                    return
                session.run(x)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    t_model_wide = min(model_only(det.session, bs, 1) for bs in (1, BATCH))
    t_model_workers = min(model_only(one, bs, cores) for bs in (1, BATCH))
    t_model = min(t_model_wide, t_model_workers)

    n = len(files)
    info = {
        "images": n, "threads": cores, "batch": BATCH,
        "pyimgcls_img_s": n / t_ours, "twin_img_s": n / t_twin, "model_only_img_s": n / t_model,
        "model_only_one_session_img_s": n / t_model_wide, "model_only_workers_img_s": n / t_model_workers,
        "speedup_vs_twin": t_twin / t_ours, "of_model_ceiling": t_model / t_ours,
        "decode_ms": stats["decode_s"] / n * 1e3, "preprocess_ms": stats["preprocess_s"] / n * 1e3,
        "inference_ms": stats["inference_s"] / n * 1e3, "postprocess_ms": stats["postprocess_s"] / n * 1e3,
    }
    if t_ul is not None:
        info.update({"ultralytics_img_s": n / t_ul, "speedup_vs_ultralytics": t_ul / t_ours})
    else:
        info["ultralytics"] = "not installed (tools environment only); compared with the twin"
    benchmark.extra_info.update(info)
    print("\n" + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))
