import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyimgcls import Detections, PreprocessConfig, preprocess
from pyimgcls import ops

from _helpers.reference import batched_nms_ref, iou_ref, nms_griddable_ref, nms_ref, soft_nms_ref


def clustered_boxes(rng, n, n_objects=None, scale=640.0, dtype=np.float32, jitter=0.08):
    """Detector-like candidates: many jittered copies around fewer objects."""
    n_objects = n_objects or max(1, n // 50)
    centres = rng.uniform(0.05, 0.95, (n_objects, 2)) * scale
    sizes = rng.uniform(0.03, 0.3, (n_objects, 2)) * scale
    k = rng.integers(0, n_objects, n)
    c = centres[k] + rng.normal(0, jitter, (n, 2)) * sizes[k]
    s = sizes[k] * rng.uniform(0.8, 1.25, (n, 2))
    boxes = np.concatenate([c - s / 2, c + s / 2], 1).astype(dtype)
    return boxes, rng.random(n).astype(dtype), k


@st.composite
def nms_cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(0, 120))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from([1.0, 640.0, 1e5]))
    boxes, scores, _ = clustered_boxes(rng, n, n_objects=draw(st.integers(1, 6)), scale=scale, dtype=dtype)
    if draw(st.booleans()):  # equal scores, duplicates
        scores = np.round(scores * 4).astype(dtype) / 4
        if n > 3:
            boxes[1] = boxes[0]
    if draw(st.booleans()) and n > 2:  # degenerate boxes
        boxes[2, 2] = boxes[2, 0]
        boxes[-1, [0, 2]] = boxes[-1, [2, 0]]
    return boxes, scores, draw(st.floats(0, 1)), rng.integers(0, draw(st.sampled_from([1, 3, 80])), n)


@given(nms_cases())
def test_nms_matches_reference(case):
    boxes, scores, thr, _ = case
    np.testing.assert_array_equal(ops.nms(boxes, scores, thr), nms_ref(boxes, scores, thr))


@given(nms_cases(), st.integers(0, 10), st.floats(0, 1))
def test_nms_max_output_and_score_threshold(case, k, sthr):
    boxes, scores, thr, _ = case
    np.testing.assert_array_equal(ops.nms(boxes, scores, thr, score_threshold=sthr, max_output=k),
                                  nms_ref(boxes, scores, thr, score_threshold=sthr, max_output=k))


@given(nms_cases())
def test_batched_nms_matches_reference(case):
    boxes, scores, thr, classes = case
    np.testing.assert_array_equal(ops.batched_nms(boxes, scores, classes, thr, threads=2),
                                  batched_nms_ref(boxes, scores, classes, thr))


def test_threshold_boundary_is_strict():
    # IoU exactly 0.5 -> kept (suppression needs IoU > threshold); just above -> suppressed.
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)  # IoU = 50 / 100 = 0.5
    s = np.array([0.9, 0.8], np.float32)
    assert ops.nms(a, s, 0.5).tolist() == [0, 1]
    assert ops.nms(a, s, np.nextafter(np.float32(0.5), np.float32(0))).tolist() == [0]
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 5.0001]], np.float32)
    assert iou_ref(b[0], b[1]) > 0.5
    assert ops.nms(b, s, 0.5).tolist() == [0]


def test_large_coordinates_are_exact_per_class():
    # Boxes far apart in coordinates that an offset trick (boxes + class * max_wh) would overlap
    boxes = np.array([[1e5, 1e5, 1e5 + 50, 1e5 + 50], [1e5 + 1, 1e5, 1e5 + 51, 1e5 + 50], [0, 0, 50, 50]], np.float64)
    scores = np.array([0.9, 0.8, 0.7])
    np.testing.assert_array_equal(ops.batched_nms(boxes, scores, [0, 1, 0], 0.5), [0, 1, 2])
    np.testing.assert_array_equal(ops.batched_nms(boxes, scores, [0, 0, 0], 0.5), [0, 2])


def test_ties_keep_input_order():
    boxes = np.array([[0, 0, 1, 1], [10, 10, 11, 11], [20, 20, 21, 21]], np.float32)
    assert ops.nms(boxes, np.ones(3, np.float32), 0.5).tolist() == [0, 1, 2]


def test_clustered_20k_matches_reference_subset():
    rng = np.random.default_rng(1)
    boxes, scores, _ = clustered_boxes(rng, 3000)
    np.testing.assert_array_equal(ops.nms(boxes, scores, 0.45), nms_ref(boxes, scores, 0.45))


