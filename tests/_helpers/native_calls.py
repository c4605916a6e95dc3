"""Direct calls of the private native module ``pyimgcls._core`` for the boundary tests.

``BAD_CALLS``: one entry per kind of bad argument a caller can hand a binding (wrong offsets, lengths,
non-finite values, out-of-range settings) and a few valid edge cases next to them. Each entry says what
must happen: a ``ValueError`` whose message matches ``error`` (it names the argument and shows the
expected and the actual value), or a normal return that ``check`` accepts.

``outcomes(names)`` runs the calls in child processes first: before the bindings checked these inputs,
some of them read or wrote out of bounds, and a crash must fail one test, not end the session. A child
reports one JSON line per call as it goes; after a crash the remaining calls run in a fresh child.

``jobs()``: valid calls of every GIL-releasing binding, each returning a comparable result, for the
threading test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

_TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def coco(**changes):
    return _core().coco_evaluate(**coco_args(**changes))


def _coco_with_foreign_categories():
    """Boxes of a category outside cat_ids are skipped (pycocotools' params.catIds): same answer."""
    base = coco()
    a = coco_args()
    gb, db = a["gt_begin"].copy(), a["dt_begin"].copy()
    # one more ground truth and two more detections of category 7 in image 0
    gt_box = np.concatenate([a["gt_box"][:8], [0, 0, 20, 20], a["gt_box"][8:]])
    gt_cat = np.insert(a["gt_cat"], 2, 7)
    gb[1:] += 1
    dt_box = np.concatenate([a["dt_box"][:4], [0, 0, 20, 20, 1, 1, 19, 19], a["dt_box"][4:]])
    dt_cat = np.insert(a["dt_cat"], 1, [7, 7])
    db[1:] += 2
    got = coco(gt_begin=gb, gt_box=gt_box, gt_cat=gt_cat, gt_crowd=np.zeros(4, np.uint8),
               gt_area=np.insert(a["gt_area"], 2, 400.0), gt_id=np.array([1, 2, 9, 3], np.int64), dt_begin=db,
               dt_box=dt_box, dt_cat=dt_cat, dt_score=np.insert(a["dt_score"], 1, [0.95, 0.5]))
    return base, got


def _same_pair(pair) -> str | None:
    (p0, r0), (p1, r1) = pair
    if np.array_equal(p0, p1) and np.array_equal(r0, r1):
        return None
    return "results differ"


def _coco_huge_max_dets():
    return coco(max_dets=np.array([1, 10, 100], np.int64)), coco(max_dets=np.array([1, 10, 2 ** 62], np.int64))


def _confusion_aliased():
    """Labels that are a view of the matrix being counted into: the count uses the labels as given (an
    in-place count would read labels it has already raised, here to 2 >= C, and write past the matrix)."""
    m = np.array([[0, 0], [0, 1]], np.int64)
    _core().confusion_update(m.reshape(-1), np.array([1, 0, 1, 0], np.int64), m)
    return m


def _check_confusion_aliased(m) -> str | None:
    want = np.array([[1, 2], [1, 1]], np.int64)  # [[0, 0], [0, 1]] plus the pairs (0,1) (0,0) (0,1) (1,0)
    return None if np.array_equal(m, want) else f"matrix {m.tolist()}, expected {want.tolist()}"


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


@dataclass(frozen=True)
class Call:
    run: Callable[[], Any]
    error: str | None = None                          # regex the ValueError message must match
    check: Callable[[Any], str | None] | None = None  # for a call that must return: None when right


def _nan_at(a, i):
    a = np.array(a, copy=True)
    a.reshape(-1)[i] = np.nan
    return a


_A = coco_args()

BAD_CALLS: dict[str, Call] = {
    # image offsets
    "coco_gt_begin_first_not_zero": Call(lambda: coco(gt_begin=np.array([1, 2, 3])),
                                         r"gt_begin must start at 0, got gt_begin\[0\] = 1"),
    "coco_gt_begin_decreasing": Call(lambda: coco(gt_begin=np.array([0, 5, 3])),
                                     r"gt_begin must be non-decreasing.*gt_begin\[1\] = 5.*gt_begin\[2\] = 3"),
    "coco_gt_begin_negative": Call(lambda: coco(gt_begin=np.array([0, -(10 ** 12), 3])),
                                   r"gt_begin must be non-decreasing.*gt_begin\[1\] = -1000000000000"),
    "coco_dt_begin_huge": Call(lambda: coco(dt_begin=np.array([0, 10 ** 12, 3])),
                               r"dt_begin must be non-decreasing.*dt_begin\[1\] = 1000000000000"),
    "coco_dt_begin_negative": Call(lambda: coco(dt_begin=np.array([0, -(10 ** 12), 3])),
                                   r"dt_begin must be non-decreasing"),
    "coco_gt_begin_last_short": Call(lambda: coco(gt_begin=np.array([0, 2, 2])),
                                     r"gt_begin must end at len\(gt_cat\) = 3, got gt_begin\[-1\] = 2"),
    "coco_dt_begin_last_long": Call(lambda: coco(dt_begin=np.array([0, 1, 4])),
                                    r"dt_begin must end at len\(dt_cat\) = 3, got dt_begin\[-1\] = 4"),
    "coco_begin_lengths_differ": Call(lambda: coco(dt_begin=np.array([0, 3])),
                                      r"dt_begin must have len\(gt_begin\) = 3 entries.*got 2"),
    "coco_begin_empty": Call(lambda: coco(gt_begin=np.zeros(0, np.int64), dt_begin=np.zeros(0, np.int64)),
                             r"gt_begin must have at least 1 entry.*got 0"),
    "coco_gt_begin_2d": Call(lambda: coco(gt_begin=np.array([[0, 2, 3]])), r"gt_begin must be 1-d, got shape \(1, 3\)"),
    # per-box arrays
    "coco_gt_box_short": Call(lambda: coco(gt_box=_A["gt_box"][:-4]),
                              r"gt_box must hold 4 values per ground truth.*12.*got shape \(8,\)"),
    "coco_dt_box_long": Call(lambda: coco(dt_box=np.zeros(16)), r"dt_box must hold 4 values per detection.*12.*\(16,\)"),
    "coco_gt_crowd_short": Call(lambda: coco(gt_crowd=np.zeros(2, np.uint8)), r"gt_crowd must have shape \(3,\).*got \(2,\)"),
    "coco_gt_area_long": Call(lambda: coco(gt_area=np.ones(4)), r"gt_area must have shape \(3,\).*got \(4,\)"),
    "coco_gt_id_short": Call(lambda: coco(gt_id=np.ones(1, np.int64)), r"gt_id must have shape \(3,\).*got \(1,\)"),
    "coco_dt_score_short": Call(lambda: coco(dt_score=np.ones(2)), r"dt_score must have shape \(3,\).*got \(2,\)"),
    "coco_dt_cat_short": Call(lambda: coco(dt_cat=np.ones(2, np.int64)),
                              r"dt_box must hold 4 values per detection, shape \(8,\) or \(2, 4\) for len\(dt_cat\) = 2, "
                              r"got shape \(12,\)"),
    # values
    "coco_gt_box_nan": Call(lambda: coco(gt_box=_nan_at(_A["gt_box"], 6)),
                            r"gt_box must be finite, got nan at ground truth 1"),
    "coco_dt_box_inf": Call(lambda: coco(dt_box=np.where(np.arange(12) == 9, np.inf, _A["dt_box"])),
                            r"dt_box must be finite, got inf at detection 2"),
    "coco_gt_area_nan": Call(lambda: coco(gt_area=_nan_at(_A["gt_area"], 0)), r"gt_area must be finite, got nan at 0"),
    "coco_dt_score_nan": Call(lambda: coco(dt_score=_nan_at(_A["dt_score"], 2)), r"dt_score must be finite, got nan at 2"),
    "coco_iou_thrs_above_one": Call(lambda: coco(iou_thrs=np.array([0.5, 1.5])),
                                    r"iou_thrs must be in \[0, 1\], got iou_thrs\[1\] = 1.5"),
    "coco_iou_thrs_negative": Call(lambda: coco(iou_thrs=np.array([-0.25])), r"iou_thrs must be in \[0, 1\], got iou_thrs\[0\] = -0.25"),
    "coco_iou_thrs_nan": Call(lambda: coco(iou_thrs=np.array([np.nan])), r"iou_thrs must be in \[0, 1\], got iou_thrs\[0\] = nan"),
    "coco_rec_thrs_unsorted": Call(lambda: coco(rec_thrs=np.array([0.0, 0.5, 0.25])),
                                   r"rec_thrs must be ascending, got rec_thrs\[1\] = 0.5 > rec_thrs\[2\] = 0.25"),
    "coco_rec_thrs_above_one": Call(lambda: coco(rec_thrs=np.array([0.0, 2.0])), r"rec_thrs must be in \[0, 1\], got rec_thrs\[1\] = 2"),
    "coco_area_rngs_inverted": Call(lambda: coco(area_rngs=np.array([[0, 1e10], [100.0, 10.0]])),
                                    r"area_rngs\[1\] must satisfy lo <= hi, got \[100, 10\]"),
    "coco_area_rngs_nan": Call(lambda: coco(area_rngs=np.array([[np.nan, 1.0]])), r"area_rngs\[0\] must satisfy lo <= hi, got \[nan, 1\]"),
    "coco_area_rngs_shape": Call(lambda: coco(area_rngs=np.zeros((4, 3))), r"area_rngs must have shape \(A, 2\), got \(4, 3\)"),
    "coco_max_dets_negative_last": Call(lambda: coco(max_dets=np.array([1, 10, -1])),
                                        r"max_dets must be >= 0, got max_dets\[2\] = -1"),
    "coco_max_dets_negative_inner": Call(lambda: coco(max_dets=np.array([1, -5, 100])),
                                         r"max_dets must be >= 0, got max_dets\[1\] = -5"),
    "coco_max_dets_descending": Call(lambda: coco(max_dets=np.array([100, 10, 1])),
                                     r"max_dets must be ascending, got max_dets\[0\] = 100 > max_dets\[1\] = 10"),
    "coco_max_dets_empty": Call(lambda: coco(max_dets=np.zeros(0, np.int64)), r"max_dets must not be empty"),
    # valid edge cases: must return the same answer as the plain call
    "coco_max_dets_huge_ok": Call(_coco_huge_max_dets, check=_same_pair),
    "coco_foreign_categories_ok": Call(_coco_with_foreign_categories, check=_same_pair),
    # other metrics
    "confusion_labels_alias_matrix": Call(_confusion_aliased, check=_check_confusion_aliased),
    "confusion_label_out_of_range": Call(
        lambda: _core().confusion_update(np.array([0, 3]), np.array([0, 1]), np.zeros((3, 3), np.int64)),
        r"y_true has label 3 at index 1, outside \[0, 3\)"),
    "confusion_matrix_not_square": Call(
        lambda: _core().confusion_update(np.array([0]), np.array([0]), np.zeros((3, 2), np.int64)),
        r"matrix must be square, got \(3, 2\)"),
    "top_k_zero": Call(lambda: _core().top_k_hits(np.array([0, 1]), np.ones((2, 3)), 0), r"k must be >= 1, got 0"),
    "top_k_negative": Call(lambda: _core().top_k_hits(np.array([0, 1]), np.ones((2, 3)), -2), r"k must be >= 1, got -2"),
    "top_k_nan": Call(lambda: _core().top_k_hits(np.array([0, 1]), _nan_at(np.ones((2, 3), np.float32), 4), 1),
                      r"scores must be finite, got nan at row 1, column 1"),
    "top_k_inf": Call(lambda: _core().top_k_hits(np.array([0, 1]), np.array([[1.0, np.inf], [0, 1]]), 1),
                      r"scores must be finite, got inf at row 0, column 1"),
    "top_k_k_above_classes_ok": Call(lambda: _core().top_k_hits(np.array([0, 1, 2]), np.eye(3)[::-1].copy(), 7),
                                     check=lambda h: None if h == 3 else f"{h} hits, expected 3 (k >= C: every row)"),
    "binary_curve_lengths": Call(lambda: _core().binary_curve(np.ones(3), np.ones(2, np.uint8)),
                                 r"y_true and scores must be 1-d of the same length, got \(2,\) and \(3,\)"),
    "ap_auc_columns_shapes": Call(lambda: _core().ap_auc_columns(np.ones((3, 2)), np.ones((3, 3), np.uint8), 1),
                                  r"same \(N, L\) shape, got \(3, 3\) and \(3, 2\)"),
    # boxes
    "decode_yolo_layout": Call(lambda: _core().decode_yolo(_v8(), 2, 0.25, 0.45, 300, 30000, False, False, 1),
                               r"layout must be 0 \(v5\) or 1 \(v8\), got 2"),
    "decode_yolo_layout_negative": Call(lambda: _core().decode_yolo(_v8(), -1, 0.25, 0.45, 300, 30000, False, False, 1),
                                        r"layout must be 0 \(v5\) or 1 \(v8\), got -1"),
    "decode_yolo_max_candidates": Call(lambda: _core().decode_yolo(_v8(), 1, 0.25, 0.45, 300, -1, False, False, 1),
                                       r"max_candidates must be >= 0, got -1"),
    "decode_yolo_too_few_rows": Call(lambda: _core().decode_yolo(np.ascontiguousarray(_v8()[:, :4]), 1, 0.25, 0.45, 300, 30000, False, False, 1),
                                     r"v8 output needs at least 5 rows"),
    "soft_nms_method": Call(lambda: _core().soft_nms(*_boxes(), 2, 0.5, 0.3, 0.001),
                            r"method must be 0 \(linear\) or 1 \(gaussian\), got 2"),
    "soft_nms_method_negative": Call(lambda: _core().soft_nms(*_boxes(), -1, 0.5, 0.3, 0.001),
                                     r"method must be 0 \(linear\) or 1 \(gaussian\), got -1"),
    "batched_nms_class_ids_length": Call(
        lambda: _core().batched_nms(*_boxes(), np.zeros(7, np.int64), 0.5, None, None, 1),
        r"class_ids must have shape \(8,\), got \(7,\)"),
}


# --- child processes ---

def _child(names: list[str]) -> None:
    for name in names:
        call = BAD_CALLS[name]
        try:
            result = call.run()
        except BaseException as e:  # report anything, the parent decides
            rec = {"name": name, "kind": "raised", "type": type(e).__name__, "message": str(e)}
        else:
            problem = call.check(result) if call.check else None
            rec = {"name": name, "kind": "returned", "problem": problem}
        print(json.dumps(rec), flush=True)


_CHILD = ("import sys; sys.path.append({tests!r}); from _helpers import native_calls; "
          "native_calls._child(sys.argv[1:])")


def outcomes(names: list[str], timeout: float = 300) -> dict[str, dict]:
    """Runs BAD_CALLS[name] for every name in child processes; {name: what happened}. A call that ends
    its child (a signal, an abort) is reported as {"kind": "crashed", ...}; the rest run in a new child."""
    todo, done = list(names), {}
    code = _CHILD.format(tests=_TESTS_DIR)
    while todo:
        r = subprocess.run([sys.executable, "-c", code, *todo], capture_output=True, text=True, timeout=timeout,
                           cwd="/")  # not the source tree: the installed pyimgcls
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                done[rec["name"]] = rec
        todo = [n for n in todo if n not in done]
        if todo:  # the first one not reported ended the child
            done[todo[0]] = {"name": todo[0], "kind": "crashed", "returncode": r.returncode,
                             "stderr": r.stderr[-3000:]}
            todo = todo[1:]
    return done


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
