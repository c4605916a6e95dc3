"""Dataset readers: ImageFolder, label tables (CSV / Parquet), COCO JSON and the YOLO layout, on real
photos; the COCO reader is compared with pycocotools, the YOLO reader with the boxes it was written from."""

import contextlib
import io
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from pyimgcls import image_size, read_image
from pyimgcls.io.datasets import DatasetError, read_coco, read_image_folder, read_label_table, read_yolo


def _save(path, img, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, **kw)
    return str(path)


@pytest.fixture
def folder(tmp_path, photos):
    root = tmp_path / "data"
    _save(root / "cat" / "chelsea.jpg", photos["chelsea"])
    _save(root / "cat" / "deeper" / "chelsea2.png", photos["chelsea"][::2, ::2])
    _save(root / "cup" / "coffee.jpg", photos["coffee"])
    _save(root / "cup" / ".hidden.jpg", photos["coffee"])
    (root / "cup" / "notes.txt").write_text("not an image")
    _save(root / "stray.jpg", photos["rocket"])
    return root


def test_image_folder(folder):
    ds = read_image_folder(folder)
    assert ds.classes == ["cat", "cup"]
    assert [os.path.relpath(p, folder) for p in ds.paths] == ["cat/chelsea.jpg", "cat/deeper/chelsea2.png",
                                                               "cup/coffee.jpg"]
    assert ds.labels.tolist() == [0, 0, 1] and ds.labels.dtype == np.int64 and not ds.multi_label
    assert ds.problems == [("unlabelled_image", str(folder / "stray.jpg"))]


def test_image_folder_with_given_classes_reports_unknown(folder):
    ds = read_image_folder(folder, classes=["cup", "dog"])
    assert ds.labels.tolist() == [0]
    assert ("unknown_class", "cat (2 images)") in ds.problems


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="no class sub-folders"):
        read_image_folder(tmp_path / "flat")


def test_csv_single_label_and_problems(folder):
    t = folder / "labels.csv"
    t.write_text("path,label\ncat/chelsea.jpg,cat\ncup/coffee.jpg,cup\nmissing.jpg,cup\ncat/deeper/chelsea2.png,\n")
    ds = read_label_table(t)
    assert ds.classes == ["cat", "cup"] and ds.labels.tolist() == [0, 1] and not ds.multi_label
    assert ("missing_file", str(folder / "missing.jpg")) in ds.problems
    assert ("empty_label", str(folder / "cat/deeper/chelsea2.png")) in ds.problems


def test_csv_semicolon_multi_label(folder):
    t = folder / "labels.csv"
    t.write_text("file,labels\ncat/chelsea.jpg,cat;animal\ncup/coffee.jpg,cup\n")
    ds = read_label_table(t)
    assert ds.multi_label and ds.classes == ["animal", "cat", "cup"]
    assert ds.labels.tolist() == [[1, 1, 0], [0, 0, 1]] and ds.labels.dtype == np.uint8


def test_flag_columns_multi_label_and_parquet(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"image": ["cat/chelsea.jpg", "cup/coffee.jpg"], "cat": [1, 0], "cup": [0, 1], "round": [0, 1]})
    pq.write_table(t, folder / "labels.parquet")
    ds = read_label_table(folder / "labels.parquet")
    assert ds.multi_label and ds.classes == ["cat", "cup", "round"]
    assert ds.labels.tolist() == [[1, 0, 0], [0, 1, 1]]


def test_unknown_class_in_table(folder):
    t = folder / "labels.csv"
    t.write_text("path,label\ncat/chelsea.jpg,cat\ncup/coffee.jpg,mug\n")
    ds = read_label_table(t, classes=["cat", "cup"])
    assert ds.labels.tolist() == [0]
    assert ds.problems == [("unknown_class", f"{folder / 'cup/coffee.jpg'}: mug")]


def test_bad_tables(tmp_path):
    t = tmp_path / "x.csv"
    t.write_text("name,label\na.jpg,cat\n")
    with pytest.raises(DatasetError, match="no path column"):
        read_label_table(t)
    t.write_text("path,label\na.jpg,cat,extra\n")
    with pytest.raises(DatasetError, match="line 2 has 3 fields"):
        read_label_table(t)
    with pytest.raises(FileNotFoundError):
        read_label_table(tmp_path / "none.csv")