def test_nms_agrees_with_opencv_on_separated_scores():
    # cv2.dnn.NMSBoxes works on xywh in float; with distinct scores and IoUs away from the
    # threshold it keeps the same boxes.
    import cv2

    rng = np.random.default_rng(3)
    boxes, scores, _ = clustered_boxes(rng, 400)
    ious = ops.box_iou(boxes, boxes)
    ours = ops.nms(boxes, scores, 0.5)
    ref = cv2.dnn.NMSBoxes(ops.box_convert(boxes, "xyxy", "xywh").tolist(), scores.tolist(), 0.0, 0.5)
    ref = np.asarray(ref).reshape(-1)
    near = np.abs(ious - 0.5) < 1e-4
    assert not near[np.ix_(ours, ours)].any()
    assert set(ours.tolist()) == set(ref.tolist())


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@given(case=nms_cases(), sigma=st.floats(0.1, 2))
def test_soft_nms_matches_reference(method, case, sigma):
    boxes, scores, thr, _ = case
    idx, s = ops.soft_nms(boxes, scores, method=method, sigma=sigma, iou_threshold=thr, score_threshold=0.05)
    ridx, rs = soft_nms_ref(boxes, scores, method=method, sigma=sigma, iou_threshold=thr, score_threshold=0.05)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(s, rs, rtol=1e-6)


@given(nms_cases())
def test_box_iou_matches_reference(case):
    boxes, _, _, _ = case
    got = ops.box_iou(boxes, boxes[::-1].copy())
    ref = np.array([[iou_ref(a, b) for b in boxes[::-1]] for a in boxes]).reshape(len(boxes), len(boxes))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)


@given(st.lists(st.floats(-1e4, 1e4), min_size=4, max_size=40).filter(lambda v: len(v) % 4 == 0))
def test_box_convert_round_trip(vals):
    b = np.array(vals, np.float64).reshape(-1, 4)
    for fmt in ("xywh", "cxcywh"):
        np.testing.assert_allclose(ops.box_convert(ops.box_convert(b, "xyxy", fmt), fmt, "xyxy"), b, atol=1e-9)


def test_bad_input():
    b = np.zeros((3, 4), np.float32)
    s = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), got \(3, 3\)"):
        ops.nms(np.zeros((3, 3), np.float32), s, 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\), got \(2,\)"):
        ops.nms(b, s[:2], 0.5)
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        ops.nms(b, s, 1.5)
    bad = b.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="boxes must be finite.*index 1"):
        ops.nms(bad, s, 0.5)
    with pytest.raises(ValueError, match="scores must be finite"):
        ops.nms(b, np.array([0, np.inf, 0], np.float32), 0.5)
    with pytest.raises(ValueError, match="class_ids must have shape"):
        ops.batched_nms(b, s, [0, 1], 0.5)
    with pytest.raises(ValueError, match="in_fmt"):
        ops.box_convert(b, "ltrb", "xyxy")
    with pytest.raises(ValueError, match="layout"):
        ops.decode_yolo(np.zeros((1, 84, 10), np.float32), layout="v7")
    with pytest.raises(ValueError, match="method"):
        ops.soft_nms(b, s, method="hard")
    with pytest.raises(TypeError, match="numeric"):
        ops.nms(np.array([["a"] * 4]), [1.0], 0.5)


def test_empty_inputs():
    e = np.zeros((0, 4), np.float32)
    assert ops.nms(e, np.zeros(0, np.float32), 0.5).shape == (0,)
    assert ops.batched_nms(e, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).shape == (0,)
    assert ops.box_iou(e, np.zeros((3, 4), np.float32)).shape == (0, 3)
    idx, s = ops.soft_nms(e, np.zeros(0, np.float32))
    assert idx.shape == (0,) and s.shape == (0,)
    dets = ops.decode_yolo(np.zeros((2, 84, 0), np.float32), layout="v8")
    assert [len(d) for d in dets] == [0, 0]


