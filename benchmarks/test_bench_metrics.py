"""Metrics against scikit-learn, pycocotools and faster-coco-eval (single thread)."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from _helpers.peers import cocoeval
from pyimgcls.metrics import COCOEvaluator, ConfusionMatrix, average_precision, evaluate_coco


# ----------------------------------------------------------------------------- classification report
@pytest.fixture(scope="module")
def labels_1m():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(100, 0.5))  # imbalanced
    t = rng.choice(100, 1_000_000, p=p)
    pred = np.where(rng.random(t.size) < 0.7, t, rng.choice(100, t.size, p=p))
    return t.astype(np.int64), pred.astype(np.int64)


def _ours_report(t, p):
    return ConfusionMatrix(100).update(t, p).report(zero_division=0)


def test_report_pyimgcls(benchmark, labels_1m):
    benchmark.group = "classification-report-1M-100cls"
    t, p = labels_1m
    r = _ours_report(t, p)
    ref = skm.precision_recall_fscore_support(t, p, labels=list(range(100)), zero_division=0)
    np.testing.assert_allclose(r.precision, ref[0], rtol=1e-12)
    np.testing.assert_allclose(r.f1, ref[2], rtol=1e-12)
    benchmark(_ours_report, t, p)


def test_report_sklearn(benchmark, labels_1m):
    benchmark.group = "classification-report-1M-100cls"
    t, p = labels_1m
    benchmark.pedantic(skm.precision_recall_fscore_support, (t, p), {"labels": list(range(100)), "zero_division": 0},
                       rounds=5, warmup_rounds=1)


def test_report_numpy_bincount(benchmark, labels_1m):
    benchmark.group = "classification-report-1M-100cls"
    t, p = labels_1m
    benchmark(lambda: np.bincount(t * 100 + p, minlength=100 * 100))


# ----------------------------------------------------------------------------- average precision
@pytest.fixture(scope="module")
def multilabel_scores():
    rng = np.random.default_rng(0)
    t = rng.random((200_000, 50)) < rng.uniform(0.01, 0.3, 50)
    s = (rng.random((200_000, 50)) + t * 0.5).astype(np.float32)
    return t.astype(np.uint8), s


def test_ap_pyimgcls(benchmark, multilabel_scores):
    benchmark.group = "average-precision-200000x50"
    t, s = multilabel_scores
    np.testing.assert_allclose(average_precision(t, s, average=None, threads=1),
                               skm.average_precision_score(t, s, average=None), rtol=1e-9)
    benchmark(average_precision, t, s, average=None, threads=1)


def test_ap_sklearn(benchmark, multilabel_scores):
    benchmark.group = "average-precision-200000x50"
    t, s = multilabel_scores
    benchmark.pedantic(skm.average_precision_score, (t, s), {"average": None}, rounds=3, warmup_rounds=1)


# the same values as float64 (NumPy's default dtype): 64-bit keys
def test_ap_float64_pyimgcls(benchmark, multilabel_scores):
    benchmark.group = "average-precision-200000x50-float64"
    t, s = multilabel_scores[0], multilabel_scores[1].astype(np.float64)
    np.testing.assert_allclose(average_precision(t, s, average=None, threads=1),
                               skm.average_precision_score(t, s, average=None), rtol=1e-9)
    benchmark(average_precision, t, s, average=None, threads=1)


def test_ap_float64_sklearn(benchmark, multilabel_scores):
    benchmark.group = "average-precision-200000x50-float64"
    t, s = multilabel_scores[0], multilabel_scores[1].astype(np.float64)
    benchmark.pedantic(skm.average_precision_score, (t, s), {"average": None}, rounds=3, warmup_rounds=1)


# ----------------------------------------------------------------------------- COCO
@pytest.fixture(scope="module")
def coco_500():
    rng = np.random.default_rng(0)
    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(500)]
    cats = [{"id": c + 1, "name": str(c)} for c in range(80)]
    anns, dets = [], []
    for im in images:
        gts = []
        for _ in range(rng.integers(1, 15)):
            x, y = rng.uniform(0, 560, 2)
            w, h = rng.uniform(8, 250, 2)
            c = int(rng.integers(1, 81))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": c, "bbox": [x, y, w, h],
                         "area": float(w * h), "iscrowd": int(rng.random() < 0.02)})
            gts.append((x, y, w, h, c))
        for _ in range(100):  # 100 detections per image: near ground truth or random
            if rng.random() < 0.5 and gts:
                x, y, w, h, c = gts[rng.integers(len(gts))]
                j = rng.normal(0, 0.15, 4) * [w, h, w, h]
                box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
            else:
                c = int(rng.integers(1, 81))
                box = [*rng.uniform(0, 560, 2), *rng.uniform(4, 250, 2)]
            dets.append({"image_id": im["id"], "category_id": c, "bbox": [float(v) for v in box], "score": float(rng.random())})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _pycocotools(gt, dets):
    return cocoeval(gt, dets).stats


def _faster_coco_eval(gt, dets):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cocoeval(gt, dets, faster=True).stats


def test_coco_pyimgcls(benchmark, coco_500):
    benchmark.group = "coco-bbox-500img-100det-80cls"
    gt, dets = coco_500
    ours = evaluate_coco(gt, dets, threads=1)
    np.testing.assert_allclose(ours.stats, _pycocotools(gt, dets), atol=1e-9)
    benchmark(evaluate_coco, gt, dets, threads=1)


@pytest.fixture(scope="module")
def coco_500_arrays(coco_500):
    """The same data as a detector and a dataset hand it over: per image, xyxy float64 arrays."""
    gt, dets = coco_500
    by_img, g_img = {}, {}
    for d in dets:
        by_img.setdefault(d["image_id"], []).append(d)
    for a in gt["annotations"]:
        g_img.setdefault(a["image_id"], []).append(a)

    def xyxy(rows):
        b = np.array([r["bbox"] for r in rows], np.float64).reshape(-1, 4)
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)

    out = []
    for im in gt["images"]:
        d, g = by_img.get(im["id"], []), g_img.get(im["id"], [])
        out.append((im["id"], (xyxy(d), np.array([x["score"] for x in d]), np.array([x["category_id"] for x in d])),
                    xyxy(g), np.array([x["category_id"] for x in g]), np.array([x["iscrowd"] for x in g]),
                    np.array([x["area"] for x in g])))
    return [c["id"] for c in gt["categories"]], out


def _ours_update_compute(cats, images):
    """The whole work from a detector's outputs to the 12 numbers: one update() per image, then compute()."""
    ev = COCOEvaluator(category_ids=cats, threads=1)
    for image_id, det, gb, gc, crowd, area in images:
        ev.update(image_id, det, gb, gc, gt_iscrowd=crowd, gt_area=area)
    return ev.compute().stats