def _coco(tmp_path, photos):
    imgs = tmp_path / "coco"
    a = _save(imgs / "a.jpg", photos["astronaut"])
    _save(imgs / "b.jpg", photos["coffee"])
    gt = {
        "images": [{"id": 7, "file_name": "a.jpg", "height": 512, "width": 512},
                   {"id": 9, "file_name": "b.jpg", "height": 400, "width": 600},
                   {"id": 11, "file_name": "gone.jpg", "height": 10, "width": 10}],
        "categories": [{"id": 3, "name": "face"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [179.0, 60.0, 89.0, 113.0], "area": 10057.0,
             "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [50.5, 10.25, 400.0, 500.0], "area": 2e5,
             "iscrowd": 1},
            {"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 10, 20], "area": 200, "iscrowd": 0},
            {"id": 4, "image_id": 9, "category_id": 99, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0},
            {"id": 5, "image_id": 42, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(gt))
    return path, imgs, a


def test_coco_matches_pycocotools(tmp_path, photos):
    from pycocotools.coco import COCO

    path, imgs, a = _coco(tmp_path, photos)
    ds = read_coco(path, imgs)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCO(str(path))
    assert ds.classes == ["person", "face"] and ds.category_ids == [1, 3]  # ordered by category id
    assert ds.image_ids == [7, 9, 11] and ds.paths[0] == a and ds.sizes[1] == (400, 600)
    for iid, boxes, cls, crowd in zip(ds.image_ids, ds.boxes, ds.class_ids, ds.iscrowd):
        anns = [x for x in ref.loadAnns(ref.getAnnIds(imgIds=[iid])) if x["category_id"] in (1, 3)]
        want = np.array([[x["bbox"][0], x["bbox"][1], x["bbox"][0] + x["bbox"][2], x["bbox"][1] + x["bbox"][3]]
                         for x in anns]).reshape(-1, 4)
        np.testing.assert_array_equal(boxes, want)  # exact: one addition per coordinate
        assert [ds.category_ids[k] for k in cls] == [x["category_id"] for x in anns]
        assert crowd.tolist() == [x["iscrowd"] for x in anns]
    kinds = sorted(k for k, _ in ds.problems)
    assert kinds == ["labels_without_image", "missing_file", "no_boxes", "unknown_class"]


def test_coco_malformed(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_coco(p)
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="expected a COCO object"):
        read_coco(p)


def _exif_jpeg(path, img, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(path, img, exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("yaml_text", [
    "path: .\nnames:\n  0: face\n  1: cup\n",
    "names: ['face', 'cup']\n",
    "names:\n  - face\n  - cup\n",
])
@pytest.mark.parametrize("pyyaml", [True, False], ids=["pyyaml", "builtin-parser"])
def test_yolo_layout_round_trip(tmp_path, photos, yaml_text, pyyaml, monkeypatch):
    if not pyyaml:  # the reader's own parser for the shapes Ultralytics writes, used without PyYAML
        monkeypatch.setitem(sys.modules, "yaml", None)
    else:
        pytest.importorskip("yaml")
    root = tmp_path / "yolo"
    a = _save(root / "images" / "val" / "astro.jpg", photos["astronaut"])        # 512 x 512
    c = _exif_jpeg(root / "images" / "val" / "coffee.jpg", photos["coffee"], 6)  # stored 600 x 400, shown 400 x 600
    _save(root / "images" / "val" / "nolabel.png", photos["rocket"][:50, :80])
    want = {a: (np.array([[179.0, 60.0, 268.0, 173.0]]), [0]),
            c: (np.array([[10.0, 20.0, 110.0, 420.0], [0.0, 0.0, 400.0, 600.0]]), [1, 1])}
    os.makedirs(root / "labels" / "val")
    for p, (boxes, cls) in want.items():
        h, w = read_image(p).shape[:2]  # the EXIF-rotated frame
        lines = [f"{k} {(x1 + x2) / 2 / w:.9f} {(y1 + y2) / 2 / h:.9f} {(x2 - x1) / w:.9f} {(y2 - y1) / h:.9f}"
                 for k, (x1, y1, x2, y2) in zip(cls, boxes)]
        stem = os.path.splitext(os.path.basename(p))[0]
        (root / "labels" / "val" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "labels" / "val" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text(yaml_text)

    ds = read_yolo(root, split="val")
    assert ds.classes == ["face", "cup"]
    assert image_size(open(c, "rb").read())[1:] == (400, 600) and ds.sizes[ds.paths.index(c)] == (600, 400)
    for p, (boxes, cls) in want.items():
        i = ds.paths.index(p)
        np.testing.assert_allclose(ds.boxes[i], boxes, atol=1e-5)  # 9 decimals of normalised coordinates
        assert ds.class_ids[i].tolist() == cls
    kinds = sorted(k for k, _ in ds.problems)
    assert kinds == ["image_without_labels", "labels_without_image"]


def test_yolo_bad_label_line(tmp_path, photos):
    root = tmp_path / "yolo"
    _save(root / "images" / "a.jpg", photos["coffee"])
    os.makedirs(root / "labels")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2 0.1 0.1 0.3\n")
    with pytest.raises(DatasetError, match="segmentation and pose"):
        read_yolo(root)
    (root / "labels" / "a.txt").write_text("0 0.5 x 0.2 0.2\n")
    with pytest.raises(DatasetError, match="line 1: not numbers"):
        read_yolo(root)
    (root / "labels" / "a.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    ds = read_yolo(root, classes=["only"])
    assert ds.boxes[0].shape == (0, 4) and ds.problems[0][0] == "unknown_class"
