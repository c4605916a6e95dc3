"""Detection outputs: rows, COCO results JSON, Parquet, YOLO label folders, drawn images, and the
resumable batch job (``score(..., task="detect")``, CLI ``pyimgcls score --task detect``).

One row per input image (Parquet, JSONL, CSV; ``ROW_COLUMNS``):

=================  ==========================  ==================================================
column             type                        meaning
=================  ==========================  ==================================================
``path``           string                      the input (``score``: its absolute path)
``width``          int (nullable)              the image as ``read_image`` returns it (EXIF applied)
``height``         int (nullable)
``stored_width``   int (nullable)              as stored in the file
``stored_height``  int (nullable)
``count``          int (nullable)              number of detections (null when ``error``)
``boxes``          list of [x1, y1, x2, y2]    float32 pixels of the EXIF-rotated image
``scores``         list of float32             confidences, best first
``class_ids``      list of int32
``class_names``    list of string
``keypoints``      list of list of [x, y]      per box (faces: eyes, nose, mouth corners); null
                                               when the model gives none
``error``          string, null when none      why the input has no answer
=================  ==========================  ==================================================

In CSV the list columns are JSON text.

The writers (``open_output``) take results from one thread, in order; ``score_detections`` holds
the output's lock for the whole run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from typing import Any, Iterable, Sequence

import numpy as np

from ._writers import AppendWriter, OutputLock, ParquetWriter, atomic_write, check_manifest, fsync_dir, \
    remove_stale_temporaries, text, write_manifest

__all__ = ["ROW_COLUMNS", "detection_row", "row_schema", "open_output", "CocoWriter", "ParquetRowsWriter",
           "YoloLabelsWriter", "UniqueNames", "score_detections", "yolo_lines", "save_drawn", "detection_settings"]

log = logging.getLogger("pyimgcls")

ROW_COLUMNS = ["path", "width", "height", "stored_width", "stored_height", "count", "boxes", "scores", "class_ids",
               "class_names", "keypoints", "error"]


def row_schema(metadata: dict | None = None):
    """The Arrow schema of ``ROW_COLUMNS``."""
    import pyarrow as pa

    fields = [("path", pa.string()), ("width", pa.int32()), ("height", pa.int32()), ("stored_width", pa.int32()),
              ("stored_height", pa.int32()), ("count", pa.int32()),
              ("boxes", pa.list_(pa.list_(pa.float32(), 4))), ("scores", pa.list_(pa.float32())),
              ("class_ids", pa.list_(pa.int32())), ("class_names", pa.list_(pa.string())),
              ("keypoints", pa.list_(pa.list_(pa.list_(pa.float32(), 2)))), ("error", pa.string())]
    return pa.schema(fields, metadata={"pyimgcls": json.dumps(metadata)} if metadata is not None else None)


def detection_row(r, path: str | None = None) -> dict:
    """One output row (``ROW_COLUMNS``) of a ``DetectionResult``; ``path`` replaces ``r.source``."""
    (h, w) = r.image_size if r.image_size else (None, None)
    (sh, sw) = r.stored_size if getattr(r, "stored_size", None) else (None, None)
    d = r.detections if r.error is None else None
    kp = getattr(d, "keypoints", None) if d is not None else None
    return {
        "path": text(r.source if path is None else path),
        "width": w, "height": h, "stored_width": sw, "stored_height": sh,
        "count": None if d is None else len(d),
        "boxes": [] if d is None else d.xyxy.tolist(),
        "scores": [] if d is None else d.confidence.tolist(),
        "class_ids": [] if d is None else d.class_id.tolist(),
        "class_names": [] if d is None else [text(n) for n in d.labels],
        "keypoints": None if kp is None else np.asarray(kp, np.float32).tolist(),
        "error": text(r.error) if r.error else None,
    }


def yolo_lines(r, *, save_conf: bool = False) -> list[str]:
    """YOLO label lines of a result: ``class cx cy w h`` normalised by the image's width and height
    (boxes clipped to the image first), with the confidence as a sixth column if ``save_conf``."""
    d = r.detections
    if d is None or not len(d):
        return []
    h, w = r.image_size
    b = np.clip(d.xyxy.astype(np.float64), 0, [w, h, w, h])
    cx, cy = (b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h
    bw, bh = (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h
    out = []
    for k in range(len(d)):
        line = f"{int(d.class_id[k])} {cx[k]:.6f} {cy[k]:.6f} {bw[k]:.6f} {bh[k]:.6f}"
        out.append(line + f" {float(d.confidence[k]):.6f}" if save_conf else line)
    return out


class UniqueNames:
    """File names unique within one run: ``stem.ext``, then ``stem_2.ext``, ``stem_3.ext``... for
    other inputs with the same stem (same-named files from different folders). Not thread-safe."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, source: str, ext: str) -> str:
        base = os.path.splitext(os.path.basename(source.rstrip("/\\")))[0] or "image"
        base = re.sub(r"[\x00-\x1f/\\]", "_", base)[:200]
        name, k = f"{base}{ext}", 1
        while name.lower() in self.used:  # also on case-insensitive file systems
            k += 1
            name = f"{base}_{k}{ext}"
        self.used.add(name.lower())
        if k > 1:
            log.info("%s: written as %s (the name was taken by an earlier input)", source, name)
        return name


