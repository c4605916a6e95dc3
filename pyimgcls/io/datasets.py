"""Labelled datasets as users already have them, read into one plain form.

Classification (``ClassificationDataset``):

* ``read_image_folder(root)``: one sub-folder per class (torchvision's ``ImageFolder``): class
  names are the folder names in sorted order; images are found recursively inside each.
* ``read_label_table(path)``: a CSV or Parquet table with a path column and one label column
  (single-label), several label columns (multi-label: each a 0/1 column named after its class,
  or label names), or one ``;``-separated label field (multi-label). Relative paths are resolved
  against the table's folder.

Detection (``DetectionDataset``, boxes ``xyxy`` float64 in pixels of the image as stored):

* ``read_coco(json_path, images_dir)``: COCO ``instances_*.json`` (boxes ``xywh`` in the file).
* ``read_yolo(root)``: Ultralytics' layout: ``images/**`` beside ``labels/**/*.txt`` (``class
  cx cy w h`` normalised to [0, 1]), class names from ``data.yaml`` (``names:`` as a list or a
  mapping) when present.

Nothing is dropped silently: images without labels, labels without images, missing files and
unknown classes are counted in ``problems`` (a list of ``(kind, detail)``), for the reports to
list. A malformed file raises ``DatasetError`` naming the file and line.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .images import image_size
from .sources import IMAGE_EXTENSIONS

__all__ = [
    "ClassificationDataset",
    "DatasetError",
    "DetectionDataset",
    "read_coco",
    "read_image_folder",
    "read_label_table",
    "read_yolo",
]

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_path")
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target")


class DatasetError(ValueError):
    """A dataset file that cannot be read as the format it claims (names the file and the place)."""


@dataclass
class ClassificationDataset:
    """Image paths with their labels.

    Attributes:
        paths: image paths, in a stable order.
        classes: class names; label ``k`` is ``classes[k]``.
        labels: single-label: ``(N,)`` int64 class indices. Multi-label: ``(N, C)`` uint8 0/1.
        multi_label: which of the two ``labels`` is.
        problems: ``(kind, detail)`` for everything that was not read as a labelled image
            (``"missing_file"``, ``"empty_label"``, ``"not_an_image"``, ...).
    """

    paths: list[str]
    classes: list[str]
    labels: np.ndarray
    multi_label: bool = False
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class DetectionDataset:
    """Images with their ground-truth boxes.

    Attributes:
        paths: image paths.
        image_ids: one id per image (COCO's ids, or 0..N-1).
        boxes: per image, ``(M, 4)`` float64 ``xyxy`` boxes in pixels.
        class_ids: per image, ``(M,)`` int64 indices into ``classes``.
        iscrowd: per image, ``(M,)`` uint8 (COCO ``iscrowd``; zeros for YOLO).
        classes: class names.
        category_ids: the file's own id of each class (COCO category ids; ``0..C-1`` for YOLO).
        sizes: per image ``(height, width)`` as declared (COCO) or ``None`` where not declared.
        problems: ``(kind, detail)`` as in ``ClassificationDataset``.
    """

    paths: list[str]
    image_ids: list[int]
    boxes: list[np.ndarray]
    class_ids: list[np.ndarray]
    iscrowd: list[np.ndarray]
    classes: list[str]
    category_ids: list[int]
    sizes: list[tuple[int, int] | None]
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def _is_image(name: str) -> bool:
    stem = name.lstrip(".")  # os.path.splitext's extension: leading dots do not start one
    dot = stem.rfind(".")
    return dot > 0 and stem[dot:].lower() in IMAGE_EXTENSIONS


def _walk_images(folder: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        prefix = os.path.join(dirpath, "")  # one join per folder, not per file
        out.extend(prefix + f for f in sorted(filenames) if not f.startswith(".") and _is_image(f))
    return out


# ---------------------------------------------------------------------- classification
def read_image_folder(root: str | os.PathLike, *, classes: Sequence[str] | None = None) -> ClassificationDataset:
    """Reads an ImageFolder tree: ``root/<class>/**/<image>``.

    Args:
        root: the folder whose sub-folders are the classes.
        classes: class names in label order; by default the sub-folders' names, sorted. A
            sub-folder not in ``classes`` is reported as ``"unknown_class"``.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder not found: {root}")
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders (expected root/<class>/<image>)")
    names = list(folders) if classes is None else [str(c) for c in classes]
    index = {n: i for i, n in enumerate(names)}
    paths, labels, problems = [], [], []
    for f in os.listdir(root):
        p = os.path.join(root, f)
        if os.path.isfile(p) and _is_image(f) and not f.startswith("."):
            problems.append(("unlabelled_image", p))
    for d in folders:
        images = _walk_images(os.path.join(root, d))
        if d not in index:
            problems.append(("unknown_class", f"{d} ({len(images)} images)"))
            continue
        paths.extend(images)
        labels.extend([index[d]] * len(images))
    return ClassificationDataset(paths=paths, classes=names, labels=np.asarray(labels, np.int64),
                                 problems=sorted(problems))


def _read_table(path: str) -> tuple[list[str], list[list[object]]]:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        cols = t.column_names
        data = [t.column(c).to_pylist() for c in cols]
        return cols, [list(r) for r in zip(*data)] if data else []
    if ext not in (".csv", ".tsv", ".txt"):
        raise DatasetError(f"{path}: expected a .csv, .tsv or .parquet label table")
    with open(path, newline="", encoding="utf-8-sig") as f:
        sample = f.read(65536)
        f.seek(0)
        delim = "\t" if ext == ".tsv" or ("\t" in sample and "," not in sample) else ","
        rows = list(csv.reader(f, delimiter=delim))
    if not rows:
        raise DatasetError(f"{path}: empty table")
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DatasetError(f"{path}: line {i + 2} has {len(r)} fields, the header has {len(header)}")
    return header, body


def _is_flag(v: object) -> bool:
    return v in (0, 1, "0", "1", True, False, "true", "false", "True", "False", "", None)


def _flag(v: object) -> int:
    return 1 if v in (1, "1", True, "true", "True") else 0


def read_label_table(path: str | os.PathLike, *, path_column: str | None = None,
                     label_columns: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                     separator: str = ";", root: str | os.PathLike | None = None) -> ClassificationDataset:
    """Reads a CSV / TSV / Parquet table of image paths and labels.

    Args:
        path: the table.
        path_column: the column holding image paths (default: the first of ``path``, ``file``,
            ``filename``, ``file_name``, ``image``, ``image_path``).
        label_columns: default: one of ``label``, ``labels``, ``class``, ``class_name``,
            ``category``, ``target`` if present, else every other column (multi-label). Several
            columns whose values are all 0/1 are per-class flags named after the columns;
            otherwise each cell names a class.
        classes: class names in label order; default: the names found, sorted. A label not in
            ``classes`` is reported as ``"unknown_class"`` and the row is left out.
        separator: in a single label column, a cell with this character holds several labels
            (multi-label).
        root: folder that relative paths are taken from (default: the table's folder).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label table not found: {path}")
    header, rows = _read_table(path)
    header = [str(h).strip() for h in header]
    pcol = path_column or next((c for c in header if c.lower() in PATH_COLUMNS), None)
    if pcol is None or pcol not in header:
        raise DatasetError(f"{path}: no path column (looked for {path_column or PATH_COLUMNS}); columns: {header}")
    if label_columns is None:
        lc = next((c for c in header if c.lower() in LABEL_COLUMNS), None)
        lcols = [lc] if lc else [c for c in header if c != pcol]
    else:
        lcols = [str(c) for c in label_columns]
    missing = [c for c in lcols if c not in header]
    if not lcols or missing:
        raise DatasetError(f"{path}: label columns {missing or lcols} not in the header {header}")
    pi, li = header.index(pcol), [header.index(c) for c in lcols]
    base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(path))
    problems: list[tuple[str, str]] = []

    flags = len(lcols) > 1 and all(_is_flag(r[i]) for r in rows for i in li)
    per_row: list[list[str]] = []
    for r in rows:
        if flags:
            per_row.append([lcols[k] for k, i in enumerate(li) if _flag(r[i])])
        else:
            names: list[str] = []
            for i in li:
                v = r[i]
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    continue
                parts = str(v).split(separator) if len(lcols) == 1 else [str(v)]
                names.extend(p.strip() for p in parts if p.strip())
            per_row.append(names)
    multi = flags or len(lcols) > 1 or any(len(n) > 1 for n in per_row)
    found = sorted({n for names in per_row for n in names}) if not flags else list(lcols)
    names_out = list(found) if classes is None else [str(c) for c in classes]
    index = {n: i for i, n in enumerate(names_out)}

    paths, single, multi_rows = [], [], []
    for r, names in zip(rows, per_row):
        p = str(r[pi]).strip() if r[pi] is not None else ""
        if not p:
            problems.append(("empty_path", f"row with labels {names}"))
            continue
        full = p if os.path.isabs(p) else os.path.join(base, p)
        if not os.path.isfile(full):
            problems.append(("missing_file", full))
            continue
        unknown = [n for n in names if n not in index]
        if unknown:
            problems.append(("unknown_class", f"{full}: {', '.join(unknown)}"))
            continue
        if not names and not multi:
            problems.append(("empty_label", full))
            continue
        paths.append(full)
        if multi:
            v = np.zeros(len(names_out), np.uint8)
            v[[index[n] for n in names]] = 1
            multi_rows.append(v)
        else:
            single.append(index[names[0]])
    labels = (np.stack(multi_rows) if multi_rows else np.zeros((0, len(names_out)), np.uint8)) if multi \
        else np.asarray(single, np.int64)
    return ClassificationDataset(paths=paths, classes=names_out, labels=labels, multi_label=multi,
                                 problems=problems)


# ---------------------------------------------------------------------- detection
def read_coco(json_path: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> DetectionDataset:
    """Reads COCO ``instances_*.json`` ground truth.

    Args:
        json_path: the annotation file.
        images_dir: folder that ``file_name`` is relative to (default: the file's folder).
    """
    json_path = os.fspath(json_path)
    try:
        with open(json_path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("images"), list) or not isinstance(d.get("categories"), list):
        raise DatasetError(f"{json_path}: expected a COCO object with 'images', 'annotations' and 'categories'")
    base = os.fspath(images_dir) if images_dir is not None else os.path.dirname(os.path.abspath(json_path))
    cats = sorted(d["categories"], key=lambda c: c["id"])
    cat_ids = [int(c["id"]) for c in cats]
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    problems: list[tuple[str, str]] = []
    anns: dict[int, list[dict]] = {}
    for k, a in enumerate(d.get("annotations", [])):
        try:
            anns.setdefault(int(a["image_id"]), []).append(a)
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{json_path}: annotation #{k} has no valid image_id") from None
    image_ids_seen = set()
    paths, ids, boxes, classes, crowd, sizes = [], [], [], [], [], []
    for im in d["images"]:
        iid = int(im["id"])
        image_ids_seen.add(iid)
        full = os.path.join(base, str(im.get("file_name", "")))
        if not os.path.isfile(full):
            problems.append(("missing_file", full))
        b, c, z = [], [], []
        for a in anns.get(iid, []):
            cid = int(a.get("category_id", -1))
            if cid not in cat_index:
                problems.append(("unknown_class", f"{full}: category_id {cid}"))
                continue
            bb = a.get("bbox")
            if not isinstance(bb, (list, tuple)) or len(bb) != 4:
                raise DatasetError(f"{json_path}: annotation {a.get('id')} has no 4-number bbox")
            x, y, w, h = (float(v) for v in bb)
            if not all(np.isfinite((x, y, w, h))) or w < 0 or h < 0:
                problems.append(("bad_box", f"{full}: annotation {a.get('id')} bbox {bb}"))
                continue
            b.append((x, y, x + w, y + h))
            c.append(cat_index[cid])
            z.append(1 if a.get("iscrowd") else 0)
        if not b:
            problems.append(("no_boxes", full))
        paths.append(full)
        ids.append(iid)
        boxes.append(np.asarray(b, np.float64).reshape(-1, 4))
        classes.append(np.asarray(c, np.int64))
        crowd.append(np.asarray(z, np.uint8))
        h, w = im.get("height"), im.get("width")
        sizes.append((int(h), int(w)) if isinstance(h, int) and isinstance(w, int) else None)
    for iid in sorted(set(anns) - image_ids_seen):
        problems.append(("labels_without_image", f"image_id {iid} ({len(anns[iid])} annotations)"))
    return DetectionDataset(paths=paths, image_ids=ids, boxes=boxes, class_ids=classes, iscrowd=crowd,
                            classes=[str(c.get("name", c["id"])) for c in cats], category_ids=cat_ids,
                            sizes=sizes, problems=problems)


def _yaml_names(path: str) -> list[str] | None:
    """``names`` of an Ultralytics ``data.yaml`` (a list, or a ``{index: name}`` mapping)."""
    try:
        import yaml  # PyYAML, when installed
    except ImportError:
        yaml = None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if yaml is not None:
        d = yaml.safe_load(text) or {}
        names = d.get("names") if isinstance(d, dict) else None
    else:
        names = _names_without_yaml(text, path)
    if names is None:
        return None
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise DatasetError(f"{path}: names must be indexed 0..{len(keys) - 1}, got {keys}")
        return [str(names[k] if k in names else names[str(k)]) for k in keys]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"{path}: names must be a list or a mapping, got {type(names).__name__}")


def _unquote(s: str) -> str:
    s = s.strip()
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"" else s


def _names_without_yaml(text: str, path: str):
    """The two shapes Ultralytics writes for ``names``: a flow list or an indented mapping / list."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:"):].split("#")[0].strip()
        if rest.startswith("["):
            body = rest
            j = i
            while not body.rstrip().endswith("]") and j + 1 < len(lines):
                j += 1
                body += lines[j].strip()
            return [_unquote(x) for x in body.strip()[1:-1].split(",") if x.strip()]
        out: dict[int, str] | list[str] = {}
        for sub in lines[i + 1:]:
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            if not sub.startswith((" ", "\t")):
                break
            s = sub.split("#")[0].strip()
            if s.startswith("- "):
                out = list(out.values()) if isinstance(out, dict) else out
                out.append(_unquote(s[2:]))
            elif ":" in s:
                k, v = s.split(":", 1)
                try:
                    out[int(k.strip())] = _unquote(v)  # type: ignore[index]
                except ValueError:
                    raise DatasetError(f"{path}: names key {k.strip()!r} is not an integer") from None
        return out
    return None


