"""Detection outputs: COCO results (checked by pycocotools), Parquet rows, YOLO label folders."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from pyimgcls import DetectionResult, Detections
from pyimgcls.jobs.detect import ROW_COLUMNS, UniqueNames, detection_row, open_output, yolo_lines

NAMES = ["cat", "dog", "person"]


def _result(source, boxes, scores, classes, size=(480, 640), keypoints=None):
    d = Detections(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4), confidence=np.asarray(scores, np.float32),
                   class_id=np.asarray(classes, np.int32), class_names=NAMES)
    if keypoints is not None:
        d.keypoints = np.asarray(keypoints, np.float32)
    return DetectionResult(source=source, detections=d, image_size=size, stored_size=size)


@pytest.fixture
def results():
    return [
        _result("photos/a/cat.jpg", [[10.5, 20.25, 110.5, 220.25], [300, 100, 400, 300]], [0.9, 0.4], [0, 2]),
        _result("photos/b/cat.jpg", [[0, 0, 640, 480]], [0.75], [1], size=(480, 640)),
        _result("photos/empty.png", [], [], [], size=(100, 200)),
        DetectionResult(source="photos/bad.jpg", detections=None, error="not an image: bad.jpg"),
        _result("photos/wide.jpg", [[-20, 10, 50, 90]], [0.6], [2], size=(100, 40)),  # partly outside
    ]


def _write(out, results, **kw):
    w = open_output(str(out), NAMES, **kw)
    for r in results:
        w.add(r)
    w.close()
    return w


def test_coco_results_load_in_pycocotools_and_map_image_ids_to_files(tmp_path, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "res.json"
    _write(out, results)
    anns = json.loads(out.read_text())
    assert isinstance(anns, list) and len(anns) == 2 + 1 + 0 + 1
    assert anns[0] == {"image_id": 1, "category_id": 0, "bbox": [10.5, 20.25, 100.0, 200.0],
                       "score": pytest.approx(0.9)}
    meta = json.loads((tmp_path / "res.images.json").read_text())
    assert [im["file_name"] for im in meta["images"]] == [r.source for r in results]
    assert [im["id"] for im in meta["images"]] == [1, 2, 3, 4, 5]
    assert meta["images"][3]["error"] == "not an image: bad.jpg" and "width" not in meta["images"][3]
    assert meta["images"][0]["width"] == 640 and meta["images"][0]["height"] == 480
    assert meta["categories"] == [{"id": i, "name": n} for i, n in enumerate(NAMES)]
    # pycocotools reads both files as they are: the images file as a (ground-truth) COCO file, the
    # results through loadRes; evaluated against ground truth equal to the results, AP is 1
    gt = COCO(str(tmp_path / "res.images.json"))
    dt = gt.loadRes(str(out))
    assert len(dt.getAnnIds()) == 4 and dt.loadAnns(dt.getAnnIds(imgIds=[1]))[1]["bbox"] == [300, 100, 100, 200]
    gt_data = dict(meta, annotations=[dict(a, id=k + 1, area=a["bbox"][2] * a["bbox"][3], iscrowd=0)
                                      for k, a in enumerate(anns)])
    (tmp_path / "gt.json").write_text(json.dumps(gt_data))
    gt2 = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(gt2, gt2.loadRes(str(out)), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_coco_results_without_detections_are_an_empty_list(tmp_path):
    out = tmp_path / "none.json"
    _write(out, [_result("x.jpg", [], [], [])])
    assert json.loads(out.read_text()) == []
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


@pytest.mark.parametrize("names", [None, []])
def test_coco_categories_of_a_model_without_names_are_its_class_ids(tmp_path, names):
    """A model without names (``Detector.names == []``: an end-to-end export without metadata)
    wrote ``"categories": []``, so the results' category ids matched no category."""
    out = tmp_path / "res.json"
    d = Detections(xyxy=[[0, 0, 5, 5], [1, 1, 4, 4]], confidence=[0.9, 0.8], class_id=[0, 3])
    w = open_output(str(out), names)
    w.add(DetectionResult(source="x.jpg", detections=d, image_size=(10, 10)))
    w.close()
    meta = json.loads((tmp_path / "res.images.json").read_text())
    assert meta["categories"] == [{"id": i, "name": str(i)} for i in range(4)]


