import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from sklearn import metrics as skm

from _helpers.peers import cocoeval
from _helpers.reference import ap_auc_ref, voc_ap_ref
from pyimgcls import _core
from pyimgcls.metrics import (COCOEvaluator, ConfusionMatrix, MultilabelReport, average_precision, evaluate_coco,
                              precision_recall_curve, roc_auc, threshold_for_precision, top_k_accuracy,
                              voc_average_precision)

ZD = ["warn", 0, 1, np.nan]


def _dict_equal(a, b, tol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _dict_equal(a[k], b[k], tol)
        else:
            x, y = float(a[k]), float(b[k])
            assert (np.isnan(x) and np.isnan(y)) or abs(x - y) <= tol, (k, x, y)


# ----------------------------------------------------------------------------- single-label
@st.composite
def label_cases(draw):
    c = draw(st.integers(1, 12))
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.dirichlet(np.full(c, draw(st.sampled_from([0.2, 1.0, 5.0]))))  # heavy imbalance too
    t = rng.choice(c, n, p=p)
    pred = np.where(rng.random(n) < draw(st.floats(0, 1)), t, rng.choice(c, n, p=p))
    return c, t, pred, draw(st.sampled_from(ZD))


@given(label_cases())
def test_report_equals_sklearn(case):
    c, t, p, zd = case
    cm = ConfusionMatrix(c)
    for chunk in np.array_split(np.arange(len(t)), 3):  # streaming
        cm.update(t[chunk], p[chunk])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = cm.report(zero_division=zd)
        ref = skm.classification_report(t, p, labels=list(range(c)), output_dict=True, zero_division=zd)
        _dict_equal(ours.to_dict(), ref)
        np.testing.assert_array_equal(cm.matrix, skm.confusion_matrix(t, p, labels=list(range(c))))
        assert ours.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(t, p), abs=1e-12)
    assert "accuracy" in str(ours)


def test_merge_and_names():
    a, b = ConfusionMatrix(3, labels=["cat", "dog", "fox"]), ConfusionMatrix(3, labels=["cat", "dog", "fox"])
    a.update([0, 1, 2], [0, 2, 2])
    b.update([1, 1], [1, 0])
    a.merge(b)
    ref = skm.classification_report([0, 1, 2, 1, 1], [0, 2, 2, 1, 0], labels=[0, 1, 2],
                                    target_names=["cat", "dog", "fox"], output_dict=True, zero_division=0)
    _dict_equal(a.report(zero_division=0).to_dict(), ref)


def test_label_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="y_pred has label 3 at index 2"):
        cm.update([0, 1, 2, 0], [0, 1, 3, 0])
    with pytest.raises(ValueError, match="y_true has label -1 at index 0"):
        cm.update([-1], [0])
    with pytest.raises(ValueError, match="same length"):
        cm.update([0, 1], [0])
    with pytest.raises(TypeError):
        cm.update(["a"], ["b"])
    with pytest.raises(ValueError, match="zero_division"):
        cm.report(zero_division=2)
    assert cm.count == 0  # nothing half-added


def test_one_class_and_empty():
    cm = ConfusionMatrix(1).update([0, 0], [0, 0])
    assert cm.report().to_dict()["0"]["f1-score"] == 1.0
    r = ConfusionMatrix(2).report(zero_division=0)
    assert r.accuracy == 0.0 and (r.support == 0).all()