# ----------------------------------------------------------------------------- Detections
def test_detections_validation_and_indexing():
    d = Detections(xyxy=np.array([[0, 0, 10, 10], [5, 5, 8, 9]]), confidence=[0.9, 0.3], class_id=[1, 0],
                   class_names=["cat", "dog"])
    assert len(d) == 2 and d.labels == ["dog", "cat"]
    assert len(d[d.confidence > 0.5]) == 1 and d[[1]].class_id.tolist() == [0]
    with pytest.raises(ValueError, match=r"confidence must have shape \(2,\)"):
        Detections(xyxy=np.zeros((2, 4)), confidence=[1.0], class_id=[0, 0])
    with pytest.raises(ValueError, match="xyxy must have shape"):
        Detections(xyxy=np.zeros((2, 3)), confidence=[1, 1], class_id=[0, 0])
    coco = d.to_coco(7)
    assert coco[1] == {"image_id": 7, "category_id": 0, "bbox": [5.0, 5.0, 3.0, 4.0], "score": pytest.approx(0.3)}
    assert [a["category_id"] for a in d.to_coco(7, category_ids=[18, 17])] == [17, 18]
    with pytest.raises(ValueError, match="category_ids has 1 entries, but a detection has class id 1"):
        d.to_coco(7, category_ids=[17])  # an IndexError before
    assert len(Detections.empty()) == 0