SAVE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def save_drawn(r, folder: str, names: UniqueNames) -> str:
    """Writes the image of a path result with its detections drawn (``Detections.annotate``) into
    ``folder``, under a name from ``names``, in the input's format (PNG when OpenCV cannot write
    it; JPEG quality 95). The image is read again (``read_image``: the same EXIF-rotated pixels
    the boxes refer to). Returns the file name."""
    import cv2

    from ..io.images import read_image

    ext = os.path.splitext(r.source)[1].lower()
    ext = ext if ext in SAVE_EXTS else ".png"
    name = names(r.source, ext)
    dest = os.path.join(folder, name)
    if os.path.exists(dest) and os.path.exists(r.source) and os.path.samefile(dest, r.source):
        raise OSError(f"{dest} is the input itself: the drawn image would replace it")
    drawn = r.detections.annotate(read_image(r.source))
    ok, buf = cv2.imencode(ext, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else [])
    if not ok:
        raise OSError(f"could not encode {name}")
    atomic_write(dest, buf.tobytes())
    return name


# ----------------------------------------------------------------------------- detect --out writers
class CocoWriter:
    """COCO results: ``OUT`` is the list ``[{"image_id", "category_id", "bbox": [x, y, w, h],
    "score"}, ...]`` that ``COCO.loadRes`` and ``COCOeval`` take, and ``OUT`` with ``.images.json``
    in place of ``.json`` holds ``{"images": [{"id", "file_name", "width", "height"[, "error"]}],
    "categories": [{"id", "name"}], "annotations": []}``: a COCO file that maps image ids (1, 2, ...
    in input order) to the inputs, so ``COCO(images).loadRes(OUT)`` loads the results.
    ``category_id`` is the model's class id. Written through temporary files and atomic renames."""

    def __init__(self, path: str, class_names: Sequence[str] | None) -> None:
        self.path = path
        self.images_path = path[: -len(".json")] + ".images.json" if path.lower().endswith(".json") else \
            path + ".images.json"
        self.class_names = class_names
        self.images: list[dict] = []
        self.tmp = f"{path}.tmp-{os.getpid()}"
        self.f = open(self.tmp, "w", encoding="utf-8")
        self.f.write("[")
        self.n = 0

    def add(self, r) -> None:
        image_id = len(self.images) + 1
        entry: dict[str, Any] = {"id": image_id, "file_name": text(r.source)}
        if r.image_size:
            entry["height"], entry["width"] = int(r.image_size[0]), int(r.image_size[1])
        if r.error:
            entry["error"] = text(r.error)
        self.images.append(entry)
        if r.error is None and r.detections is not None:
            for a in r.detections.to_coco(image_id):
                self.f.write(("\n" if self.n == 0 else ",\n") + json.dumps(a))
                self.n += 1

    def close(self) -> None:
        self.f.write("\n]\n")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        names = list(self.class_names) if self.class_names else \
            [str(i) for i in range(1 + max([0] + [c for c in self._class_ids()]))]  # (a model without names: [])
        meta = {"images": self.images, "categories": [{"id": i, "name": text(str(n))} for i, n in enumerate(names)],
                "annotations": []}
        atomic_write(self.images_path, json.dumps(meta, ensure_ascii=False).encode())
        os.replace(self.tmp, self.path)
        fsync_dir(self.path)

    def _class_ids(self) -> Iterable[int]:
        with open(self.tmp, encoding="utf-8") as f:
            for a in json.load(f):
                yield int(a["category_id"])

    def abort(self) -> None:
        self.f.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


