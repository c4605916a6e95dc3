"""``Detector`` on models built with onnx.helper: layouts, metadata, settings, errors, geometry.

The comparison with Ultralytics itself (a real YOLO11n export) is in test_detector_ultralytics.py.
"""

import io
import json
import pickle
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import pyimgcls
from pyimgcls import DetectionResult, Detector, annotate_model
from pyimgcls.tasks import load_detector
from pyimgcls.tasks.detector import infer_layout, ultralytics_metadata
from _helpers.models import bright_box_detector, tiny_classifier

UL_META = {"task": "detect", "stride": "32", "imgsz": "[160, 160]", "names": "{0: 'box', 1: 'other'}",
           "batch": "1", "end2end": "False"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    return {
        "v8": bright_box_detector(str(d / "v8.onnx"), metadata=UL_META),
        "v5": bright_box_detector(str(d / "v5.onnx"), layout="v5", metadata={**UL_META, "task": "detect"}),
        "e2e": bright_box_detector(str(d / "e2e.onnx"), layout="end2end", anchors=300,
                                   metadata={**UL_META, "args": "{'nms': True, 'batch': 1}"}),
        "bare": bright_box_detector(str(d / "bare.onnx")),
    }


def _scene(h, w, box, grey=90):
    """A grey image with a white rectangle ``box`` = (x1, y1, x2, y2) (integer pixels)."""
    img = np.full((h, w, 3), grey, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img


def _tol(h, w, size=160):
    """How far a detected edge may be from the true one, in original pixels: the model sees the
    edge within about one model-input pixel when the image is shrunk, and within half a source
    pixel more when it is enlarged (bilinear blending of the edge pixel with its neighbour)."""
    r = min(size / h, size / w)
    return 1.5 / r + (0.5 if r > 1 else 0.0) + 1e-3


@pytest.mark.parametrize("kind", ["v8", "v5", "e2e"])
def test_layouts_find_the_rectangle(models, kind):
    det = Detector(models[kind], threads=1)
    assert det.layout == {"v8": "v8", "v5": "v5", "e2e": "end2end"}[kind]
    assert det.names == ["box", "other"] and det.stride == 32
    assert det.config.resize == "letterbox" and det.config.size == (160, 160) and det.config.pad_value == 114.0
    img = _scene(300, 451, (100, 50, 300, 200))
    r = det.predict([img])[0]
    assert isinstance(r, DetectionResult) and r.ok and r.image_size == (300, 451)
    d = r.detections
    assert len(d) == 1 and d.labels == ["box"] and d.confidence[0] == pytest.approx(0.9)
    np.testing.assert_allclose(d.xyxy[0], [100, 50, 300, 200], atol=_tol(300, 451))
    one = det.predict_one(img)
    np.testing.assert_array_equal(one.detections.xyxy, d.xyxy)


def test_no_metadata_infers_the_layout_and_says_so(models):
    with pytest.warns(UserWarning) as rec:
        det = Detector(models["bare"], threads=1)
    text = " ".join(str(w.message) for w in rec)
    assert "letterbox" in text and "'v8'" in text and "6, 8)" in text and "with 2 classes" in text
    assert det.layout == "v8" and det.names == ["0", "1"] and len(det.assumptions) == 2
    assert det.predict_one(_scene(160, 160, (10, 20, 30, 40))).detections.xyxy.tolist() == [[10, 20, 30, 40]]


def test_pyimgcls_metadata_gives_layout_and_defaults(models, tmp_path):
    dst = str(tmp_path / "annotated.onnx")
    annotate_model(models["bare"], dst, labels=["a", "b"],
                   detector={"layout": "v8", "conf": 0.95, "iou": 0.5, "max_det": 7},
                   preprocess=pyimgcls.PreprocessConfig(size=160, resize="letterbox", mean=0, std=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = Detector(dst, threads=1)
    assert (det.layout, det.conf, det.iou, det.max_det, det.names) == ("v8", 0.95, 0.5, 7, ["a", "b"])
    assert not det.assumptions
    assert len(det.predict_one(_scene(200, 200, (10, 10, 90, 90))).detections) == 0  # 0.9 <= conf 0.95
    det = Detector(dst, conf=0.5, threads=1)  # the caller's value wins
    assert det.conf == 0.5 and len(det.predict_one(_scene(200, 200, (10, 10, 90, 90))).detections) == 1
    assert json.loads(pyimgcls.Session(dst).info.metadata["pyimgcls.detector"])["max_det"] == 7


def test_ultralytics_defaults_and_settings(models):
    det = Detector(models["v8"], threads=1)
    assert (det.conf, det.iou, det.max_det, det.classes, det.agnostic_nms) == (0.25, 0.7, 300, None, False)
    img = _scene(160, 160, (10, 10, 50, 50))
    assert len(Detector(models["v8"], classes=[1], threads=1).predict_one(img).detections) == 0
    assert len(Detector(models["v8"], classes=0, threads=1).predict_one(img).detections) == 1
    assert len(Detector(models["e2e"], classes=[1], threads=1).predict_one(img).detections) == 0
    assert len(Detector(models["v8"], conf=0.9, threads=1).predict_one(img).detections) == 0  # strict >
    with pytest.raises(ValueError, match="class id 2 is out of range"):
        Detector(models["v8"], classes=[2])
    with pytest.raises(ValueError, match="conf must be in"):
        Detector(models["v8"], conf=1.5)
    with pytest.raises(ValueError, match="max_det"):
        Detector(models["v8"], max_det=0)
    with pytest.raises(ValueError, match="layout must be one of"):
        Detector(models["v8"], layout="v9")


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
def test_other_ultralytics_tasks_are_refused(tmp_path, task):
    p = bright_box_detector(str(tmp_path / "m.onnx"), metadata={**UL_META, "task": task})
    with pytest.raises(ValueError, match=f"'{task}'"):
        Detector(p)


def test_unrecognised_layout_names_shape_and_layouts(tmp_path):
    p = tiny_classifier(str(tmp_path / "c.onnx"), classes=4)
    with pytest.raises(ValueError, match=r"shape \(.*4\).*v5 .*v8 .*end2end"), pytest.warns(UserWarning):
        Detector(p)
    with pytest.raises(ValueError, match=r"does not fit layout 'v5'"), pytest.warns(UserWarning):
        Detector(bright_box_detector(str(tmp_path / "d.onnx")), layout="v5")  # (N, 6, 8) has 6 anchors


def test_infer_layout_rules():
    assert infer_layout((1, 84, 8400), input_size=(640, 640)) == ("v8", 80)
    assert infer_layout((1, 25200, 85), input_size=(640, 640)) == ("v5", 80)
    assert infer_layout((1, 300, 6), input_size=(640, 640)) == ("end2end", None)
    assert infer_layout((1, 25200, 6), input_size=(640, 640)) == ("v5", 1)  # 3 anchors a cell: v5
    assert infer_layout((1, 300, 6), input_size=(640, 640), end2end=True) == ("end2end", None)
    assert infer_layout((1, 6, 8400), input_size=(640, 640), classes=2) == ("v8", 2)
    for bad in [(1, 84), (1, 4, 8400), (1, 8400, 5), (2, 3, 4, 5)]:
        with pytest.raises(ValueError, match="not a recognised YOLO layout"):
            infer_layout(bad, input_size=(640, 640))
    with pytest.raises(ValueError, match="for 80 classes"):
        infer_layout((1, 20, 8400), input_size=(640, 640), classes=80)
    # small inputs: more channels than anchors; the anchors of the standard heads tell v8 (they were
    # taken as v5 with 16 classes at 32x32, and refused at 64x64, where 84 == 84)
    assert infer_layout((1, 84, 21), input_size=(32, 32)) == ("v8", 80)
    assert infer_layout((1, 84, 84), input_size=(64, 64)) == ("v8", 80)
    assert infer_layout((1, 63, 85), input_size=(32, 32)) == ("v5", 80)
    assert infer_layout((1, 252, 85), input_size=(64, 64)) == ("v5", 80)


def test_ultralytics_metadata_is_parsed_not_evaluated():
    m = ultralytics_metadata({"names": "{0: 'person', 1: 'bicycle'}", "imgsz": "[480, 640]", "stride": "32",
                              "task": "detect", "end2end": "False", "args": "{'nms': False}"})
    assert m == {"names": ["person", "bicycle"], "imgsz": (480, 640), "stride": 32, "task": "detect",
                 "end2end": False, "nms": False}
    # nms as a string or a number is read as end2end is: only "True" is true
    for v, want in [("'False'", False), ("'True'", True), ("0", False), ("1", False), ("None", False), ("True", True)]:
        assert ultralytics_metadata({"args": "{'nms': %s}" % v})["nms"] is want, v
    with pytest.raises(ValueError, match="not a Python literal"):
        ultralytics_metadata({"names": "__import__('os').system('true')"})
    with pytest.raises(ValueError, match="ids 0..1"):
        ultralytics_metadata({"names": "{0: 'a', 2: 'b'}"})


def test_max_det_1_is_single_object_localization(tmp_path):
    """Several candidates of different classes and overlaps: max_det=1 keeps the single best one."""
    det = Detector(_fixed_output_model(tmp_path), max_det=1, threads=1)
    r = det.predict_one(np.zeros((64, 64, 3), np.uint8)).detections
    assert len(r) == 1 and r.class_id.tolist() == [2] and r.confidence[0] == pytest.approx(0.8)
    full = Detector(_fixed_output_model(tmp_path), threads=1).predict_one(np.zeros((64, 64, 3), np.uint8)).detections
    assert len(full) == 3 and full.confidence.tolist() == pytest.approx([0.8, 0.6, 0.5])
    ag = Detector(_fixed_output_model(tmp_path), agnostic_nms=True, threads=1).predict_one(np.zeros((64, 64, 3), np.uint8))
    assert ag.detections.confidence.tolist() == pytest.approx([0.8, 0.5])  # the 0.6 box overlaps the 0.8 one


def _fixed_output_model(tmp_path):
    """A v8-layout model (3 classes, 8 anchors, 64x64 input) whose output does not depend on the image."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = np.zeros((1, 7, 8), np.float32)
    # cx, cy, w, h, s0, s1, s2 per anchor
    out[:, :, 0] = [20, 20, 10, 10, 0, 0.6, 0]      # class 1, 0.6
    out[:, :, 1] = [20.5, 20.5, 10, 10, 0, 0, 0.8]  # class 2, 0.8: IoU 0.82 with anchor 0
    out[:, :, 2] = [50, 50, 8, 8, 0.5, 0, 0]        # class 0, 0.5: alone
    out[:, :, 3] = [50, 50, 8, 8, 0.1, 0, 0]        # below conf
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["c", "z"], ["out"])]
    g = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 7, 8])],
                          [numpy_helper.from_array(out, "c"), numpy_helper.from_array(np.array(0, np.float32), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    m.metadata_props.add(key="task", value="detect")
    m.metadata_props.add(key="names", value="{0: 'a', 1: 'b', 2: 'c'}")
    p = str(tmp_path / "fixed.onnx")
    onnx.save(m, p)
    return p


def test_batch_errors_sources_and_pickle(models, tmp_path):
    det = Detector(models["v8"], threads=2)
    good = tmp_path / "a.png"
    Image.fromarray(_scene(120, 90, (10, 10, 60, 60))).save(good)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not an image")
    rs = det.predict([str(good), str(bad), _scene(50, 70, (0, 0, 70, 50)), str(tmp_path / "missing.png")],
                     batch_size=3)
    assert [r.ok for r in rs] == [True, False, True, False]
    assert rs[0].source == str(good) and rs[0].image_size == (120, 90) and rs[0].stored_size == (120, 90)
    assert "b.png" in rs[1].error and rs[1].detections is None
    np.testing.assert_allclose(rs[2].detections.xyxy[0], [0, 0, 70, 50], atol=_tol(50, 70))
    with pytest.raises(pyimgcls.ImageDecodeError, match="b.png"):
        det.predict([str(bad)], errors="raise")
    with pytest.raises(pyimgcls.ImageDecodeError, match="b.png"):
        det.predict_one(str(bad))
    clone = pickle.loads(pickle.dumps(Detector(models["v8"], conf=0.3, classes=[0], threads=1)))
    assert (clone.conf, clone.classes, clone.layout) == (0.3, (0,), "v8")
    stats = {}
    list(det.predict_iter([str(good)] * 3, stats=stats))
    assert set(stats) >= {"decode_s", "preprocess_s", "inference_s", "postprocess_s"}


def test_predict_one_from_many_threads(models):
    det = Detector(models["v8"], threads=1)
    scenes = [(_scene(100 + 7 * i, 200 - 5 * i, (5 + i, 10, 60 + 2 * i, 70)), None) for i in range(8)]
    want = [det.predict([s])[0].detections.xyxy for s, _ in scenes]
    got = [None] * len(scenes)

    def work(i):
        for _ in range(5):
            got[i] = det.predict_one(scenes[i][0]).detections.xyxy

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(scenes))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_load_detector(models):
    assert isinstance(load_detector(models["v8"], conf=0.4, threads=1), Detector)
    try:
        import pyimgcls.tasks.faces  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="face detector"):
            load_detector("faces")
    else:
        assert load_detector("faces").names == ["face"]


# ----------------------------------------------------------------------------- geometry round trip
def _exif_png(img: np.ndarray, orientation: int) -> bytes:
    """``img`` (as displayed) stored so that EXIF ``orientation`` displays it: the stored pixels
    are the inverse transform of ``img``."""
    inverse = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
               5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
               8: lambda a: np.rot90(a, -1)}
    stored = np.ascontiguousarray(inverse[orientation](img))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif.tobytes())
    from PIL import ImageOps

    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))), img)
    return buf.getvalue()


@pytest.fixture(scope="module")
def v8det(models):
    return Detector(models["v8"], threads=1)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 5000), w=st.integers(1, 300), flip=st.booleans(), orientation=st.integers(1, 8),
       fx=st.tuples(st.floats(0, 1), st.floats(0, 1)), fy=st.tuples(st.floats(0, 1), st.floats(0, 1)),
       data=st.data())
def test_round_trip_odd_sizes_and_exif(v8det, h, w, flip, orientation, fx, fy, data):
    """A white rectangle in an image of any size (1x1 .. 5000x300, either way round) stored with
    any EXIF orientation comes back where it is in the displayed image, within the model's one
    input pixel, in full-resolution pixels."""
    if flip:
        h, w = w, h
    tol_y, tol_x = _tol(h, w), _tol(h, w)
    # the rectangle: at least ~3 model pixels a side (or the whole side) so the model can see it
    r = min(160 / h, 160 / w)
    min_w, min_h = min(w, int(np.ceil(3 / r))), min(h, int(np.ceil(3 / r)))
    x1 = int(fx[0] * (w - min_w))
    x2 = x1 + min_w + int(fx[1] * (w - x1 - min_w))
    y1 = int(fy[0] * (h - min_h))
    y2 = y1 + min_h + int(fy[1] * (h - y1 - min_h))
    img = _scene(h, w, (x1, y1, x2, y2))
    res = v8det.predict_one(_exif_png(img, orientation))
    assert res.image_size == (h, w)
    assert res.stored_size == ((w, h) if orientation >= 5 else (h, w))
    d = res.detections
    assert len(d) == 1
    got = d.xyxy[0]
    assert abs(got[0] - x1) <= tol_x and abs(got[2] - x2) <= tol_x, (got, (x1, y1, x2, y2))
    assert abs(got[1] - y1) <= tol_y and abs(got[3] - y2) <= tol_y, (got, (x1, y1, x2, y2))
    assert 0 <= got[0] <= got[2] <= w and 0 <= got[1] <= got[3] <= h


def test_fast_decode_boxes_are_in_full_resolution_pixels(v8det, tmp_path):
    """A JPEG decoded at a reduced DCT scale still gets boxes in the file's full-resolution pixels."""
    img = _scene(1500, 2000, (400, 300, 1200, 900))
    p = tmp_path / "big.jpg"
    Image.fromarray(img).save(p, quality=95)
    exact, fast = v8det.predict([str(p)])[0], v8det.predict([str(p)], fast_decode=True)[0]
    assert exact.image_size == fast.image_size == (1500, 2000)
    for r in (exact, fast):
        np.testing.assert_allclose(r.detections.xyxy[0], [400, 300, 1200, 900], atol=_tol(1500, 2000))


# ----------------------------------------------------------------------------- hostile model outputs
def _image_dependent_model(tmp_path, name, *, nan_on_black=True, batch_one_output=False):
    """A v8-layout model (2 classes, 8 anchors, 64x64 input): anchor 0 is a box of class 0, score
    0.9. ``nan_on_black``: its box is NaN for an all-black image (an fp16 overflow on one input);
    ``batch_one_output``: the output has batch 1 whatever the input batch (a broken export)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = np.zeros((1, 6, 8), np.float32)
    out[0, :, 0] = [20, 20, 10, 10, 0.9, 0]
    mask = np.zeros(out.shape, bool)
    mask[0, 0, 0] = nan_on_black
    axes = [] if batch_one_output else [1, 2, 3]
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
             helper.make_node("Reshape", ["m", "shp"], ["m3"]),
             helper.make_node("Div", ["one", "m3"], ["inv"]),          # inf for a black image
             helper.make_node("Mul", ["inv", "zero"], ["z"]),          # NaN for a black image, else 0
             helper.make_node("Where", ["mask", "z", "zero"], ["zm"]),
             helper.make_node("Add", ["c", "zm"], ["out"])]
    inits = [numpy_helper.from_array(out, "c"), numpy_helper.from_array(mask, "mask"),
             numpy_helper.from_array(np.array(axes, np.int64), "axes"),
             numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shp"),
             numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array(1, np.float32), "one")]
    g = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["B", 6, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    m.metadata_props.add(key="task", value="detect")
    m.metadata_props.add(key="names", value="{0: 'a', 1: 'b'}")
    p = str(tmp_path / name)
    onnx.save(m, p)
    return p


def test_non_finite_output_of_one_image_is_its_error_row(tmp_path):
    """A model whose output is NaN for one image gives that image an error row; the images
    beside it in the batch keep their answers (the whole batch was lost to one ValueError)."""
    det = Detector(_image_dependent_model(tmp_path, "nan.onnx"), threads=1)
    white, black = np.full((64, 64, 3), 255, np.uint8), np.zeros((64, 64, 3), np.uint8)
    rs = det.predict([white, black, white], batch_size=3)
    assert [r.ok for r in rs] == [True, False, True]
    assert "not finite" in rs[1].error and rs[1].detections is None
    np.testing.assert_allclose(rs[0].detections.xyxy[0], [15, 15, 25, 25])
    assert rs[2].detections.confidence.tolist() == pytest.approx([0.9])
    with pytest.raises(ValueError, match=r"<array #1>: .*not finite"):
        det.predict([white, black], errors="raise")
    with pytest.raises(ValueError, match=r"<array #0>: .*not finite"):
        det.predict_one(black)


def test_output_batch_that_is_not_the_input_batch_is_a_clear_error(tmp_path):
    det = Detector(_image_dependent_model(tmp_path, "b1.onnx", nan_on_black=False, batch_one_output=True),
                   threads=1)
    white = np.full((64, 64, 3), 255, np.uint8)
    assert len(det.predict_one(white).detections) == 1
    with pytest.raises(ValueError, match=r"output of shape \(1, 6, 8\) for a batch of 2 images"):
        det.predict([white, white], batch_size=2)


def _constant_output_model(tmp_path, name, out, metadata):
    """A 64x64 model whose output, for any batch, is ``out`` (shape (1, a, b)) for each image."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = np.asarray(out, np.float32)
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
             helper.make_node("Reshape", ["m", "shp"], ["m3"]),
             helper.make_node("Mul", ["m3", "zero"], ["z"]),
             helper.make_node("Add", ["c", "z"], ["out"])]
    inits = [numpy_helper.from_array(out, "c"), numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shp"),
             numpy_helper.from_array(np.array(0, np.float32), "zero")]
    g = helper.make_graph(nodes, "const", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N"] + list(out.shape[1:]))],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    for key, value in metadata.items():
        m.metadata_props.add(key=key, value=value)
    p = str(tmp_path / name)
    onnx.save(m, p)
    return p


def test_end2end_class_id_past_int32_is_refused_not_wrapped(tmp_path):
    """Without names any integer class id is taken, but one past int32 wrapped silently
    (1e10 came back as class 1410065408)."""
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [10, 10, 30, 30, 0.9, 7]
    rows[0, 1] = [40, 40, 50, 50, 0.8, 1e10]
    det = Detector(_constant_output_model(tmp_path, "e2e.onnx", rows, {"task": "detect", "end2end": "True"}),
                   threads=1)
    assert det.layout == "end2end" and det.num_classes is None
    with pytest.raises(ValueError, match="class id 10000000000"):
        det.predict_one(np.zeros((64, 64, 3), np.uint8))
    rows[0, 1, 5] = 3
    det = Detector(_constant_output_model(tmp_path, "e2e_ok.onnx", rows, {"task": "detect", "end2end": "True"}),
                   threads=1)
    assert det.predict_one(np.zeros((64, 64, 3), np.uint8)).detections.class_id.tolist() == [7, 3]


def test_max_det_any_size(tmp_path):
    """``max_det`` is "at most this many": a value past what ``ops.nms`` takes (2^62) is still that."""
    det = Detector(_fixed_output_model(tmp_path), max_det=2 ** 63, threads=1)
    assert det.max_det == 2 ** 63
    assert len(det.predict_one(np.zeros((64, 64, 3), np.uint8)).detections) == 3
    assert [len(r.detections) for r in det.predict([np.zeros((64, 64, 3), np.uint8)] * 2)] == [3, 3]