# ----------------------------------------------------------------------------- decode_yolo on ONNX models
def _tiny_yolo(layout: str, n_classes: int, size: int, seed: int):
    """A small real ONNX detector head: pool -> 1x1 conv -> sigmoid -> scale -> reshape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    ch = (4 if layout == "v8" else 5) + n_classes
    grid = size // 8
    w = rng.normal(0, 3, (ch, 3, 1, 1)).astype(np.float32)
    b = rng.normal(0, 1, ch).astype(np.float32)
    mul = np.ones((1, ch, 1, 1), np.float32)
    mul[0, :2] = size
    mul[0, 2:4] = size / 3
    nodes = [
        helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["p", "w", "b"], ["c"]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Mul", ["s", "mul"], ["m"]),
        helper.make_node("Reshape", ["m", "shape"], ["r" if layout == "v5" else "y"]),
    ]
    if layout == "v5":
        nodes.append(helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1]))
    out_shape = [1, ch, grid * grid] if layout == "v8" else [1, grid * grid, ch]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(mul, "mul"),
             numpy_helper.from_array(np.array([1, ch, grid * grid], np.int64), "shape")]
    graph = helper.make_graph(nodes, "tiny_yolo", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("layout", ["v5", "v8"])
@pytest.mark.parametrize("multi_label,agnostic", [(False, False), (True, False), (False, True)])
def test_decode_yolo_on_onnx_model_outputs(photos, layout, multi_label, agnostic):
    import onnxruntime as ort

    from _helpers.reference import decode_yolo_ref

    size = 128
    sess = ort.InferenceSession(_tiny_yolo(layout, 5, size, seed=4), providers=["CPUExecutionProvider"])
    cfg = PreprocessConfig(size=(size, size), resize="letterbox", mean=(0, 0, 0), std=(1, 1, 1))
    ims = [photos["chelsea"], photos["astronaut"], photos["coffee"]]
    batch, tfs = preprocess(ims, cfg)
    out = np.concatenate([sess.run(None, {"x": batch[i:i + 1]})[0] for i in range(len(ims))])
    dets = ops.decode_yolo(out, layout=layout, conf_threshold=0.3, iou_threshold=0.5, max_det=50,
                           multi_label=multi_label, class_agnostic=agnostic)
    assert len(dets) == len(ims)
    total = 0
    for i, d in enumerate(dets):
        b, s, c = decode_yolo_ref(out[i], layout, 0.3, 0.5, 50, agnostic=agnostic, multi_label=multi_label)
        np.testing.assert_array_equal(d.xyxy, b)
        np.testing.assert_array_equal(d.confidence, s)
        np.testing.assert_array_equal(d.class_id, c)
        total += len(d)
        # letterbox un-mapping: against the float64 formula
        t = tfs[i]
        orig = d.to_original(t, clip=False)
        sy, sx = t.scale
        oy, ox = t.offset
        want = (b.astype(np.float64) - [ox, oy, ox, oy]) / [sx, sy, sx, sy]
        np.testing.assert_allclose(orig.xyxy, want.astype(np.float32), rtol=1e-6)
    assert total > 0


def test_decode_yolo_v8_large_random_against_reference():
    from _helpers.reference import decode_yolo_ref

    rng = np.random.default_rng(0)
    n, c = 2000, 80
    out = np.zeros((2, 4 + c, n), np.float32)
    boxes, _, _ = clustered_boxes(rng, n, n_objects=30)
    cxcywh = ops.box_convert(boxes, "xyxy", "cxcywh")
    out[:, :4] = cxcywh.T
    out[:, 4:] = rng.random((2, c, n)) ** 8
    dets = ops.decode_yolo(out, layout="v8", conf_threshold=0.3, iou_threshold=0.6)
    for i in range(2):
        b, s, k = decode_yolo_ref(out[i], "v8", 0.3, 0.6, 300)
        np.testing.assert_array_equal(dets[i].confidence, s)
        np.testing.assert_array_equal(dets[i].class_id, k)
        np.testing.assert_array_equal(dets[i].xyxy, b)


@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.95), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([1.0, 1e3, 1e5]))
def test_pairs_just_above_and_below_threshold(seed, thr, dtype, scale):
    # Pairs built to have IoU within a few ulps of the threshold, shifted and nested, small and
    # large: exercises the culling radius right at its bound.
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(30):
        x, y = rng.uniform(0, scale, 2)
        w, h = rng.uniform(0.01, 0.2, 2) * scale
        a = [x, y, x + w, y + h]
        d = w * (1 - thr) / (1 + thr)  # shift with IoU = thr
        for eps in (-1e-6, 0.0, 1e-6):
            rows += [a, [x + d * (1 + eps), y, x + w + d * (1 + eps), y + h]]
            rows += [a, [x, y, x + w * thr * (1 + eps), y + h]]  # nested with IoU = thr
    boxes = np.array(rows, dtype)
    scores = rng.random(len(boxes)).astype(dtype)
    np.testing.assert_array_equal(ops.nms(boxes, scores, thr), nms_ref(boxes, scores, thr))
    classes = np.arange(len(boxes)) // 2 % 3
    np.testing.assert_array_equal(ops.batched_nms(boxes, scores, classes, thr),
                                  batched_nms_ref(boxes, scores, classes, thr))


# ----------------------------------------------------------------------------- values that do not fit
def test_detections_refuse_class_ids_that_do_not_fit():
    box = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match=r"class_id must be in \[0, 2147483648\), got 4294967296"):
        Detections(xyxy=box, confidence=[0.5], class_id=np.array([2 ** 32], np.int64))
    with pytest.raises(ValueError, match=r"class_id must be in \[0, 2\) \(one per class name\), got -1"):
        Detections(xyxy=box, confidence=[0.5], class_id=[-1], class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"got 2"):
        Detections(xyxy=box, confidence=[0.5], class_id=[2], class_names=["a", "b"])
    d = Detections(xyxy=box, confidence=[0.5], class_id=np.array([1], np.int64), class_names=["a", "b"])
    assert d.labels == ["b"] and d.class_id.dtype == np.int32
    with pytest.raises(ValueError, match="xyxy must be finite"):
        Detections(xyxy=box + np.nan, confidence=[0.5], class_id=[0])


def test_box_iou_refuses_nan():
    a = np.array([[0, 0, 10, 10]], np.float32)
    with pytest.raises(ValueError, match=r"boxes2 must be finite, got \[nan, 0.0, 10.0, 10.0\] at row 0"):
        ops.box_iou(a, np.array([[np.nan, 0, 10, 10]], np.float32))
    with pytest.raises(ValueError, match="boxes1 must be finite"):
        ops.box_iou(np.array([[0, 0, np.inf, 1]]), a)


# ----------------------------------------------------------------------------- the culling grid's edge cases
# Boxes that are finite yet near the ends of the floating-point range made the culling grid's
# cell index NaN (-> INT_MIN, an out-of-bounds write); boxes far apart along a line made it size
# itself by their spread (gigabytes). The calls that crashed run in a child process, so that a
# regression fails these tests instead of killing the run.
EXTREME = {  # each of these crashed ops.nms / ops.batched_nms before the grid was bounded
    "huge, far apart": np.array([[0, 0, 1, 1], [1e308, 0, 1.7e308, 1]]),
    "huge spans": np.array([[-1e308, -1e308, 1e308, 1e308], [0, 0, 1, 1], [1e308, 1e308, 1.5e308, 1.5e308],
                            [-1e308, -1e308, 1e308, 1e308], [0.5, 0, 1.5, 1]]),
    "subnormal x span": np.array([[1e-320, 0, 2e-320, 10], [1.5e-320, 5, 3e-320, 15], [0, 20, 1e-320, 30]]),
    "subnormal float32": np.array([[1e-44, 0, 3e-44, 10], [2e-44, 5, 4e-44, 15], [0, 20, 1e-44, 30]], np.float32),
}
EXTREME_CHILD = r"""
import sys
import numpy as np
from pyimgcls import ops
data = np.load(sys.argv[1])
out = {}
for key in data.files:
    if key.startswith("boxes:"):
        name = key[len("boxes:"):]
        boxes, scores, classes = data[key], data["scores:" + name], data["classes:" + name]
        for thr in (0.0, 0.5):
            out[f"nms:{thr}:{name}"] = ops.nms(boxes, scores, thr)
            out[f"batched:{thr}:{name}"] = ops.batched_nms(boxes, scores, classes, thr, threads=2)