class ParquetRowsWriter:
    """One row per image (``ROW_COLUMNS``) in a Parquet file, streamed in row groups of 1024 to a
    temporary file that replaces ``OUT`` atomically at the end."""

    def __init__(self, path: str, metadata: dict | None = None) -> None:
        import pyarrow.parquet as pq

        self.path, self.schema = path, row_schema(metadata)
        self.tmp = f"{path}.tmp-{os.getpid()}"
        self.w = pq.ParquetWriter(self.tmp, self.schema)
        self.rows: list[dict] = []

    def add(self, r) -> None:
        self.rows.append(detection_row(r))
        if len(self.rows) >= 1024:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.w.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.w.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        fsync_dir(self.path)

    def abort(self) -> None:
        self.w.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


class YoloLabelsWriter:
    """A folder of YOLO label files, one ``NAME.txt`` per image (``class cx cy w h [conf]``,
    normalised; an empty file for an image without detections, none for an input that failed).
    Names come from the inputs' file names; a name already used in this run gets ``_2``, ``_3``...
    (see ``UniqueNames``) and ``index.json`` lists ``{"label", "source"[, "error"]}`` for every
    input, so nothing is overwritten or lost silently. Each file is written atomically."""

    def __init__(self, folder: str, *, save_conf: bool = False) -> None:
        self.folder, self.save_conf = folder, save_conf
        os.makedirs(folder, exist_ok=True)
        self.names = UniqueNames()
        self.names.used.add("index.json")
        self.index: list[dict] = []

    def add(self, r) -> None:
        entry: dict[str, Any] = {"label": None, "source": text(r.source)}
        if r.error:
            entry["error"] = text(r.error)
        else:
            name = self.names(text(r.source), ".txt")  # valid UTF-8, as index.json must hold it
            lines = yolo_lines(r, save_conf=self.save_conf)
            atomic_write(os.path.join(self.folder, name), "".join(ln + "\n" for ln in lines).encode())
            entry["label"] = name
        self.index.append(entry)

    def close(self) -> None:
        atomic_write(os.path.join(self.folder, "index.json"), json.dumps(self.index, ensure_ascii=False,
                                                                         indent=0).encode())

    def abort(self) -> None:
        self.close()


def open_output(out: str, class_names: Sequence[str] | None, *, save_conf: bool = False):
    """The writer for ``detect --out OUT``, chosen by its suffix: ``.json`` COCO results,
    ``.parquet`` one row per image, a folder (an existing one, a path ending in ``/`` or without a
    suffix) YOLO labels. Each has ``add(result)``, ``close()`` and ``abort()``."""
    out = os.fspath(out)
    ext = os.path.splitext(out.rstrip("/" + os.sep))[1].lower()
    if os.path.isdir(out) or out.endswith(("/", os.sep)) or not ext:
        return YoloLabelsWriter(out, save_conf=save_conf)
    if ext in (".json", ".parquet"):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if ext == ".json":
        return CocoWriter(out, class_names)
    if ext == ".parquet":
        return ParquetRowsWriter(out)
    raise ValueError(f"--out must be a .json (COCO results), .parquet file or a folder (YOLO labels), got {out!r}")


# ----------------------------------------------------------------------------- the batch job
class _DetectParquetWriter(ParquetWriter):
    def __init__(self, path: str, metadata: dict) -> None:
        super().__init__(path, False, False, None, metadata)

    def schema(self):
        return row_schema(self.metadata)


class _DetectAppendWriter(AppendWriter):
    def __init__(self, path: str, fmt: str) -> None:
        super().__init__(path, fmt, False, False)
        self.columns = list(ROW_COLUMNS)


