"""NMS and YOLO decoding against OpenCV (single thread; clustered, detector-like boxes)."""

import cv2
import numpy as np
import pytest

from pyimgcls import ops


def clustered(n, n_classes=80, seed=0, scale=640.0):
    """Raw-detector-like candidates: ~50 jittered boxes per object, objects of many sizes."""
    rng = np.random.default_rng(seed)
    n_obj = max(1, n // 50)
    centres = rng.uniform(0.05, 0.95, (n_obj, 2)) * scale
    sizes = rng.uniform(0.02, 0.4, (n_obj, 2)) * scale
    k = rng.integers(0, n_obj, n)
    c = centres[k] + rng.normal(0, 0.1, (n, 2)) * sizes[k]
    s = sizes[k] * rng.uniform(0.8, 1.25, (n, 2))
    boxes = np.concatenate([c - s / 2, c + s / 2], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    obj_class = rng.integers(0, n_classes, n_obj)
    classes = obj_class[k]
    return boxes, scores, classes


def _cv2_nms(xywh, scores, thr):
    return np.asarray(cv2.dnn.NMSBoxes(xywh, scores, 0.0, thr)).reshape(-1)


@pytest.mark.parametrize("n", [1000, 20000])
def test_nms_pyimgcls(benchmark, n):
    boxes, scores, _ = clustered(n)
    benchmark.group = f"nms-{n}"
    xywh = ops.box_convert(boxes, "xyxy", "xywh")
    ours = ops.nms(boxes, scores, 0.5)
    assert set(ours.tolist()) == set(_cv2_nms(xywh, scores, 0.5).tolist())  # same kept set
    benchmark(ops.nms, boxes, scores, 0.5)


@pytest.mark.parametrize("n", [1000, 20000])
def test_nms_cv2(benchmark, n):
    boxes, scores, _ = clustered(n)
    benchmark.group = f"nms-{n}"
    xywh = ops.box_convert(boxes, "xyxy", "xywh")
    benchmark.pedantic(_cv2_nms, (xywh, scores, 0.5), rounds=5 if n > 5000 else 50, warmup_rounds=1)


def test_batched_nms_pyimgcls(benchmark):
    boxes, scores, classes = clustered(20000)
    benchmark.group = "batched-nms-20000-80cls"
    xywh = ops.box_convert(boxes, "xyxy", "xywh")
    ref = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, scores, classes.astype(np.int32), 0.0, 0.5)).reshape(-1)
    ours = ops.batched_nms(boxes, scores, classes, 0.5, threads=1)
    assert set(ours.tolist()) == set(ref.tolist())
    benchmark(ops.batched_nms, boxes, scores, classes, 0.5, threads=1)


def test_batched_nms_cv2(benchmark):
    boxes, scores, classes = clustered(20000)
    benchmark.group = "batched-nms-20000-80cls"
    xywh = ops.box_convert(boxes, "xyxy", "xywh")
    cls32 = classes.astype(np.int32)
    benchmark.pedantic(cv2.dnn.NMSBoxesBatched, (xywh, scores, cls32, 0.0, 0.5), rounds=10, warmup_rounds=1)


# ----------------------------------------------------------------------------- YOLOv8 output decode
@pytest.fixture(scope="module")
def v8_output():
    """(8, 84, 8400) like a YOLOv8 head at conf 0.001: boxes around objects, peaky class scores."""
    rng = np.random.default_rng(0)
    out = np.empty((8, 84, 8400), np.float32)
    for b in range(8):
        boxes, _, classes = clustered(8400, seed=b)
        cx = ops.box_convert(boxes, "xyxy", "cxcywh")
        out[b, :4] = cx.T
        cls = (rng.random((80, 8400)) ** 6 * 0.02).astype(np.float32)
        cls[classes, np.arange(8400)] = rng.random(8400) ** 2
        out[b, 4:] = cls
    return out


def _numpy_cv2_decode(out, conf=0.001, iou=0.7, max_det=300):
    """What a hand-written pipeline does: NumPy threshold + cv2.dnn.NMSBoxesBatched per image."""
    res = []
    for o in out:
        scores_all = o[4:]
        cls = scores_all.argmax(0)
        score = scores_all[cls, np.arange(o.shape[1])]
        keep = score > conf
        cx, cy, w, h = o[:4, keep]
        xywh = np.stack([cx - w / 2, cy - h / 2, w, h], 1)
        idx = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, score[keep], cls[keep].astype(np.int32), conf, iou)).reshape(-1)
        idx = idx[np.argsort(-score[keep][idx], kind="stable")][:max_det]
        res.append((xywh[idx], score[keep][idx], cls[keep][idx]))
    return res


def test_decode_yolo_pyimgcls(benchmark, v8_output):
    benchmark.group = "decode-yolo-v8-8x84x8400"
    dets = ops.decode_yolo(v8_output, layout="v8", conf_threshold=0.001, iou_threshold=0.7, threads=1)
    ref = _numpy_cv2_decode(v8_output)
    for d, (_, s, c) in zip(dets, ref):
        assert len(d) == len(s)
        np.testing.assert_allclose(np.sort(d.confidence), np.sort(s))
    benchmark(ops.decode_yolo, v8_output, layout="v8", conf_threshold=0.001, iou_threshold=0.7, threads=1)


def test_decode_yolo_numpy_cv2(benchmark, v8_output):
    benchmark.group = "decode-yolo-v8-8x84x8400"
    benchmark.pedantic(_numpy_cv2_decode, (v8_output,), rounds=5, warmup_rounds=1)