def read_yolo(root: str | os.PathLike, *, split: str | None = None, classes: Sequence[str] | None = None,
              data_yaml: str | os.PathLike | None = None) -> DetectionDataset:
    """Reads the YOLO layout: ``root/images/[split/]**`` and ``root/labels/[split/]**/*.txt``.

    Each label line is ``class cx cy w h`` normalised to the image size, so the image size is read
    from its header (no decode). Class names come from ``classes``, else ``data.yaml`` (``names``)
    in ``root`` or ``data_yaml``, else ``"0"``, ``"1"``, ...

    Args:
        root: the dataset folder.
        split: a sub-folder of ``images/`` and ``labels/`` (``train``, ``val``), or all of them.
    """
    root = os.fspath(root)
    img_root = os.path.join(root, "images", split) if split else os.path.join(root, "images")
    lbl_root = os.path.join(root, "labels", split) if split else os.path.join(root, "labels")
    if not os.path.isdir(img_root):
        raise FileNotFoundError(f"YOLO images folder not found: {img_root}")
    names = [str(c) for c in classes] if classes is not None else None
    if names is None:
        y = os.fspath(data_yaml) if data_yaml is not None else next(
            (os.path.join(root, f) for f in ("data.yaml", "data.yml", "dataset.yaml") if
             os.path.isfile(os.path.join(root, f))), None)
        if y is not None:
            names = _yaml_names(y)
    problems: list[tuple[str, str]] = []
    images = _walk_images(img_root)
    stems = {os.path.splitext(os.path.relpath(p, img_root))[0]: p for p in images}
    label_files = {}
    if os.path.isdir(lbl_root):
        for dirpath, dirnames, filenames in os.walk(lbl_root):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(".txt") and not f.startswith("."):
                    full = os.path.join(dirpath, f)
                    label_files[os.path.splitext(os.path.relpath(full, lbl_root))[0]] = full
    for stem in sorted(set(label_files) - set(stems)):
        problems.append(("labels_without_image", label_files[stem]))
    max_class = -1
    paths, boxes, cls, sizes = [], [], [], []
    for stem in sorted(stems):
        p = stems[stem]
        lf = label_files.get(stem)
        rows: list[tuple[int, float, float, float, float]] = []
        if lf is None:
            problems.append(("image_without_labels", p))
        else:
            with open(lf, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    s = line.split()
                    if not s:
                        continue
                    if len(s) < 5:
                        raise DatasetError(f"{lf}: line {n}: expected 'class cx cy w h', got {line.strip()!r}")
                    if len(s) > 5:
                        raise DatasetError(f"{lf}: line {n}: {len(s)} fields; segmentation and pose labels "
                                           "are not detection labels")
                    try:
                        k = int(s[0])
                        cx, cy, w, h = (float(v) for v in s[1:5])
                    except ValueError:
                        raise DatasetError(f"{lf}: line {n}: not numbers: {line.strip()!r}") from None
                    if k < 0 or not all(np.isfinite((cx, cy, w, h))) or w < 0 or h < 0:
                        problems.append(("bad_box", f"{lf}: line {n}"))
                        continue
                    rows.append((k, cx, cy, w, h))
        try:
            with open(p, "rb") as f:  # labels are normalised to the image as viewers show it (EXIF applied)
                _, ih, iw = image_size(f.read(), oriented=True)
        except Exception as e:  # noqa: BLE001 - an unreadable image is a problem to report, not a crash
            problems.append(("unreadable_image", f"{p}: {e}"))
            continue
        a = np.asarray([r[1:] for r in rows], np.float64).reshape(-1, 4)
        xyxy = np.stack([(a[:, 0] - a[:, 2] / 2) * iw, (a[:, 1] - a[:, 3] / 2) * ih,
                         (a[:, 0] + a[:, 2] / 2) * iw, (a[:, 1] + a[:, 3] / 2) * ih], axis=1)
        k = np.asarray([r[0] for r in rows], np.int64)
        if names is not None and len(k) and k.max() >= len(names):
            bad = k >= len(names)
            problems.append(("unknown_class", f"{lf}: class ids {sorted(set(k[bad].tolist()))}"))
            xyxy, k = xyxy[~bad], k[~bad]
        max_class = max(max_class, int(k.max()) if len(k) else -1)
        paths.append(p)
        boxes.append(xyxy)
        cls.append(k)
        sizes.append((ih, iw))
    if names is None:
        names = [str(i) for i in range(max_class + 1)]
    return DetectionDataset(paths=paths, image_ids=list(range(len(paths))), boxes=boxes, class_ids=cls,
                            iscrowd=[np.zeros(len(k), np.uint8) for k in cls], classes=names,
                            category_ids=list(range(len(names))), sizes=sizes, problems=problems)