np.savez(sys.argv[2], **out)
"""


def _scores_classes(boxes):
    n = len(boxes)
    return np.linspace(1, 0.5, n).astype(boxes.dtype), np.arange(n) % 2


@pytest.fixture(scope="module")
def extreme_results(tmp_path_factory):
    """The kernel's answers on EXTREME, computed in a child process: (exit status, stderr, results)."""
    d = tmp_path_factory.mktemp("extreme")
    arrays = {}
    for name, boxes in EXTREME.items():
        scores, classes = _scores_classes(boxes)
        arrays.update({f"boxes:{name}": boxes, f"scores:{name}": scores, f"classes:{name}": classes})
    np.savez(d / "in.npz", **arrays)
    r = subprocess.run([sys.executable, "-c", EXTREME_CHILD, str(d / "in.npz"), str(d / "out.npz")],
                       capture_output=True, text=True, timeout=300, cwd="/")
    return r.returncode, r.stderr, (dict(np.load(d / "out.npz")) if r.returncode == 0 else None)


@pytest.fixture(scope="module")
def extremes_safe(extreme_results):
    """In-process tests of extreme layouts run only once the child survived them."""
    if extreme_results[0] != 0:
        pytest.fail(f"the NMS kernel crashes on extreme boxes (exit status {extreme_results[0]}), "
                    "see test_extreme_coordinates_do_not_crash")


def test_extreme_coordinates_do_not_crash(extreme_results):
    rc, err, got = extreme_results
    assert rc == 0, f"child exit status {rc} (-11: SIGSEGV)\n{err[-2000:]}"
    for name, boxes in EXTREME.items():
        scores, classes = _scores_classes(boxes)
        for thr in (0.0, 0.5):
            with np.errstate(all="ignore"):  # the twin overflows like the kernel
                np.testing.assert_array_equal(got[f"nms:{thr}:{name}"], nms_ref(boxes, scores, thr), err_msg=name)
                np.testing.assert_array_equal(got[f"batched:{thr}:{name}"],
                                              batched_nms_ref(boxes, scores, classes, thr), err_msg=name)


THIN_LINE_CHILD = r"""
import resource
import numpy as np
from pyimgcls import ops
n = 20000  # in pairs 1e6 apart: IoU 0.82 within a pair, 0 between pairs
x = np.repeat(np.arange(n // 2) * 1e6, 2) + np.tile([0.0, 1e-4], n // 2)
boxes = np.stack([x, np.zeros(n), x + 1e-3, np.ones(n)], 1)
scores = np.random.default_rng(0).random(n)
winners = np.where(scores[0::2] >= scores[1::2], np.arange(0, n, 2), np.arange(1, n, 2))
want = winners[np.argsort(-scores[winners], kind="stable")]
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
np.testing.assert_array_equal(ops.nms(boxes, scores, 0.5), want)
np.testing.assert_array_equal(ops.batched_nms(boxes, scores, np.zeros(n, np.int64), 0.5, threads=2), want)
print("ok")
"""


def test_thin_boxes_far_apart_need_memory_linear_in_n():
    """20,000 thin boxes along one line, 1e6 apart: the grid used to size itself by their spread
    (6.9 GB, 10-20 s); it is now bounded by their number. The child may map only 512 MiB more
    than it has when it starts NMS."""
    r = subprocess.run([sys.executable, "-c", THIN_LINE_CHILD], capture_output=True, text=True, timeout=300, cwd="/")
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stderr[-2000:]}"
    assert r.stdout.strip() == "ok"


