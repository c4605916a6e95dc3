"""``pyimgcls detect`` and ``pyimgcls score --task detect`` from the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pyimgcls import Detector, read_image
from pyimgcls.cli.main import main
from _helpers.models import bright_box_detector

BOX = (60, 40, 220, 150)  # x1, y1, x2, y2 of the white rectangle in every scene


def _scene(h=240, w=320, box=BOX, grey=90):
    img = np.full((h, w, 3), grey, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    meta = {"task": "detect", "names": "{0: 'box', 1: 'other'}", "imgsz": "[160, 160]", "stride": "32"}
    return bright_box_detector(str(d / "bright.onnx"), metadata=meta)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    (d / "a").mkdir()
    (d / "b").mkdir()
    Image.fromarray(_scene()).save(d / "a" / "scene.png")
    Image.fromarray(_scene()).save(d / "b" / "scene.png")  # the same name in another folder
    Image.fromarray(np.full((100, 100, 3), 90, np.uint8)).save(d / "a" / "blank.png")  # nothing to find
    return d


@pytest.fixture
def bad(tmp_path):
    p = tmp_path / "bad.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return p


def _json_lines(out):
    return [json.loads(x) for x in out.splitlines()]


def test_one_line_per_image_with_count_and_boxes(capsys, scenes, model, bad):
    assert main(["detect", str(scenes), str(bad), "--model", model, "--threads", "2"]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split() == ["file", "detections"] and len(lines) == 5
    by_name = {os.path.relpath(ln.split()[0], scenes) if "scenes" in ln else ln.split()[0]: ln for ln in lines[1:]}
    assert "0 detections" in by_name[os.path.join("a", "blank.png")]
    line = by_name[os.path.join("a", "scene.png")]
    assert "1 detection: box 0.90 [" in line
    x1, y1, x2, y2 = (int(v) for v in line.split("[")[1].rstrip("]").split(","))
    assert np.allclose([x1, y1, x2, y2], BOX, atol=2)
    assert "ERROR" in lines[-1] and "bad.jpg" in lines[-1]
    assert "1 of 4 inputs failed" in out.err


def test_json_lines_hold_every_box_as_predict_gives_it(capsys, scenes, model):
    assert main(["detect", str(scenes), "--model", model, "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    want = Detector(model, threads=2).predict([str(scenes)])
    assert [r["source"] for r in rows] == [w.source for w in want]
    for r, w in zip(rows, want):
        assert r["count"] == len(w.detections) and r["error"] is None
        assert r["image_size"] == list(w.image_size)
        assert [d["box"] for d in r["detections"]] == w.detections.xyxy.tolist()
        assert [d["class_name"] for d in r["detections"]] == w.detections.labels


def test_detection_options_reach_the_detector(capsys, scenes, model):
    assert main(["detect", str(scenes / "a" / "scene.png"), "--model", model, "--json", "--conf", "0.95"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["count"] == 0
    assert main(["detect", str(scenes / "a" / "scene.png"), "--model", model, "--json", "--classes", "1"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["count"] == 0
    assert main(["detect", str(scenes / "a" / "scene.png"), "--model", model, "--json", "--classes", "0",
                 "--max-det", "1"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["count"] == 1


@pytest.mark.parametrize("args, msg", [
    (["--conf", "2"], "must be a number in [0, 1]"),
    (["--classes", "a,b"], "expected comma-separated class ids"),
    (["--max-det", "0"], "must be a positive integer"),
])
def test_bad_detection_options_are_usage_errors(capsys, scenes, model, args, msg):
    with pytest.raises(SystemExit) as e:
        main(["detect", str(scenes), "--model", model, *args])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_bad_outputs_and_models_are_usage_errors(capsys, scenes, model, tmp_path):
    assert main(["detect", str(scenes), "--model", model, "--out", str(tmp_path / "x.csv")]) == 2
    assert ".json (COCO results), .parquet file or a folder" in capsys.readouterr().err
    assert main(["detect", str(scenes), "--model", str(tmp_path / "none.onnx")]) == 2
    assert "none.onnx" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "nothing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_save_draws_each_image_under_a_unique_name(capsys, scenes, model, tmp_path, bad):
    out = tmp_path / "drawn"
    assert main(["detect", str(scenes), str(bad), "--model", model, "--save", str(out), "-q"]) == 1
    assert sorted(os.listdir(out)) == ["blank.png", "scene.png", "scene_2.png"]
    res = {r.source: r for r in Detector(model).predict([str(scenes)])}
    drawn = read_image(str(out / "scene.png"))
    want = res[str(scenes / "a" / "scene.png")].detections.annotate(_scene())
    assert np.array_equal(drawn, want)  # PNG: lossless
    assert not np.array_equal(drawn, _scene())
    assert np.array_equal(read_image(str(out / "blank.png")), np.full((100, 100, 3), 90, np.uint8))


def test_save_never_replaces_an_input(capsys, model, tmp_path):
    """``--save`` into the input's own folder wrote the drawn copy over the input (same name): the
    original was lost. A folder that holds an input is refused up front; an input reached another
    way (a list on standard input) is not saved over, and the run says so."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(_scene()).save(d / "a.png")
    Image.fromarray(_scene()).save(d / "sub" / "a.png")
    before = {p: (d / p).read_bytes() for p in ("a.png", "sub/a.png")}
    for inputs, save in (([str(d / "a.png")], d), ([str(d)], d), ([str(d)], d / "sub"), ([str(d / "a.png")], str(d) + "/")):
        assert main(["detect", *inputs, "--model", model, "--save", str(save), "-q"]) == 2
        assert "the drawn images would replace the inputs" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "detect", "-", "--model", model, "--save", str(d), "-q"],
                       input=f"{d / 'a.png'}\n", capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 1 and "is the input itself" in r.stderr, r.stderr
    assert {p: (d / p).read_bytes() for p in before} == before
    assert main(["detect", str(d / "a.png"), "--model", model, "--save", str(tmp_path / "drawn"), "-q"]) == 0
    assert os.listdir(tmp_path / "drawn") == ["a.png"]


