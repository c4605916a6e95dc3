"""Direct calls of the private native module ``pyimgcls._core`` for the boundary tests.

``jobs()``: valid calls of every GIL-releasing binding, each returning a comparable result, for the
threading test.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _core():
    from pyimgcls import _core

    return _core


# --- a small valid COCO problem: 2 images, 3 ground truths, 3 detections, categories 1 and 2 ---

def coco_args(**changes) -> dict:
    a = dict(
        gt_begin=np.array([0, 2, 3], np.int64),
        gt_box=np.array([[10, 10, 20, 20], [50, 50, 30, 40], [0, 0, 40, 40]], np.float64).reshape(-1),
        gt_cat=np.array([1, 2, 1], np.int64),
        gt_crowd=np.zeros(3, np.uint8),
        gt_area=np.array([400.0, 1200.0, 1600.0]),
        gt_id=np.array([1, 2, 3], np.int64),
        dt_begin=np.array([0, 1, 3], np.int64),
        dt_box=np.array([[11, 10, 20, 19], [1, 1, 38, 40], [55, 50, 30, 40]], np.float64).reshape(-1),
        dt_cat=np.array([1, 1, 2], np.int64),
        dt_score=np.array([0.9, 0.8, 0.7]),
        cat_ids=np.array([1, 2], np.int64),
        iou_thrs=np.linspace(0.5, 0.95, 10),
        rec_thrs=np.linspace(0.0, 1.0, 101),
        area_rngs=np.array([[0, 1e10], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e10]], np.float64),
        max_dets=np.array([1, 10, 100], np.int64),
        zero_id_unmatched=True,
        threads=1,
    )
    for k, v in changes.items():
        if k not in a:
            raise KeyError(k)
        a[k] = v
    return a


def _v8(b=1, c=3, n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = rng.random((b, 4 + c, n), dtype=np.float32)
    out[:, :4] *= 100
    return out


def _boxes(n=8, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 100
    wh = rng.random((n, 2)) * 30 + 1
    return np.ascontiguousarray(np.concatenate([xy, xy + wh], axis=1), dtype=dtype), rng.random(n).astype(dtype)


# --- valid calls for the threading test: name -> () -> result (arrays, tuples of arrays, ints) ---

def jobs() -> dict[str, Callable[[], Any]]:
    core = _core()
    rng = np.random.default_rng(7)
    b32, s32 = _boxes(400, seed=1)
    b64, s64 = _boxes(400, seed=2, dtype=np.float64)
    cls = rng.integers(0, 5, 400).astype(np.int64)
    yolo5 = rng.random((3, 500, 5 + 4), dtype=np.float32)
    yolo5[..., :4] *= 100
    yolo8 = _v8(b=3, c=6, n=500, seed=3)
    y_true = rng.integers(0, 10, 5000).astype(np.int64)
    y_pred = rng.integers(0, 10, 5000).astype(np.int64)
    scores = rng.random((5000, 10))
    truth = (rng.random((3000, 6)) < 0.3).astype(np.uint8)
    ml_scores = rng.random((3000, 6)).astype(np.float32)

    def confusion():
        m = np.zeros((10, 10), np.int64)
        core.confusion_update(y_true.copy(), y_pred.copy(), m)
        return m

    # every call gets fresh copies, so that its inputs die right after it (the churning threads see them go)
    return {
        "nms": lambda: core.nms(b32.copy(), s32.copy(), 0.5, None, None),
        "nms64": lambda: core.nms(b64.copy(), s64.copy(), 0.3, 0.2, 50),
        "batched_nms": lambda: core.batched_nms(b32.copy(), s32.copy(), cls.copy(), 0.5, None, None, 2),
        "soft_nms": lambda: core.soft_nms(b64.copy(), s64.copy(), 1, 0.5, 0.3, 0.01),
        "box_iou": lambda: core.box_iou(b32.copy(), b32[:50].copy(), 2),
        "decode_yolo_v5": lambda: core.decode_yolo(yolo5.copy(), 0, 0.25, 0.45, 100, 30000, False, False, 2),
        "decode_yolo_v8": lambda: core.decode_yolo(yolo8.copy(), 1, 0.25, 0.45, 100, 30000, False, True, 2),
        "confusion_update": confusion,
        "top_k_hits": lambda: core.top_k_hits(y_true.copy(), scores.copy(), 3),
        "binary_curve": lambda: core.binary_curve(ml_scores[:, 0].copy(), truth[:, 0].copy()),
        "ap_auc_columns": lambda: core.ap_auc_columns(ml_scores.copy(), truth.copy(), 2),
        "coco_evaluate": lambda: core.coco_evaluate(**{k: (v.copy() if isinstance(v, np.ndarray) else v)
                                                       for k, v in coco_args(threads=2).items()}),
    }


def same(a, b) -> bool:
    """Exact equality of results made of arrays, tuples, lists and numbers."""
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return a == b