def layout_boxes(layout: str, n: int, rng, dtype) -> np.ndarray:
    """Degenerate layouts for the culling grid; LAYOUTS names the path each one takes."""
    f64 = dtype == np.float64
    if layout == "line":  # thin boxes along one horizontal line, neighbours overlapping
        x = rng.uniform(0, 4 * n, n)
        b = np.stack([x, np.full(n, 5.0), x + rng.uniform(0.5, 3, n), np.full(n, 5.001)], 1)
    elif layout == "line, far apart":  # the same in pairs 1e6 apart: the spread far above the box sizes
        x = np.repeat(np.arange((n + 1) // 2) * 1e6, 2)[:n] + rng.uniform(0, 2, n)
        b = np.stack([x, np.zeros(n), x + rng.uniform(1, 4, n), np.ones(n)], 1)
    elif layout == "identical":
        b = np.tile([3.0, 4.0, 10.0, 20.0], (n, 1))
    elif layout == "clusters far apart":
        b, _, _ = clustered_boxes(rng, n, n_objects=4, dtype=np.float64)
        b[::2] += 1e12 if f64 else 1e7
    elif layout == "small":  # tiny but normal numbers: still on the grid
        b, _, _ = clustered_boxes(rng, n, n_objects=3, scale=1e-140 if f64 else 1e-13, dtype=np.float64)
    elif layout == "subnormal":  # spans and areas below the smallest normal number
        b, _, _ = clustered_boxes(rng, n, n_objects=3, scale=1e-318 if f64 else 1e-40, dtype=np.float64)
    elif layout == "tiny areas":  # normal coordinates, areas too small for the grid: overlaps still suppress
        b, _, _ = clustered_boxes(rng, n, n_objects=3, scale=1e-147 if f64 else 1e-17, dtype=np.float64)
    elif layout == "huge":  # corners anywhere in the range: spans and areas overflow
        top = np.finfo(dtype).max
        c = np.sort(rng.uniform(-1, 1, (n, 2, 2)) * top, axis=1)
        b = np.stack([c[:, 0, 0], c[:, 0, 1], c[:, 1, 0], c[:, 1, 1]], 1)
    elif layout == "mixed":  # boxes on the grid, tiny ones off it near the origin, big ones over both
        b, _, _ = clustered_boxes(rng, n, n_objects=3, dtype=np.float64)
        k = max(1, n // 3)
        tiny = 1e-147 if f64 else 1e-17
        b[:k] = np.concatenate([xy := rng.uniform(0, tiny, (k, 2)), xy + rng.uniform(0.5, 1, (k, 2)) * tiny], 1)
        b[k:k + 2] = [0, 0, 50, 60]
    else:
        raise ValueError(layout)
    return b.astype(dtype)


LAYOUTS = {"line": "grid", "line, far apart": "grid", "identical": "grid", "clusters far apart": "grid",
           "small": "grid", "subnormal": "plain", "tiny areas": "plain", "huge": "plain", "mixed": "mixed"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 50), seed=st.integers(0, 2**32 - 1), thr=st.one_of(st.just(0.0), st.floats(0, 1)))
def test_nms_on_degenerate_layouts_matches_reference(extremes_safe, layout, dtype, n, seed, thr):
    rng = np.random.default_rng(seed)
    boxes = layout_boxes(layout, n, rng, dtype)
    scores = rng.random(n).astype(dtype)
    scores[rng.random(n) < 0.2] = 0.5  # ties
    classes = rng.integers(0, 2, n)
    on_grid = nms_griddable_ref(boxes)
    real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    path = LAYOUTS[layout]  # the layout reaches the path it is named for
    assert on_grid[real].all() if path == "grid" else True
    assert not on_grid.any() if path == "plain" else True
    assert on_grid.any() and (real & ~on_grid).any() if path == "mixed" else True
    with np.errstate(all="ignore"):  # the twin overflows like the kernel
        want, want_b = nms_ref(boxes, scores, thr), batched_nms_ref(boxes, scores, classes, thr)
    np.testing.assert_array_equal(ops.nms(boxes, scores, thr), want)
    np.testing.assert_array_equal(ops.batched_nms(boxes, scores, classes, thr, threads=2), want_b)


def test_nan_scores_are_refused():
    b = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], np.float32)
    with pytest.raises(ValueError, match="scores must be finite, found nan at index 1"):
        ops.nms(b, np.array([0.5, np.nan], np.float32), 0.5)
    with pytest.raises(ValueError, match="scores must be finite"):
        ops.batched_nms(b, np.array([np.nan, 0.5]), [0, 0], 0.5)