@pytest.mark.parametrize("kind", ["res.json", "res.parquet", "labels"])
def test_out_formats_agree_with_the_printed_results(capsys, scenes, model, tmp_path, kind):
    out = tmp_path / kind
    assert main(["detect", str(scenes), "--model", model, "--json", "--out", str(out)]) == 0
    rows = _json_lines(capsys.readouterr().out)
    counts = [r["count"] for r in rows]
    if kind == "res.json":
        anns = json.loads(out.read_text())
        images = json.loads((tmp_path / "res.images.json").read_text())["images"]
        assert [im["file_name"] for im in images] == [r["source"] for r in rows]
        assert [sum(a["image_id"] == im["id"] for a in anns) for im in images] == counts
        assert images[0]["width"] == rows[0]["image_size"][1]
    elif kind == "res.parquet":
        t = pq.read_table(out).to_pylist()
        assert [r["path"] for r in t] == [r["source"] for r in rows] and [r["count"] for r in t] == counts
        assert [r["boxes"] for r in t] == [[d["box"] for d in r["detections"]] for r in rows]
    else:
        index = json.loads((out / "index.json").read_text())
        assert [e["source"] for e in index] == [r["source"] for r in rows]
        assert sorted(e["label"] for e in index) == ["blank.txt", "scene.txt", "scene_2.txt"]
        assert [len((out / e["label"]).read_text().splitlines()) for e in index] == counts


