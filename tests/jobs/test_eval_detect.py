"""``evaluate(task="detect")`` with the built-in face detector (MTCNN, real weights) on real faces
(scikit-image's astronaut and LFW faces laid out on a canvas), ground truth as COCO JSON and as the YOLO
layout; the COCO numbers against pycocotools' COCOeval on the same detections."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import pyimgcls
from _helpers.face_coco import face_dataset

pytest.importorskip("pyimgcls.tasks.faces")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return face_dataset(str(tmp_path_factory.mktemp("det") / "coco"))


@pytest.fixture(scope="module")
def report(coco, tmp_path_factory):
    out = tmp_path_factory.mktemp("det_out")
    return pyimgcls.evaluate(coco, task="detect", model="faces", out=str(out), bootstrap=30, threads=2), out


def _pycocotools_stats(gt_path: str, conf: float = 0.001) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    det = pyimgcls.FaceDetector(conf=conf, max_det=300, threads=2)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
    res = []
    for img in gt.dataset["images"]:
        r = det.predict_one(os.path.join(os.path.dirname(gt_path), img["file_name"]))
        for (x0, y0, x1, y1), s in zip(r.detections.xyxy.tolist(), r.detections.confidence.tolist()):
            res.append({"image_id": img["id"], "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(res)
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.asarray(e.stats)


def test_coco_stats_equal_pycocotools(coco, report):
    rep, _ = report
    ref = _pycocotools_stats(coco)
    ours = np.asarray([rep.metrics[k] for k in pyimgcls.metrics.STAT_NAMES])
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert rep.metrics["AP50"] > 0.9  # MTCNN finds these faces
    assert rep.per_class[0]["name"] == "face" and rep.per_class[0]["support"] == 25
    assert rep.per_class[0]["ap"] == pytest.approx(rep.metrics["AP"], abs=1e-12)  # one class
    lo, hi = rep.intervals["map"]
    assert lo <= rep.metrics["AP"] <= hi


def test_report_files(report):
    rep, out = report
    assert {"report.json", "report.html"} <= set(os.listdir(out))
    if pyimgcls.jobs._plots.have_matplotlib():
        assert "pr_curves.png" in os.listdir(out)
    d = json.load(open(out / "report.json"))
    assert set(pyimgcls.metrics.STAT_NAMES) <= set(d["metrics"])
    assert d["counts"]["problems"] == {"no_boxes": 1}  # chelsea: an image without faces, listed
    assert d["drawn_images"][0]["examples"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 5  # the drawn images (and the plot)
    assert "mAP@[.5:.95]" in html


def test_yolo_layout_gives_the_same_numbers(coco, report, tmp_path):
    rep, _ = report
    gt = json.load(open(coco))
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names:\n  0: face\n")
    for im in gt["images"]:
        src = os.path.join(os.path.dirname(coco), im["file_name"])
        os.link(src, root / "images" / im["file_name"])
        w, h = im["width"], im["height"]
        lines = [f"0 {(a['bbox'][0] + a['bbox'][2] / 2) / w!r} {(a['bbox'][1] + a['bbox'][3] / 2) / h!r} "
                 f"{a['bbox'][2] / w!r} {a['bbox'][3] / h!r}" for a in gt["annotations"] if a["image_id"] == im["id"]]
        (root / "labels" / (os.path.splitext(im["file_name"])[0] + ".txt")).write_text("\n".join(lines))
    r2 = pyimgcls.evaluate(str(root), task="detect", bootstrap=0, threads=2)
    for k in pyimgcls.metrics.STAT_NAMES:
        assert r2.metrics[k] == pytest.approx(rep.metrics[k], abs=1e-6), k
    assert r2.counts["problems"] == {}  # chelsea has an empty label file: an image without boxes is fine


def test_unmatched_detection_classes_are_listed(coco, tmp_path):
    gt = json.load(open(coco))
    gt["categories"] = [{"id": 1, "name": "person"}]
    p = tmp_path / "persons.json"
    p.write_text(json.dumps(gt))
    for im in gt["images"]:
        os.link(os.path.join(os.path.dirname(coco), im["file_name"]), tmp_path / im["file_name"])
    with pytest.raises(ValueError, match=r"1 of 1 dataset classes match no model class.*'person'.*'face'"):
        pyimgcls.evaluate(str(p), task="detect", bootstrap=0)
    rep = pyimgcls.evaluate(str(p), task="detect", bootstrap=0, class_map={"person": "face"}, threads=2)
    assert rep.metrics["AP50"] > 0.9


def test_cli_detect(coco, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "eval", "--task", "detect", coco, "--out", str(out),
                        "--bootstrap", "10", "--no-plots", "--threads", "2", "--conf", "0.01"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "AP50" in r.stdout and "AR_100" in r.stdout
    assert (out / "report.html").exists()
    assert json.load(open(out / "report.json"))["settings"]["conf"] == 0.01


def test_yolo_onnx_detector_on_a_yolo_dataset(tmp_path):
    """A YOLO-layout ONNX detector (``Detector``; real geometry: it boxes the bright rectangle of
    the image) on a YOLO dataset: every box found, AP50 = 1, through the letterbox and back."""
    from _helpers.models import bright_box_detector

    meta = {"task": "detect", "stride": "32", "imgsz": "[160, 160]", "names": "{0: 'box', 1: 'other'}",
            "batch": "1", "end2end": "False"}
    model = bright_box_detector(str(tmp_path / "v8.onnx"), metadata=meta)
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: [box, other]\n")
    rng = np.random.default_rng(0)
    for i in range(6):
        h, w = 240 + 40 * (i % 3), 320
        img = np.full((h, w, 3), 40, np.uint8)
        x0, y0 = int(rng.integers(10, 150)), int(rng.integers(10, 100))
        bw, bh = int(rng.integers(60, 150)), int(rng.integers(50, 120))
        img[y0:y0 + bh, x0:x0 + bw] = 250
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text(f"0 {(x0 + bw / 2) / w!r} {(y0 + bh / 2) / h!r} {bw / w!r} {bh / h!r}\n")
    rep = pyimgcls.evaluate(str(root), task="detect", model=model, bootstrap=0, threads=2)
    assert rep.counts["evaluated"] == 6
    assert rep.metrics["AP50"] == pytest.approx(1.0)
    assert [r["name"] for r in rep.per_class] == ["box", "other"]
    assert rep.per_class[0]["support"] == 6 and rep.per_class[1]["support"] == 0