def test_parquet_one_row_per_image_with_list_columns(tmp_path, results):
    out = tmp_path / "dets.parquet"
    _write(out, results)
    t = pq.read_table(out)
    assert t.column_names == ROW_COLUMNS and t.num_rows == len(results)
    rows = t.to_pylist()
    assert rows[0]["path"] == "photos/a/cat.jpg" and rows[0]["count"] == 2
    assert np.allclose(rows[0]["boxes"], results[0].detections.xyxy)
    assert rows[0]["scores"] == pytest.approx([0.9, 0.4]) and rows[0]["class_ids"] == [0, 2]
    assert rows[0]["class_names"] == ["cat", "person"] and rows[0]["keypoints"] is None
    assert (rows[0]["width"], rows[0]["height"]) == (640, 480)
    assert rows[2]["count"] == 0 and rows[2]["boxes"] == [] and rows[2]["error"] is None
    assert rows[3]["error"] == "not an image: bad.jpg" and rows[3]["count"] is None and rows[3]["width"] is None


def test_keypoints_kept_in_rows(tmp_path):
    kp = [[[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]]
    r = _result("f.jpg", [[0, 0, 20, 20]], [0.99], [0], keypoints=kp)
    assert detection_row(r)["keypoints"] == kp
    out = tmp_path / "k.parquet"
    _write(out, [r])
    assert pq.read_table(out).column("keypoints").to_pylist() == [kp]


def test_yolo_label_of_a_file_name_that_is_not_utf8(tmp_path):
    """A file name with undecodable bytes (surrogate escapes) named its label file as it was, and
    index.json could not be written (UnicodeEncodeError after all the labels)."""
    out = tmp_path / "labels"
    src = os.fsdecode(b"photos/\xff\xfe.jpg")
    _write(out, [_result(src, [[0, 0, 64, 48]], [0.5], [1])])
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    assert index == [{"label": "_xff_xfe.txt", "source": "photos/\\xff\\xfe.jpg"}]
    assert (out / "_xff_xfe.txt").read_text() == "1 0.050000 0.050000 0.100000 0.100000\n"


def test_a_label_that_cannot_be_written_leaves_no_temporary(tmp_path, results):
    """The label's name is taken by a folder: the error is raised, and its temporary file
    (``cat.txt.tmp-PID``) no longer stays behind."""
    out = tmp_path / "labels"
    (out / "cat.txt").mkdir(parents=True)
    w = open_output(str(out), NAMES)
    with pytest.raises(IsADirectoryError):
        w.add(results[0])
    assert sorted(os.listdir(out)) == ["cat.txt"]


def test_yolo_label_folder_normalised_and_same_names_not_overwritten(tmp_path, results):
    out = tmp_path / "labels"
    _write(out, results)
    files = sorted(os.listdir(out))
    assert files == ["cat.txt", "cat_2.txt", "empty.txt", "index.json", "wide.txt"]
    index = json.loads((out / "index.json").read_text())
    assert [(e["label"], e["source"]) for e in index] == [
        ("cat.txt", "photos/a/cat.jpg"), ("cat_2.txt", "photos/b/cat.jpg"), ("empty.txt", "photos/empty.png"),
        (None, "photos/bad.jpg"), ("wide.txt", "photos/wide.jpg")]
    assert index[3]["error"]
    rows = [ln.split() for ln in (out / "cat.txt").read_text().splitlines()]
    assert [r[0] for r in rows] == ["0", "2"] and all(len(r) == 5 for r in rows)
    c, cx, cy, w, h = (float(v) for v in rows[0])
    # back to pixels: the box within the 6 decimals written
    assert np.allclose([(cx - w / 2) * 640, (cy - h / 2) * 480, (cx + w / 2) * 640, (cy + h / 2) * 480],
                       [10.5, 20.25, 110.5, 220.25], atol=640e-6)
    assert (out / "cat_2.txt").read_text() == "1 0.500000 0.500000 1.000000 1.000000\n"
    assert (out / "empty.txt").read_text() == ""
    # a box reaching outside the image is clipped to it first: x in [0, 40]
    assert (out / "wide.txt").read_text() == "2 0.500000 0.500000 1.000000 0.800000\n"


def test_yolo_confidence_column_on_request(tmp_path, results):
    out = tmp_path / "labels"
    _write(out, results[:1], save_conf=True)
    rows = [ln.split() for ln in (out / "cat.txt").read_text().splitlines()]
    assert [len(r) for r in rows] == [6, 6] and [float(r[5]) for r in rows] == pytest.approx([0.9, 0.4])
    assert yolo_lines(results[3]) == []


def test_output_kind_is_chosen_by_suffix(tmp_path):
    assert type(open_output(str(tmp_path / "d"), NAMES)).__name__ == "YoloLabelsWriter"
    with pytest.raises(ValueError, match=r"\.json \(COCO results\), \.parquet file or a folder"):
        open_output(str(tmp_path / "d.csv"), NAMES)


def test_unique_names_per_run():
    names = UniqueNames()
    assert [names(s, ".jpg") for s in ("a/x.png", "b/x.png", "c/X.jpg", "x_2.jpg", "d/y")] == \
        ["x.jpg", "x_2.jpg", "X_3.jpg", "x_2_2.jpg", "y.jpg"]