def model_fingerprint(detector) -> str:
    """SHA-256 of the detector's model file(s): its session's model bytes (``Detector``) or the
    three MTCNN files (``FaceDetector``)."""
    h = hashlib.sha256()
    sessions = [getattr(detector, "session", None)] + list(getattr(detector, "sessions", None) or [])
    found = False
    for s in sessions:
        data = getattr(s, "model_bytes", None)
        if data:
            h.update(data)
            found = True
    if not found:
        from ..tasks.faces import FaceDetector, mtcnn_model_paths

        if not isinstance(detector, FaceDetector):
            raise TypeError(f"detector must be a Detector or FaceDetector, got {type(detector).__name__}")
        for path in mtcnn_model_paths():  # the three MTCNN files inside the package
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _settings(detector) -> dict:
    keys = ("conf", "iou", "max_det", "classes", "agnostic_nms", "layout", "min_face_size", "thresholds",
            "scale_factor")
    out = {}
    for k in keys:
        v = getattr(detector, k, None)
        if v is not None:
            out[k] = list(v) if isinstance(v, (tuple, list, set, frozenset, np.ndarray)) else v
    return json.loads(json.dumps(out, default=float))


def _device(detector) -> str:
    sessions = [getattr(detector, "session", None)] + list(getattr(detector, "sessions", None) or [])
    for s in sessions:
        providers = getattr(s, "providers", None)
        if providers:
            return {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                    "TensorrtExecutionProvider": "tensorrt"}.get(providers[0], providers[0])
    return "cpu"


def score_detections(inputs: Any, *, out: str, detector=None, model: str = "faces", batch_size: int = 16,
                     resume: bool = True, progress: bool = True, overwrite: bool = False,
                     chunk_size: int | None = None, fast_decode: bool = False, item_timeout: float | None = None,
                     ids: Sequence[str] | None = None, shard: tuple[int, int] | None = None,
                     include_hidden: bool = False, **detector_options):
    """Detects objects in every image of ``inputs`` and writes one row per input to ``out``
    (``.parquet``, ``.jsonl`` or ``.csv``; columns in this module's docstring), resumably: the same
    guarantees as ``score`` (exactly one row per input after any kill and rerun, shards, per-item
    error rows, atomic chunks, a manifest that refuses a resume with other settings, a lock).

    Args:
        inputs: as ``score``: folders, patterns, ``@FILE`` lists, paths, in-memory images with ``ids``.
        out: the output file.
        detector: a ``Detector`` / ``FaceDetector`` to use; otherwise ``load_detector(model,
            **detector_options)`` (``"faces"`` or a YOLO ONNX path; options such as ``conf``,
            ``iou``, ``max_det``, ``classes``, ``threads``, ``device``).
        batch_size, resume, progress, overwrite, chunk_size, fast_decode, item_timeout, ids, shard,
        include_hidden: as ``score``.

    Returns:
        ``ScoreSummary``.
    """
    from .. import __version__
    from .score import check_job_args, run_rows

    out, fmt, shard = check_job_args(out, batch_size, shard)
    if detector is None:
        from ..tasks import load_detector

        detector = load_detector(model, **{k: v for k, v in detector_options.items() if v is not None})
    elif detector_options:
        raise ValueError(f"give detector options ({', '.join(sorted(detector_options))}) to the detector, "
                         "not beside detector=")
    settings = {"task": "detect", "model": model_fingerprint(detector), "detector": _settings(detector),
                "names": [text(str(n)) for n in detector.names], "format": fmt, "schema": 1,
                "decode": "fast" if fast_decode else "exact", "device": _device(detector)}
    manifest = {"settings": settings,
                "info": {"pyimgcls_version": __version__, "model": str(getattr(detector, "model_path", model))[:500],
                         "detector": type(detector).__name__, "shard": shard,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    writer = _DetectParquetWriter(out, manifest) if fmt == "parquet" else _DetectAppendWriter(out, fmt)
    with OutputLock(out):
        remove_stale_temporaries(out)
        check_manifest(out, settings, overwrite, resume, writer)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_manifest(out, manifest)
        return run_rows(inputs, out, writer,
                        lambda items: detector.predict_iter(None, items=items, batch_size=batch_size,
                                                            fast_decode=fast_decode, item_timeout=item_timeout),
                        detection_row,
                        batch_size=batch_size, resume=resume, progress=progress, chunk_size=chunk_size, ids=ids,
                        shard=shard, include_hidden=include_hidden)


def detection_settings(detector, *, fmt: str, fast_decode: bool) -> dict:
    """Every setting that changes a detection row (what ``score_detections`` records in its
    manifest), for other engines that write the same rows (``integrations.ray``)."""
    return {"task": "detect", "model": model_fingerprint(detector), "detector": _settings(detector),
            "names": [text(str(n)) for n in detector.names], "format": fmt, "schema": 1,
            "decode": "fast" if fast_decode else "exact", "device": _device(detector)}