def test_coco_pyimgcls_update_compute(benchmark, coco_500, coco_500_arrays):
    """update() per image + compute(), against the peers' whole run (loadRes, evaluate, accumulate,
    summarize) on the same detections; each side gets them in its own format (arrays here, result dicts there)."""
    benchmark.group = "coco-bbox-500img-100det-80cls"
    gt, dets = coco_500
    # xyxy -> xywh in float64 can move a box by an ulp: stats agree to 1e-9
    np.testing.assert_allclose(_ours_update_compute(*coco_500_arrays), _pycocotools(gt, dets), rtol=0, atol=1e-9)
    benchmark(_ours_update_compute, *coco_500_arrays)


def test_coco_pyimgcls_compute_only(benchmark, coco_500_arrays):
    """Only compute(), after the update() calls: the native share of the line above."""
    benchmark.group = "coco-bbox-500img-100det-80cls"
    cats, images = coco_500_arrays
    ev = COCOEvaluator(category_ids=cats, threads=1)
    for image_id, det, gb, gc, crowd, area in images:
        ev.update(image_id, det, gb, gc, gt_iscrowd=crowd, gt_area=area)
    benchmark(ev.compute)


def test_coco_faster_coco_eval(benchmark, coco_500):
    benchmark.group = "coco-bbox-500img-100det-80cls"
    gt, dets = coco_500
    np.testing.assert_allclose(_faster_coco_eval(gt, dets), _pycocotools(gt, dets), atol=1e-6)
    benchmark.pedantic(_faster_coco_eval, (gt, dets), rounds=5, warmup_rounds=1)


def test_coco_pycocotools(benchmark, coco_500):
    benchmark.group = "coco-bbox-500img-100det-80cls"
    gt, dets = coco_500
    benchmark.pedantic(_pycocotools, (gt, dets), rounds=3, warmup_rounds=0)