@given(st.integers(1, 8), st.integers(1, 200), st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_top_k_equals_sklearn(c, n, k, seed, ties):
    warnings.simplefilter("ignore")
    c = max(c, 2)
    rng = np.random.default_rng(seed)
    t = rng.integers(0, c, n)
    s = rng.random((n, c))
    if ties:
        s = np.round(s * 3) / 3
    k = min(k, c)
    if c == 2:
        ref = skm.top_k_accuracy_score(t, s[:, 1], k=k, labels=[0, 1])
        assert top_k_accuracy(t, s[:, 1], k) == pytest.approx(ref)
    else:
        assert top_k_accuracy(t, s, k) == pytest.approx(skm.top_k_accuracy_score(t, s, k=k, labels=list(range(c))))
        assert top_k_accuracy(t, s.astype(np.float32), k) == pytest.approx(
            skm.top_k_accuracy_score(t, s.astype(np.float32), k=k, labels=list(range(c))))


# ----------------------------------------------------------------------------- multi-label
# L >= 2: scikit-learn reads an (N, 1) indicator matrix as a binary problem, not a multi-label one
@given(st.integers(2, 8), st.integers(1, 100), st.integers(0, 2**32 - 1), st.sampled_from(ZD))
def test_multilabel_report_equals_sklearn(L, n, seed, zd):
    rng = np.random.default_rng(seed)
    t = rng.random((n, L)) < rng.uniform(0, 0.6, L)
    p = np.where(rng.random((n, L)) < 0.7, t, rng.random((n, L)) < 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = MultilabelReport.from_predictions(t, p, zero_division=zd)
        ref = skm.classification_report(t, p, output_dict=True, zero_division=zd)
    _dict_equal(r.to_dict(), ref)
    assert r.hamming_loss == pytest.approx(skm.hamming_loss(t, p))
    assert r.subset_accuracy == pytest.approx(skm.accuracy_score(t, p))
    str(r)


@st.composite
def score_cases(draw):
    n = draw(st.integers(2, 300))
    L = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = (rng.random((n, L)) < draw(st.floats(0.05, 0.9))).astype(int)
    s = rng.random((n, L)) + t * draw(st.floats(0, 1))
    if draw(st.booleans()):
        s = np.round(s * 5) / 5  # many ties
    if draw(st.booleans()):
        s = s.astype(np.float32)
    return t, s


@given(score_cases())
def test_average_precision_equals_sklearn(case):
    t, s = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for avg in (None, "macro", "micro", "weighted"):
            ref = skm.average_precision_score(t, s, average=avg)
            np.testing.assert_allclose(average_precision(t, s, average=avg), ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(average_precision(t[:, 0], s[:, 0]), skm.average_precision_score(t[:, 0], s[:, 0]),
                                   rtol=1e-10, atol=1e-12)


@given(score_cases())
def test_roc_auc_and_curve_equal_sklearn(case):
    t, s = case
    ok = (t.min(axis=0) == 0) & (t.max(axis=0) == 1)
    if ok.all():
        for avg in (None, "macro", "micro", "weighted"):
            np.testing.assert_allclose(roc_auc(t, s, average=avg), skm.roc_auc_score(t, s, average=avg), rtol=1e-10)
    else:
        with pytest.raises(ValueError, match="Only one class"):
            roc_auc(t, s, average="macro")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, th = precision_recall_curve(t[:, 0], s[:, 0])
        rp, rr, rth = skm.precision_recall_curve(t[:, 0], s[:, 0])
    np.testing.assert_allclose(p, rp, rtol=1e-12)
    np.testing.assert_allclose(r, rr, rtol=1e-12)
    np.testing.assert_array_equal(th, rth)


def _sklearn_columns(t, s):
    """Per-label AP and AUC from scikit-learn, one column at a time (NaN AUC where one class)."""
    ap, auc = [], []
    for j in range(t.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ap.append(skm.average_precision_score(t[:, j], s[:, j]) if t[:, j].any() else 0.0)
        auc.append(skm.roc_auc_score(t[:, j], s[:, j]) if 0 < t[:, j].sum() < len(t) else np.nan)
    return np.array(ap), np.array(auc)


def _ours_columns(t, s):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ap = average_precision(t, s, average=None)
    ok = (t.min(axis=0) == 0) & (t.max(axis=0) == 1)
    auc = np.full(t.shape[1], np.nan)
    if ok.any():
        auc[ok] = roc_auc(t[:, ok], s[:, ok], average=None)
    return ap, auc


@st.composite
def wide_cases(draw):
    # widths around the 8-column SIMD tiles and the 16-column blocks; heights around the 8-row tiles
    L = draw(st.sampled_from([7, 8, 9, 15, 16, 17, 23, 24, 31, 33, 40]))
    n = draw(st.integers(1, 700))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = rng.random((n, L)) < rng.uniform(0, 1, L) ** 2
    t[:, 0] = draw(st.booleans())  # a column of one class
    mode = draw(st.sampled_from(["continuous", "ties", "signed", "tiny", "clustered", "outlier"]))
    if mode == "continuous":
        s = rng.random((n, L)) + t * rng.uniform(-0.5, 1, L)
    elif mode == "ties":  # few distinct values: negatives tie with positives
        s = np.round(rng.random((n, L)) * draw(st.integers(1, 20)) + t) / 4
    elif mode == "signed":  # logits, with -0.0 and +0.0 (equal scores)
        s = rng.normal(size=(n, L)) * 5 + t
        s[rng.random((n, L)) < 0.05] = -0.0
        s[rng.random((n, L)) < 0.05] = 0.0
    elif mode == "tiny":  # sigmoid outputs spanning many binades
        s = 1 / (1 + np.exp(-(rng.normal(size=(n, L)) * 15 + 4 * t)))
    elif mode == "clustered":  # most negatives inside one narrow range between two positive scores
        s = np.where(t, rng.choice([0.0, 1.0], (n, L)), 0.5 + rng.random((n, L)) * 1e-6)
    else:  # all scores in a narrow cluster but one far outlier: many positive keys share a bucket
        s = 0.5 + rng.random((n, L)) * 1e-3 + t * 1e-4
        s[0] = 1e-30
    return t.astype(np.uint8), s.astype(draw(st.sampled_from([np.float32, np.float64])))


@given(wide_cases())
def test_average_precision_wide_equals_sklearn(case):
    t, s = case
    ap, auc = _ours_columns(t, s)
    ref_ap, ref_auc = _sklearn_columns(t, s)
    np.testing.assert_allclose(ap, ref_ap, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(auc, ref_auc, rtol=1e-10, atol=1e-12)


@given(wide_cases())
def test_ap_auc_kernel_matches_twin_and_properties(case):
    t, s = case
    ap, auc = _core.ap_auc_columns(s, t, 0)
    for j in range(t.shape[1]):
        ref = ap_auc_ref(t[:, j], s[:, j])
        np.testing.assert_allclose([ap[j], auc[j]], ref, rtol=1e-10, atol=1e-12)
    perm = np.random.default_rng(0).permutation(len(t))  # row order does not matter
    ap_p, auc_p = _core.ap_auc_columns(np.ascontiguousarray(s[perm]), np.ascontiguousarray(t[perm]), 1)
    np.testing.assert_allclose(ap_p, ap, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(auc_p, auc, rtol=1e-12, atol=1e-15)
    # 32-bit and 64-bit keys on the same values
    ap64, auc64 = _core.ap_auc_columns(s.astype(np.float64), t, 1)
    np.testing.assert_allclose(ap64, ap, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(auc64, auc, rtol=1e-12, atol=1e-15)
    # reversing the scores mirrors AUC (ties count one half either way)
    _, auc_neg = _core.ap_auc_columns(-s, t, 1)
    np.testing.assert_allclose(auc_neg, 1 - auc, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_large_equals_sklearn(ties, dtype):
    # enough negatives per fine bucket to overflow its byte (the column falls back to sorting),
    # and enough positives for the 11-bit positive sort
    rng = np.random.default_rng(7)
    n, L = 120_000, 9
    t = rng.random((n, L)) < np.array([0.001, 0.01, 0.1, 0.5, 0.7, 0.99, 0.3, 0.3, 0.6])
    s = rng.random((n, L)) + t * 0.3
    s[:, 6] = np.where(t[:, 6], rng.choice([0.0, 1.0], n), 0.5)  # 84,000 negatives in one bucket
    s[:, 7] = np.where(t[:, 7], rng.random(n), 0.25 + rng.random(n) * 1e-5)
    if ties:
        s = np.round(s * 100) / 100
    t, s = t.astype(np.uint8), s.astype(dtype)
    ap, auc = _ours_columns(t, s)
    ref_ap, ref_auc = _sklearn_columns(t, s)
    np.testing.assert_allclose(ap, ref_ap, rtol=1e-10)
    np.testing.assert_allclose(auc, ref_auc, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_average_precision_names_first_nonfinite_wide(dtype):
    s = np.random.default_rng(0).random((50, 20)).astype(dtype)
    t = (s > 0.5).astype(np.uint8)
    s[10, 2] = np.inf
    s[3, 17] = np.nan
    with pytest.raises(ValueError, match="row 3, column 17"):
        average_precision(t, s)


def test_threshold_for_precision():
    t = np.array([0, 0, 1, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    thr, rec = threshold_for_precision(t, s, 0.75)
    # at >= 0.4: tp 3 / 4 predicted = 0.75; at >= 0.3: 4 / 5 = 0.8 -> the lowest is 0.3
    assert thr == 0.3 and rec == 1.0
    thr, rec = threshold_for_precision(t, s, 1.0)
    assert thr == 0.5 and rec == 0.75
    assert threshold_for_precision([0, 0], [0.1, 0.2], 0.5) == (float("inf"), 0.0)


def test_ranking_bad_input():
    with pytest.raises(ValueError, match="same"):
        average_precision([0, 1], [0.1])
    with pytest.raises(ValueError, match="finite"):
        average_precision([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="0/1"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="average"):
        roc_auc([0, 1], [0.1, 0.2], average="samples-ish")


# ----------------------------------------------------------------------------- COCO
def _coco_case(rng, n_images=12, n_cats=4, crowd=True, ties=False, empty=True):
    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(n_images)]
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(n_cats)]
    anns, dets = [], []
    aid = 1
    for im in images:
        if empty and im["id"] % 5 == 0:
            continue  # images with no ground truth
        for _ in range(rng.integers(0, 8)):
            x, y = rng.uniform(0, 560, 2)
            w, h = rng.uniform(4, 200, 2)
            c = int(rng.integers(1, n_cats + 1))
            anns.append({"id": aid, "image_id": im["id"], "category_id": c, "bbox": [x, y, w, h],
                         "area": float(w * h * rng.uniform(0.5, 1.0)), "iscrowd": int(crowd and rng.random() < 0.1)})
            aid += 1
            for _ in range(rng.integers(0, 4)):  # duplicates and jittered detections
                j = rng.normal(0, 0.1, 4) * [w, h, w, h]
                score = float(np.round(rng.random(), 1) if ties else rng.random())
                dets.append({"image_id": im["id"], "category_id": c if rng.random() < 0.8 else int(rng.integers(1, n_cats + 1)),
                             "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])], "score": score})
        if empty and im["id"] % 7 == 0:
            continue
        for _ in range(rng.integers(0, 4)):  # false positives, some on images without ground truth
            dets.append({"image_id": im["id"], "category_id": int(rng.integers(1, n_cats + 1)),
                         "bbox": [*rng.uniform(0, 500, 2), *rng.uniform(2, 150, 2)], "score": float(rng.random())})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _pycocotools(gt, dets):
    return cocoeval(gt, dets)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_coco_equals_pycocotools(seed, ties):
    rng = np.random.default_rng(seed)
    gt, dets = _coco_case(rng, n_images=10 + seed, ties=ties)
    ref = _pycocotools(gt, dets)
    ours = evaluate_coco(gt, dets)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], rtol=0, atol=1e-12)


def test_coco_streaming_merge_and_xyxy_updates_equal_files():
    rng = np.random.default_rng(42)
    gt, dets = _coco_case(rng, n_images=20)
    ref = evaluate_coco(gt, dets)
    a, b = COCOEvaluator(category_ids=[1, 2, 3, 4]), COCOEvaluator(category_ids=[1, 2, 3, 4])
    for im in gt["images"]:
        i = im["id"]
        g = [x for x in gt["annotations"] if x["image_id"] == i]
        d = [x for x in dets if x["image_id"] == i]
        xyxy = lambda bb: [bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]]  # noqa: E731
        (a if i % 2 else b).update(
            i, (np.array([xyxy(x["bbox"]) for x in d]).reshape(-1, 4), [x["score"] for x in d],
                [x["category_id"] for x in d]),
            np.array([xyxy(x["bbox"]) for x in g]).reshape(-1, 4), [x["category_id"] for x in g],
            gt_iscrowd=[x["iscrowd"] for x in g], gt_area=[x["area"] for x in g])
    got = a.merge(b).compute()
    # xyxy -> xywh in float64 can move a box by an ulp: stats agree to 1e-9
    np.testing.assert_allclose(got.stats, ref.stats, atol=1e-9)
    assert set(got.per_class_ap) == {1, 2, 3, 4}


def test_coco_edge_cases():
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}]}
    perfect = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}]
    r = evaluate_coco(gt, perfect)
    np.testing.assert_allclose(r.stats, _pycocotools(gt, perfect).stats, atol=1e-9)
    assert r.stats[0] == pytest.approx(1.0)
    none = evaluate_coco(gt, [])
    assert none.stats[0] == 0.0
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_coco(gt, [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    ev = COCOEvaluator()
    with pytest.raises(ValueError, match=r"gt_boxes must have shape \(N, 4\)"):
        ev.update(1, (np.zeros((0, 4)), [], []), np.zeros((2, 3)), [1, 1])
    with pytest.raises(ValueError, match="detection scores must have shape"):
        ev.update(1, (np.zeros((2, 4)), [0.5], [1, 1]), np.zeros((0, 4)), [])


# pycocotools' evaluateImg records a match as the ground truth's *id* (dtMatches) and accumulate tests that
# value for truth, so a match to the annotation with id 0 is a false positive that still uses the ground truth
# up; the detection, counted as unmatched, is ignored where its area is outside the range (faster-coco-eval
# does the same). pyimgcls copies that by default (gt_id_zero="pycocotools") and offers "match".
def _zero_id_case(seed, where):
    """A _coco_case whose annotation ids run from 0, id 0 on a chosen annotation, with a detection on it."""
    rng = np.random.default_rng(seed)
    gt, dets = _coco_case(rng, n_images=10 + seed, n_cats=3)
    anns = gt["annotations"]
    if where == "first":  # a converter that numbers from 0: id 0 on the first annotation
        zero = 0
    elif where == "crowd":
        zero = int(rng.integers(len(anns)))
        anns[zero]["iscrowd"] = 1
    else:  # a random non-crowd annotation
        zero = int(rng.choice([k for k, a in enumerate(anns) if not a["iscrowd"]]))
    if where != "crowd":
        anns[zero]["iscrowd"] = 0
    others = [k for k in range(len(anns)) if k != zero]
    for new_id, k in zip(rng.permutation(len(others)) + 1, others):
        anns[k]["id"] = int(new_id)
    anns[zero]["id"] = 0
    a = anns[zero]
    dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]),
                 "score": float(rng.random())})
    return gt, dets, zero


def _renumbered(gt):
    """The same ground truth with id 0 replaced by an unused id: what "match" must equal."""
    free = max(a["id"] for a in gt["annotations"]) + 1
    return {**gt, "annotations": [{**a, "id": a["id"] or free} for a in gt["annotations"]]}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("where", ["first", "random", "crowd"])
def test_coco_gt_id_zero_equals_pycocotools_and_faster_coco_eval(seed, where):
    gt, dets, _ = _zero_id_case(seed, where)
    ours = evaluate_coco(gt, dets)
    for faster in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = cocoeval(gt, dets, faster=faster)
        np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.recall, ref.eval["recall"], rtol=0, atol=1e-12)
    # "match": id 0 is an ordinary ground truth, as if it had any other id
    corrected = evaluate_coco(gt, dets, gt_id_zero="match")
    renumbered = _pycocotools(_renumbered(gt), dets)
    np.testing.assert_allclose(corrected.stats, renumbered.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(corrected.precision, renumbered.eval["precision"], rtol=0, atol=1e-12)
    if where == "crowd":  # a crowd ground truth only ever makes its matches ignored: the id changes nothing
        np.testing.assert_array_equal(corrected.precision, ours.precision)
    else:  # the case reaches the rule: the detection on ground truth 0 is a false positive
        assert (corrected.recall > ours.recall).any()


def test_coco_gt_id_zero_from_updates():
    gt, dets, _ = _zero_id_case(5, "random")
    ids = [c["id"] for c in gt["categories"]]
    with_ids, without_ids, match = (COCOEvaluator(box_format="xywh", category_ids=ids),
                                    COCOEvaluator(box_format="xywh", category_ids=ids),
                                    COCOEvaluator(box_format="xywh", category_ids=ids, gt_id_zero="match"))
    for im in gt["images"]:
        g = [x for x in gt["annotations"] if x["image_id"] == im["id"]]
        d = [x for x in dets if x["image_id"] == im["id"]]
        args = (im["id"], (np.array([x["bbox"] for x in d]).reshape(-1, 4), [x["score"] for x in d],
                           [x["category_id"] for x in d]),
                np.array([x["bbox"] for x in g]).reshape(-1, 4), [x["category_id"] for x in g])
        kw = {"gt_iscrowd": [x["iscrowd"] for x in g], "gt_area": [x["area"] for x in g]}
        with_ids.update(*args, gt_ids=[x["id"] for x in g], **kw)
        without_ids.update(*args, **kw)
        match.update(*args, gt_ids=[x["id"] for x in g], **kw)
    np.testing.assert_allclose(with_ids.compute().stats, _pycocotools(gt, dets).stats, rtol=0, atol=1e-9)
    # without ids no ground truth has id 0
    expected = _pycocotools(_renumbered(gt), dets).stats
    np.testing.assert_allclose(without_ids.compute().stats, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(match.compute().stats, expected, rtol=0, atol=1e-9)


def test_coco_negative_gt_ids_are_ordinary_like_pycocotools():
    # pycocotools tests dtMatches for truth, so a negative id is a match (faster-coco-eval tests > 0 and
    # counts it as a false positive); pyimgcls follows pycocotools
    gt, dets, zero = _zero_id_case(1, "random")
    gt["annotations"] = [{**a, "id": -a["id"] - 1} for a in gt["annotations"]]  # -1, -2, ...: no id 0
    np.testing.assert_allclose(evaluate_coco(gt, dets).stats, _pycocotools(gt, dets).stats, rtol=0, atol=1e-9)


def test_coco_gt_id_zero_arguments():
    with pytest.raises(ValueError, match="gt_id_zero must be 'pycocotools' or 'match', got 'ignore'"):
        COCOEvaluator(gt_id_zero="ignore")
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match=r"gt_ids must have shape \(1,\), got \(2,\)"):
        COCOEvaluator().update(1, (box, [0.9], [1]), box, [1], gt_ids=[0, 1])
    with pytest.raises(ValueError, match="gt_ids must hold whole numbers"):
        COCOEvaluator().update(1, (box, [0.9], [1]), box, [1], gt_ids=[0.5])
    ev = COCOEvaluator()
    ev.update(1, (box, [0.9], [1]), box, [1], gt_ids=[0])
    assert ev.compute().stats[0] == 0.0  # the one detection is a false positive, as in pycocotools
    ev = COCOEvaluator(gt_id_zero="match")
    ev.update(1, (box, [0.9], [1]), box, [1], gt_ids=[0])
    assert ev.compute().stats[0] == pytest.approx(1.0)


@st.composite
def voc_cases(draw):
    """Several images and classes; boxes on a coarse grid (exact overlaps such as IoU 0.5, equal overlaps),
    jittered and exact duplicate detections, difficult flags, tied scores."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_cls = draw(st.integers(1, 4))
    grid = draw(st.sampled_from([5.0, 0.0]))  # 0: continuous coordinates
    p_diff = draw(st.sampled_from([0.0, 0.2, 0.6]))
    ties = draw(st.sampled_from(["none", "some", "all"]))

    def box(n):
        xy = rng.uniform(0, 60, (n, 2))
        wh = rng.uniform(1, 40, (n, 2))
        b = np.concatenate([xy, xy + wh], axis=1)
        return np.round(b / grid) * grid if grid else b

    gts, dets = [], []
    for _ in range(draw(st.integers(1, 6))):
        G = int(rng.integers(0, 7))
        gb, gc, gd = box(G), rng.integers(0, n_cls, G), rng.random(G) < p_diff
        n_fp = int(rng.integers(0, 4))
        db, dc = [box(n_fp)], [rng.integers(0, n_cls, n_fp)]  # false positives
        for k in range(G):
            m = int(rng.integers(0, 4))
            j = gb[k] + rng.normal(0, 3, (m, 4)) * (rng.random((m, 1)) < 0.7)  # some exact duplicates
            db.append(np.round(j / grid) * grid if grid else j)
            dc.append(np.where(rng.random(m) < 0.85, gc[k], rng.integers(0, n_cls, m)))
        db, dc = np.concatenate(db), np.concatenate(dc)
        sc = rng.random(len(dc))
        if ties == "some":
            sc = np.round(sc * 4) / 4
        elif ties == "all":
            sc[:] = 0.5
        gts.append((gb, gc, gd))
        dets.append((db, sc, dc))
    return dets, gts, draw(st.sampled_from([0.5, 0.0, 0.25, 0.75]))


@given(voc_cases())
def test_voc_ap_equals_devkit_twin(case):
    dets, gts, thr = case
    for use_07 in (False, True):
        ours = voc_average_precision(dets, gts, iou_threshold=thr, use_07_metric=use_07)
        ref = voc_ap_ref(dets, gts, iou_threshold=thr, use_07_metric=use_07)
        assert ours.keys() == ref.keys()
        for k in ref:
            assert ours[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12, nan_ok=True), (k, use_07)


def _one_image(gt_boxes, gt_classes, det_boxes, scores, det_classes, difficult=None):
    g = (np.array(gt_boxes, float).reshape(-1, 4), np.array(gt_classes))
    if difficult is not None:
        g = (*g, np.array(difficult, bool))
    return [(np.array(det_boxes, float).reshape(-1, 4), np.array(scores, float), np.array(det_classes))], [g]


def test_voc_ap_rules_by_hand():
    # IoU exactly 0.5 is a match (VOCevaldet.m: ovmax >= minoverlap; py-faster-rcnn writes >)
    d, g = _one_image([[0, 0, 10, 10]], [0], [[0, 0, 10, 5]], [0.9], [0])
    assert voc_average_precision(d, g)[0] == 1.0
    assert voc_average_precision(d, g, iou_threshold=0.5 + 1e-9)[0] == 0.0
    # no overlap is never a match, even at threshold 0 (the devkit only considers overlapping boxes)
    d, g = _one_image([[0, 0, 10, 10]], [0], [[20, 20, 30, 30], [10, 0, 20, 10]], [0.9, 0.8], [0, 0])
    assert voc_average_precision(d, g, iou_threshold=0.0)[0] == 0.0
    # equal scores keep the order given: the false positive listed first comes first -> AP 0.5, not 1.0
    d, g = _one_image([[0, 0, 10, 10]], [0], [[50, 50, 60, 60], [0, 0, 10, 10]], [0.5, 0.5], [0, 0])
    assert voc_average_precision(d, g)[0] == 0.5
    d, g = _one_image([[0, 0, 10, 10]], [0], [[0, 0, 10, 10], [50, 50, 60, 60]], [0.5, 0.5], [0, 0])
    assert voc_average_precision(d, g)[0] == 1.0
    # a detection on a difficult box is neither true nor false positive; npos leaves difficult boxes out;
    # the best-overlap box decides even when it is difficult or taken (the duplicate is a false positive)
    d, g = _one_image([[0, 0, 10, 10], [0, 0, 10, 9], [40, 40, 50, 50]], [0, 0, 0],
                      [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 9], [40, 40, 50, 50]], [0.9, 0.8, 0.7, 0.6],
                      [0, 0, 0, 0], difficult=[0, 1, 0])
    # order: TP (box 0), FP (duplicate: box 0 is the best overlap again), ignored (difficult box 1), TP (box 2)
    # -> recall 1/2, 1/2, 1/2, 1; precision 1, 1/2, 1/2, 2/3 -> all-point 1/2 * 1 + 1/2 * 2/3
    assert voc_average_precision(d, g)[0] == pytest.approx(0.5 + 1 / 3, abs=1e-15)
    # a class whose ground truths are all difficult has no AP (npos = 0) and stays out of mAP
    d, g = _one_image([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1], [[0, 0, 10, 10]], [0.9], [0], difficult=[0, 1])
    r = voc_average_precision(d, g)
    assert r == {0: 1.0, "mAP": 1.0}
    miss = voc_average_precision([(np.zeros((0, 4)), [], [])], [(np.array([[0, 0, 1, 1]]), [0])])
    assert miss == {0: 0.0, "mAP": 0.0}


def test_voc07_recall_levels_are_the_devkit_float_values():
    # 10 ground truths; the first 3 found, then 3 false positives, then the other 7. Recall reaches exactly
    # 3/10 at precision 1, but np.arange's level 0.30000000000000004 is above 0.3, so that level takes the
    # best precision at recall > 0.3 (4/7), as py-faster-rcnn, Detectron2 and mmdetection compute it
    boxes = np.array([[20.0 * k, 0, 20.0 * k + 10, 10] for k in range(10)])
    fps = np.array([[500.0 + 20 * k, 0, 510.0 + 20 * k, 10] for k in range(3)])
    det = np.concatenate([boxes[:3], fps, boxes[3:]])
    d, g = _one_image(boxes, [0] * 10, det, np.linspace(1, 0.1, 13), [0] * 13)
    r = voc_average_precision(d, g, use_07_metric=True)
    # levels 0, 0.1, 0.2: 1; 0.3 (0.30000000000000004) .. 0.6 (0.6000000000000001): 4/7 at recall 0.4 (tp 4 of
    # 7 detections) and better later; the envelope: max precision at recall >= level
    prec = np.array([1, 1, 1, 3 / 4, 3 / 5, 3 / 6, 4 / 7, 5 / 8, 6 / 9, 7 / 10, 8 / 11, 9 / 12, 10 / 13])
    rec = np.array([1, 2, 3, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10]) / 10
    expected = sum(prec[rec >= t].max() for t in np.arange(0.0, 1.1, 0.1)) / 11
    assert r[0] == pytest.approx(expected, abs=1e-15)
    assert r[0] != pytest.approx(sum(prec[rec >= t / 10].max() for t in range(11)) / 11)  # exact levels differ


@pytest.mark.parametrize("thr", [-0.1, 1.5, np.nan])
def test_voc_ap_refuses_bad_threshold(thr):
    d, g = _one_image([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.9], [0])
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        voc_average_precision(d, g, iou_threshold=thr)


# ----------------------------------------------------------------------------- values that do not fit
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_top_k_accuracy_refuses_non_finite_scores(bad):
    s = np.full((3, 4), bad)
    with pytest.raises(ValueError, match="scores must be finite"):
        top_k_accuracy([0, 1, 2], s, k=1)
    s = np.eye(3, 4)
    s[1, 2] = bad
    with pytest.raises(ValueError, match=r"at \(1, 2\)"):
        top_k_accuracy([0, 1, 2], s, k=2)
    with pytest.raises(ValueError, match="scores must be finite"):
        top_k_accuracy([0, 1], np.array([0.5, bad]), k=1)


def test_coco_refuses_fractional_or_huge_class_ids():
    ev = COCOEvaluator()
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match="gt_classes must hold whole numbers, got 1.5"):
        ev.update(1, (box, [0.9], [1]), box, [1.5])
    with pytest.raises(ValueError, match="detection classes must hold whole numbers"):
        ev.update(1, (box, [0.9], [np.nan]), box, [1])
    with pytest.raises(ValueError, match="must fit int64"):
        ev.update(1, (box, [0.9], [1]), box, np.array([2.0 ** 70]))
    ev.update(1, (box, [0.9], [1.0]), box, np.array([1.0]))  # whole floats are fine
    assert ev.compute().stats[0] == pytest.approx(1.0)


def test_voc_ap_refuses_nan():
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match="detection scores must be finite"):
        voc_average_precision([(box, [np.nan], [0])], [(box, [0])])
    with pytest.raises(ValueError, match="detection boxes must be finite"):
        voc_average_precision([(box * np.nan, [0.5], [0])], [(box, [0])])