def test_score_task_detect_resumes_and_keeps_one_row_per_input(capsys, scenes, model, tmp_path, bad):
    out = tmp_path / "dets.parquet"
    base = [sys.executable, "-m", "pyimgcls", "score", "--task", "detect", "--model", model, "--out", str(out),
            "--threads", "2"]
    r = subprocess.run(base + [str(scenes / "a")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "scored 2 images (0 errors, 0 skipped)" in r.stderr
    capsys.readouterr()
    assert main(base[3:] + [str(scenes), str(bad)]) == 1
    assert "scored 2 images (1 errors, 2 skipped)" in capsys.readouterr().err
    t = pq.read_table(out)
    rows = t.to_pylist()
    assert len(rows) == 4 and len({x["path"] for x in rows}) == 4
    assert all(os.path.isabs(x["path"]) for x in rows)
    by = {os.path.relpath(x["path"], scenes): x for x in rows if x["error"] is None}
    assert by[os.path.join("b", "scene.png")]["count"] == 1 and by[os.path.join("a", "blank.png")]["count"] == 0
    assert np.allclose(by[os.path.join("a", "scene.png")]["boxes"][0], BOX, atol=2)
    assert json.loads(t.schema.metadata[b"pyimgcls"])["settings"]["task"] == "detect"
    # other detection settings: refused, naming the setting
    assert main(base[3:] + [str(scenes), "--conf", "0.5"]) == 2
    assert "detector.conf: 0.25 -> 0.5" in capsys.readouterr().err


def test_score_options_of_the_other_task_are_refused(capsys, scenes, model, tmp_path):
    assert main(["score", str(scenes), "--task", "detect", "--model", model, "--out", str(tmp_path / "o.parquet"),
                 "--embeddings"]) == 2
    assert "--embeddings does not apply to --task detect" in capsys.readouterr().err
    assert main(["score", str(scenes), "--out", str(tmp_path / "o.parquet"), "--conf", "0.3"]) == 2
    assert "--conf does not apply to --task classify" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o.parquet")


# ----------------------------------------------------------------------------- the built-in face detector
@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea"):
        Image.fromarray(photos[name]).save(d / f"{name}.jpg", quality=95)
    return d


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_faces_is_the_default_model(capsys, photos_dir):
    assert main(["detect", str(photos_dir), "--json", "--threads", "2"]) == 0
    rows = {os.path.basename(r["source"]): r for r in _json_lines(capsys.readouterr().out)}
    assert rows["chelsea.jpg"]["count"] == 0
    (face,) = rows["astronaut.jpg"]["detections"]
    # the one face of scikit-image's astronaut (shared/DATA.md: near x=179, y=60, w=89, h=113)
    assert face["class_name"] == "face" and face["score"] > 0.9
    assert _iou(face["box"], [179, 60, 268, 173]) > 0.9
    assert len(face["keypoints"]) == 5
    x1, y1, x2, y2 = face["box"]
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face["keypoints"])


def test_faces_saved_with_box_and_landmarks_drawn(capsys, photos_dir, tmp_path):
    assert main(["detect", str(photos_dir / "astronaut.jpg"), "--save", str(tmp_path), "-q"]) == 0
    drawn = read_image(str(tmp_path / "astronaut.jpg"))
    orig = read_image(str(photos_dir / "astronaut.jpg"))
    diff = np.abs(drawn.astype(int) - orig.astype(int)).max(axis=-1) > 40  # beyond JPEG re-encoding noise
    ys, xs = np.nonzero(diff)
    assert diff.sum() > 500  # the box and its label
    assert xs.min() >= 170 and xs.max() <= 280 and ys.min() >= 30 and ys.max() <= 185


@pytest.mark.parametrize("args, msg", [
    (["--iou", "0.5"], "--iou apply to YOLO models, not to 'faces'"),
    (["--fast-decode"], "FaceDetector decodes images in full"),
])
def test_options_faces_cannot_honour_are_errors(capsys, photos_dir, args, msg):
    assert main(["detect", str(photos_dir), *args]) == 2
    assert msg in capsys.readouterr().err


def test_score_task_detect_with_faces_in_jsonl_and_shards(photos_dir, tmp_path, capsys):
    outs = []
    for i in (0, 1):
        out = tmp_path / f"part{i}.jsonl"
        code = main(["score", "--task", "detect", str(photos_dir), "--out", str(out), "--shard", f"{i}/2", "-q",
                     "--threads", "2"])
        assert code == 0
        outs += [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(os.path.basename(r["path"]) for r in outs) == ["astronaut.jpg", "chelsea.jpg"]
    astro = next(r for r in outs if r["path"].endswith("astronaut.jpg"))
    assert astro["count"] == 1 and astro["class_names"] == ["face"] and len(astro["keypoints"][0]) == 5
    assert (astro["width"], astro["height"]) == (512, 512)


def test_help_names_the_default_model_and_every_option(capsys, tmp_path):
    for cmd in (["detect"], ["score"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert all(opt in out for opt in ("--conf", "--iou", "--max-det", "--classes", "--device", "--threads"))
        lines = [ln for ln in out.splitlines() if ln.strip().startswith("--")]
        assert all(len(ln.split(None, 1)) > 1 or "  " in ln for ln in lines), lines
    assert "--task" in out
    main_help = subprocess.run([sys.executable, "-m", "pyimgcls", "--help"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=60)
    assert "detect" in main_help.stdout


def test_exif_rotated_photo_boxes_and_drawing_in_the_rotated_frame(model, tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view): the
    boxes and the drawn image are both in the upright frame that read_image returns; paths come
    on standard input."""
    upright = _scene(h=320, w=240, box=(40, 60, 150, 220))
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "sideways.jpg"
    Image.fromarray(stored).save(src, quality=95, exif=exif)
    assert read_image(str(src)).shape == upright.shape
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "detect", "-", "--model", model, "--json", "--save",
                        str(tmp_path / "drawn")], input=f"{src}\n", capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (row,) = _json_lines(r.stdout)
    assert row["image_size"] == [320, 240]
    assert np.allclose(row["detections"][0]["box"], (40, 60, 150, 220), atol=2)
    drawn = read_image(str(tmp_path / "drawn" / "sideways.jpg"))
    assert drawn.shape == upright.shape
    # the box's bottom edge (1 px, blurred by JPEG's chroma subsampling) is drawn on the row that holds y2
    y = int(np.ceil(row["detections"][0]["box"][3])) - 1
    diff = np.abs(drawn.astype(int) - read_image(str(src)).astype(int)).max(axis=-1)
    assert diff[y, 60:130].min() > 40 and diff[y + 5:, :].max() < 20 and diff[100:y - 5, 60:130].max() < 20


YOLO11N = os.path.join(os.path.dirname(__file__), "..", "assets", "yolo11n_random.onnx")


def test_a_real_ultralytics_export_end_to_end(capsys, photos_dir, tmp_path):
    """yolo11n as Ultralytics exports it (the real graph, random weights, its metadata): the
    printed boxes equal Detector.predict with the same settings, and the COCO file loads in pycocotools."""
    from pycocotools.coco import COCO

    args = ["--conf", "0.05", "--iou", "0.5", "--max-det", "7", "--threads", "2"]
    out = tmp_path / "res.json"
    assert main(["detect", str(photos_dir), "--model", YOLO11N, "--json", "--out", str(out), *args]) == 0
    rows = _json_lines(capsys.readouterr().out)
    want = Detector(YOLO11N, conf=0.05, iou=0.5, max_det=7, threads=2).predict([str(photos_dir)])
    assert len(rows) == len(want) == 2
    for r, w in zip(rows, want):
        assert [d["box"] for d in r["detections"]] == w.detections.xyxy.tolist()
        assert [d["class_name"] for d in r["detections"]] == w.detections.labels
    assert 0 < sum(r["count"] for r in rows) <= 14
    dt = COCO(str(tmp_path / "res.images.json")).loadRes(str(out))
    assert len(dt.getAnnIds()) == sum(r["count"] for r in rows) and len(dt.getCatIds()) == 80
