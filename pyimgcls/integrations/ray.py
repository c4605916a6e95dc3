"""Batch scoring on Ray Data: the rows of ``pyimgcls score`` (same columns, same numbers) computed by a
pool of Ray actors, one model per actor (``pip install "pyimgcls[ray]"``).

* ``score_dataset(source, ...)`` returns a lazy ``ray.data.Dataset`` of output rows, to write or
  transform with Ray as any other dataset: ``task="classify"`` / ``"embed"`` give the rows of
  ``score`` (``embed``: with ``embeddings=True``), ``task="detect"`` those of ``score(task="detect")``.
* ``score_to_dir(source, out=OUT_DIR, ...)`` (CLI: ``pyimgcls score DATA --out OUT_DIR --engine
  ray``) runs it and writes a resumable Parquet dataset.

How it works:

* Sources. Local folders, glob patterns, ``@FILE`` lists and files are listed on the driver with
  the same walker as ``score`` (same files, same row keys: the absolute path), and their bytes are
  read by Ray's read tasks (``ray.data.read_binary_files(include_paths=True)``). A file that cannot
  be opened when listed (a dangling link, no permission) is handed to the actors by path, so it
  becomes the same error row as in ``score``. A ``.parquet`` / ``.csv`` table with a ``path`` column
  is read by Ray; its paths (relative ones from the table's folder) are read in the actors. A
  ``ray.data.Dataset`` is used as it is: its ``bytes`` column (``read_binary_files``), else its
  ``image`` column (``read_images``), else its ``path`` column is the payload; ``path`` is the
  row key in every case.
* Actors. ``map_batches`` with a callable class: each actor builds its own ``Classifier`` (an ONNX
  Runtime session is never pickled) with ``threads`` equal to the actor's ``num_cpus``, so decode,
  preprocessing and inference stay inside the CPUs Ray gave it. An actor that dies is restarted
  and its batch retried: Ray Data gives its actor pools ``max_restarts=-1`` and
  ``max_task_retries=-1`` (``ActorPoolMapOperator``; passing them again is deprecated), and a test
  kills one mid-run.
* Room for the read tasks. An actor pool that takes every CPU of the cluster leaves none for the
  read tasks and the job hangs (ray-project/ray#44687, "Dataset hangs if you launch actors on all
  CPUs"): read tasks here ask for ``read_num_cpus`` (0.25 by default: they only read bytes), the
  default ``concurrency`` leaves that much free, and an explicit one that does not is refused.
* A corrupt image is a row with ``error`` set (the decoder's message, naming the path as
  ``score`` does); it never fails a block.
* ``score_to_dir``: the driver receives the rows (small: about 200 bytes each without embeddings)
  and writes them as Parquet part files, each written under a hidden temporary name, fsynced and
  renamed, so a killed job never leaves a half-written part that a rerun would trust. A path
  already written is dropped before writing (a retried task can never double a row), and a rerun
  reads the paths of the parts present and scores only the rest. ``OUT_DIR/_pyimgcls.json`` holds
  the settings; a rerun with other settings is refused. Readers (pyarrow, pandas, Spark, Ray)
  skip names starting with ``_`` or ``.``.

* Evaluation (``evaluate(..., engine="ray")``, ``pyimgcls eval --engine ray``): the same sources
  and actors, but each actor call returns, instead of rows, the mergeable states of its block
  (``jobs.eval.SingleLabelStates``: confusion matrix, calibration histogram with exact sums,
  ranking state of the dataset classes' scores, a few numbers per image; ``jobs.eval_detect.
  DetectStates``: the COCO evaluator's per-image inputs and the kept detections), pickled in a
  one-row table; the driver merges them (a block delivered twice is merged once) and ``evaluate``
  makes the report from them with the code of a local run: the same numbers, bit for bit.

Thread safety: ``score_dataset`` and ``score_to_dir`` may be called from any thread; each actor's
model is used by one batch at a time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.sources import FolderListingError, Item, iter_items
from ..jobs._writers import OutputExistsError, OutputLock, fsync_dir, parquet_schema, path_text
from ..jobs.detect import detection_row, detection_settings, row_schema
from ..jobs.score import ScoreInterrupted, result_row, score_settings

__all__ = ["score_dataset", "score_to_dir", "RayScoreSummary", "TASKS", "eval_classify_pass", "eval_detect_pass"]

TASKS = ("classify", "embed", "detect")
MANIFEST = "_pyimgcls.json"
TABLES = {".parquet": "parquet", ".csv": "csv"}
DEFAULT_READ_NUM_CPUS = 0.25
log = logging.getLogger("pyimgcls.progress")


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:  # pragma: no cover - ray is in the test extra
        raise ImportError('pyimgcls.integrations.ray needs Ray Data: pip install "pyimgcls[ray]"') from e
    return ray


# ----------------------------------------------------------------------------- the actor
class _Scorer:
    """The callable class of ``map_batches``: one model per actor, built in the actor."""

    def __init__(self, *, task: str, model: Any, model_options: dict, threads: int, top_k: int,
                 probabilities: bool, fast_decode: bool, item_timeout: float | None, batch_size: int, key: str,
                 payload: str, base: str | None, skip: list | None) -> None:
        self.detect = task == "detect"
        if self.detect:
            from ..tasks import load_detector

            self.model = load_detector(model or "faces", threads=threads, **model_options)
        else:
            from ..tasks.classifier import Classifier

            self.model = Classifier(model, threads=threads, **model_options)
        self.embeddings = task == "embed"
        self.top_k, self.probabilities = top_k, probabilities
        self.fast_decode, self.item_timeout, self.batch_size = fast_decode, item_timeout, batch_size
        self.key, self.payload, self.base = key, payload, base
        self.skip: frozenset = frozenset()
        if skip:  # [ObjectRef] of the paths already written (one copy in the object store)
            import ray

            self.skip = ray.get(skip[0])
        dim = self.model.embedding_dim() if self.embeddings else None
        self.schema = row_schema(None) if self.detect else parquet_schema(self.embeddings, probabilities, dim, None)

    def _path(self, p: str) -> str:
        if self.base is not None and not os.path.isabs(p):
            p = os.path.join(self.base, p)
        return os.path.abspath(p) if self.base is not None else p

    def _items(self, batch: dict) -> list[Item]:
        """The batch's inputs (those not to skip), keyed by their absolute path."""
        keys = batch[self.key]
        payloads = batch[self.payload] if self.payload != self.key else keys
        items: list[Item] = []
        for k, p in zip(keys, payloads):
            if k is None:
                raise ValueError(f"the {self.key!r} column holds a null: every row needs its key")
            path = self._path(str(k))
            key = path_text(path)
            if key in self.skip:
                continue
            if p is None or self.payload == self.key:
                items.append(Item(key, path))          # read here, as score reads it
            elif self.payload == "bytes":
                items.append(Item(key, bytes(p)))
            else:
                items.append(Item(key, np.asarray(p)))
        return items

    def __call__(self, batch: dict) -> Any:
        import pyarrow as pa

        items = self._items(batch)
        rows = []
        if self.detect:
            results = self.model.predict_iter(None, items=iter(items), batch_size=self.batch_size,
                                              fast_decode=self.fast_decode, item_timeout=self.item_timeout)
        else:
            results = self.model.predict_iter(None, items=iter(items), batch_size=self.batch_size, top_k=self.top_k,
                                              embeddings=self.embeddings, probabilities=self.probabilities,
                                              fast_decode=self.fast_decode, item_timeout=self.item_timeout)
        for item, r in zip(items, results):
            if r.error is not None and isinstance(item.payload, bytes):
                # the decoder names bytes "<N bytes>"; name the file instead, as score does
                r.error = r.error.replace(f"<{len(item.payload)} bytes>", item.source, 1)
            rows.append(detection_row(r) if self.detect else result_row(r, self.embeddings, self.probabilities))
        return pa.Table.from_pylist(rows, schema=self.schema)


# ----------------------------------------------------------------------------- sources
def _is_table(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike)) and os.path.splitext(os.fspath(x))[1].lower() in TABLES \
        and os.path.isfile(x)


def _listed(source: Any, include_hidden: bool) -> tuple[list[str], list[str]]:
    """Local inputs listed as ``score`` lists them: ``(readable files, paths handed to the actors)``,
    each an absolute path, once, in listing order."""
    args = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    readable: list[str] = []
    direct: list[str] = []
    seen: set[str] = set()
    for arg in args:
        if _is_table(arg):
            raise ValueError(f"{os.fspath(arg)}: a table of paths must be the only source (got it in a list)")
        for item in iter_items(arg, include_hidden=include_hidden):
            if not isinstance(item.payload, (str, FolderListingError)):
                raise TypeError("source must be a folder, glob, @FILE list, file path (or an iterable of them), a "
                                ".parquet / .csv table of paths or a ray.data.Dataset; got "
                                f"{type(item.payload).__name__}")
            src = item.payload.folder if isinstance(item.payload, FolderListingError) else item.payload
            p = os.path.abspath(src)
            key = path_text(p)
            if key in seen:
                continue
            seen.add(key)
            ok = not isinstance(item.payload, FolderListingError) and os.path.isfile(p) and os.access(p, os.R_OK)
            (readable if ok else direct).append(p)
    return readable, direct


@dataclass
class _Listing:
    """Local inputs already listed by ``_listed`` (``score_to_dir`` lists once)."""

    readable: list[str]
    direct: list[str]


def _check_positive(name: str, v: Any, integer: bool = False, zero: bool = False) -> None:
    bad = isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)) \
        or not math.isfinite(v) or v < 0 or (v == 0 and not zero)
    if bad:
        what = "int" if integer else "number"
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} {what}, got {v!r}")


def score_dataset(source: Any, *, model=None, task: str = "classify", batch_size: int = 64,
                  concurrency: int | None = None, num_cpus: float = 1, num_gpus: float = 0, top_k: int = 5,
                  probabilities: bool = False, fast_decode: bool = False, item_timeout: float | None = None,
                  include_hidden: bool = False, read_num_cpus: float = DEFAULT_READ_NUM_CPUS,
                  skip_paths: set[str] | frozenset[str] | None = None, **model_options: Any):
    """Scores ``source`` on Ray Data; the result has one row per input with ``score``'s Parquet columns.

    Args:
        source: a local folder (recursive, hidden names skipped unless ``include_hidden``), a glob
            pattern, an ``@FILE`` list, a file, or a list of these (listed on the driver; the bytes
            are read by Ray's read tasks); a ``.parquet`` / ``.csv`` table with a ``path`` column
            (paths relative to the table's folder allowed); or a ``ray.data.Dataset`` with a
            ``path`` column (the row key) and optionally a ``bytes`` column (as
            ``read_binary_files(include_paths=True)`` gives) or an ``image`` column (HxWxC uint8
            arrays, as ``read_images(include_paths=True)`` gives); with ``path`` alone, the actors
            read the files.
        model: ONNX classifier path (default: the embedded EfficientNet-Lite0); with
            ``task="detect"``, ``"faces"`` (default) or a YOLO ONNX path. It must be readable on
            every node.
        task: ``"classify"``; ``"embed"`` (the same rows plus the ``embedding`` column, as
            ``score(embeddings=True)``); ``"detect"`` (the rows of ``score(task="detect")``:
            ``boxes``, ``scores``, ``class_ids``, ... see ``jobs.detect``).
        batch_size: images per model call (and per ``map_batches`` batch).
        concurrency: number of actors (default: as many as fit in the cluster's CPUs, or GPUs, while
            ``read_num_cpus`` stays free for the read tasks).
        num_cpus: CPUs per actor; the model's thread budget is this, rounded (at least 1).
        num_gpus: GPUs per actor (``device`` then defaults to ``"cuda"``).
        top_k, probabilities, fast_decode, item_timeout: as in ``score``.
        read_num_cpus: CPUs each read task asks for.
        skip_paths: row keys (absolute paths) to leave out (already scored).
        **model_options: passed to ``Classifier`` (``preprocess``, ``device``, ``allow_spinning``,
            ...) or, for ``"detect"``, to ``load_detector`` (``conf``, ``iou``, ``max_det``,
            ``classes``, ...); not ``threads``, which follows ``num_cpus``.

    Returns:
        A lazy ``ray.data.Dataset`` (nothing runs until it is consumed or written).

    Raises:
        ValueError: a bad option, a source without a ``path`` column, or an actor pool that leaves
            no CPU for the read tasks.
    """
    return _map_source(source, model=model, task=task, batch_size=batch_size, concurrency=concurrency,
                       num_cpus=num_cpus, num_gpus=num_gpus, top_k=top_k, probabilities=probabilities,
                       fast_decode=fast_decode, item_timeout=item_timeout, include_hidden=include_hidden,
                       read_num_cpus=read_num_cpus, skip_paths=skip_paths, **model_options)


def _map_source(source: Any, *, model=None, task: str = "classify", batch_size: int = 64,
                concurrency: int | None = None, num_cpus: float = 1, num_gpus: float = 0, top_k: int = 5,
                probabilities: bool = False, fast_decode: bool = False, item_timeout: float | None = None,
                include_hidden: bool = False, read_num_cpus: float = DEFAULT_READ_NUM_CPUS,
                skip_paths: set[str] | frozenset[str] | None = None, actor_cls: type | None = None,
                actor_kwargs: dict | None = None, **model_options: Any):
    ray = _import_ray()
    import pyarrow as pa

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if "threads" in model_options:
        raise ValueError("threads follows num_cpus on Ray (each actor's thread budget is its num_cpus); "
                         "pass num_cpus instead of threads")
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("num_cpus", num_cpus)
    _check_positive("num_gpus", num_gpus, zero=True)
    _check_positive("read_num_cpus", read_num_cpus)
    if concurrency is not None:
        _check_positive("concurrency", concurrency, integer=True)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
    if task == "detect" and probabilities:
        raise ValueError("probabilities apply to task='classify', not 'detect'")
    if num_gpus and "device" not in model_options:
        model_options = {**model_options, "device": "cuda"}
    if not ray.is_initialized():
        ray.init()
    skip = frozenset(skip_paths or ())
    embeddings = task == "embed"

    base = None
    key = "path"
    if isinstance(source, ray.data.Dataset):
        ds = source
        names = ds.schema().names
        if key not in names:
            raise ValueError(f"a Dataset source needs a 'path' column (the row key); it has {names} (read with "
                             "include_paths=True)")
        payload = "bytes" if "bytes" in names else "image" if "image" in names else key
    elif _is_table(source):
        path = os.fspath(source)
        kind = TABLES[os.path.splitext(path)[1].lower()]
        ds = ray.data.read_parquet(path) if kind == "parquet" else ray.data.read_csv(path)
        names = ds.schema().names
        if key not in names:
            raise ValueError(f"{path}: a table of paths needs a 'path' column; it has {names}")
        ds = ds.select_columns([key])
        base, payload = os.path.dirname(os.path.abspath(path)), key
    else:
        listed = source if isinstance(source, _Listing) else _Listing(*_listed(source, include_hidden))
        readable, direct = listed.readable, listed.direct
        readable = [p for p in readable if path_text(p) not in skip]
        direct = [p for p in direct if path_text(p) not in skip]
        parts = []
        if readable:
            parts.append(ray.data.read_binary_files(readable, include_paths=True, num_cpus=read_num_cpus))
        if direct:
            parts.append(ray.data.from_arrow(pa.table({"bytes": pa.array([None] * len(direct), pa.binary()),
                                                       "path": pa.array(direct, pa.string())})))
        if not parts:
            schema = row_schema(None) if task == "detect" else parquet_schema(embeddings, probabilities, None, None)
            return ray.data.from_arrow(schema.empty_table())
        ds = parts[0] if len(parts) == 1 else parts[0].union(parts[1])
        payload = "bytes"

    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    room = cpus - read_num_cpus
    if concurrency is None:
        concurrency = int((room + 1e-9) // num_cpus)
        if num_gpus:
            concurrency = min(concurrency, int(float(ray.cluster_resources().get("GPU", 0.0)) // num_gpus))
        if concurrency < 1:
            raise ValueError(f"an actor with num_cpus={num_cpus} does not fit beside the read tasks "
                             f"(read_num_cpus={read_num_cpus}) in this cluster's {cpus:g} CPUs"
                             + (" and its GPUs" if num_gpus else "") + "; lower num_cpus or add nodes")
    elif concurrency * num_cpus > room + 1e-9:
        raise ValueError(f"concurrency={concurrency} actors x num_cpus={num_cpus} leave less than "
                         f"read_num_cpus={read_num_cpus} of the cluster's {cpus:g} CPUs for the read tasks: the job "
                         "would hang (ray-project/ray#44687); lower concurrency or num_cpus")
    # listed sources were filtered above; others are filtered in the actors (one copy of the set)
    skip_ref = [ray.put(skip)] if skip and (base is not None or isinstance(source, ray.data.Dataset)) else None
    ctor = dict(task=task, model=model, model_options=model_options, threads=max(1, int(round(num_cpus))),
                top_k=top_k, probabilities=probabilities, fast_decode=fast_decode, item_timeout=item_timeout,
                batch_size=batch_size, key=key, payload=payload, base=base, skip=skip_ref)
    if actor_kwargs:
        ctor.update(actor_kwargs)
    return ds.map_batches(actor_cls or _Scorer, fn_constructor_kwargs=ctor, batch_size=batch_size, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=num_cpus,
                          num_gpus=num_gpus or None)


# ----------------------------------------------------------------------------- the Parquet dataset
@dataclass
class RayScoreSummary:
    """What a ``score_to_dir`` run did."""

    out: str
    images: int          # rows written by this run
    errors: int          # of which with ``error`` set
    skipped: int         # inputs listed on the driver that were already written (or listed twice)
    seconds: float       # from the first row asked of Ray to the last part written
    images_per_second: float

    def __str__(self) -> str:
        return (f"scored {self.images} images ({self.errors} errors, {self.skipped} skipped) in "
                f"{self.seconds:.1f} s: {self.images_per_second:.1f} images/s -> {self.out}")


def _part_files(out: str) -> list[str]:
    return sorted(os.path.join(out, n) for n in os.listdir(out) if n.startswith("part-") and n.endswith(".parquet"))


def done_paths(out: str) -> set[str]:
    """The row keys already in the Parquet dataset ``out`` (the paths of its complete parts)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    if os.path.isdir(out):
        for f in _part_files(out):
            done.update(pq.read_table(f, columns=["path"]).column("path").to_pylist())
    return done


def _remove_stale(out: str) -> None:
    """Temporary parts of runs that were killed (``.part-*.tmp-PID`` whose process is gone)."""
    for n in os.listdir(out):
        if n.startswith(".part-") and ".tmp-" in n:
            pid = n.rsplit(".tmp-", 1)[-1]
            if pid.isdigit():
                try:
                    os.kill(int(pid), 0)
                    continue
                except ProcessLookupError:
                    pass
                except OSError:
                    continue
                try:
                    os.remove(os.path.join(out, n))
                except OSError:
                    pass


def _check_settings(out: str, settings: dict, overwrite: bool, resume: bool) -> None:
    mpath = os.path.join(out, MANIFEST)
    parts = _part_files(out)
    if overwrite or not resume:
        if parts and not overwrite:
            raise OutputExistsError(f"{out} holds scored parts; pass overwrite=True (--overwrite) to replace them, "
                                    "or resume")
        for f in parts:
            os.remove(f)
        if os.path.exists(mpath):
            os.remove(mpath)
        return
    if not parts:
        return
    try:
        with open(mpath, encoding="utf-8") as f:
            old = json.load(f).get("settings", {})
    except (OSError, ValueError, AttributeError):
        raise OutputExistsError(f"{out} holds parts but no readable {MANIFEST}: not written by pyimgcls; pass "
                                "overwrite=True (--overwrite) to replace it") from None
    diff = [f"{k}: {json.dumps(old.get(k))[:60]} -> {json.dumps(settings[k])[:60]}" for k in settings
            if old.get(k) != settings[k]]
    if diff:
        raise OutputExistsError(f"{out} was written with other settings ({', '.join(diff)}); pass overwrite=True "
                                "(--overwrite) to replace it, or choose another output")


def _write_part(out: str, table, run: str, n: int) -> None:
    import pyarrow.parquet as pq

    name = f"part-{run}-{n:06d}.parquet"
    tmp = os.path.join(out, f".{name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out, name))
    fsync_dir(os.path.join(out, name))


def score_to_dir(source: Any, *, out: str, model=None, task: str = "classify", batch_size: int = 64,
                 concurrency: int | None = None, num_cpus: float = 1, num_gpus: float = 0, top_k: int = 5,
                 probabilities: bool = False, fast_decode: bool = False, item_timeout: float | None = None,
                 include_hidden: bool = False, read_num_cpus: float = DEFAULT_READ_NUM_CPUS, resume: bool = True,
                 overwrite: bool = False, chunk_size: int = 4096, progress: bool = True, address: str | None = None,
                 **model_options: Any) -> RayScoreSummary:
    """Scores ``source`` on Ray and writes the rows as a Parquet dataset in the folder ``out``.

    Run again with the same ``out``, it scores only the inputs not yet written (``resume``). The
    arguments are those of ``score_dataset``, plus:

    Args:
        out: the output folder (created): ``part-*.parquet`` files and ``_pyimgcls.json``.
        resume: keep the rows already in ``out`` and skip their inputs.
        overwrite: remove the rows already in ``out`` first.
        chunk_size: rows per part file (each part is written atomically).
        progress: a ``pyimgcls.progress`` log line every 10 s.
        address: the Ray cluster to connect to (``"auto"``, ``"ray://head:10001"``); ``None``: the
            one ``ray.init`` already connected to, else ``RAY_ADDRESS``, else a local one.

    Returns:
        ``RayScoreSummary``. Per-item failures are rows with ``error`` set.

    Raises:
        OutputExistsError: ``out`` holds rows written with other settings (or not by pyimgcls).
        OutputLockedError: another run is writing ``out``.
        ScoreInterrupted: Ctrl-C; the rows received so far are saved.
    """
    ray = _import_ray()
    import pyarrow as pa

    from .. import __version__
    from ..tasks.classifier import Classifier

    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out must be a folder (a Parquet dataset) with engine ray; {out} is a file")
    _check_positive("chunk_size", chunk_size, integer=True)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if "threads" in model_options:
        raise ValueError("threads follows num_cpus on Ray; pass num_cpus instead of threads")
    # the driver loads the model once: it is checked before any cluster work, and its settings recorded
    driver_opts = {k: v for k, v in model_options.items() if k not in ("device", "device_id", "providers")}
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
    embeddings = task == "embed"
    dim = None
    if task == "detect":
        from ..tasks import load_detector

        det = load_detector(model or "faces", threads=1, **driver_opts)
        settings = detection_settings(det, fmt="parquet-dataset", fast_decode=fast_decode)
        model_path = getattr(det, "model_path", model or "faces")
    else:
        clf = Classifier(model, threads=1, device="cpu", **driver_opts)
        top_k = min(top_k, clf.num_classes) if clf.num_classes else top_k
        dim = clf.embedding_dim() if embeddings else None
        settings = score_settings(clf, top_k=top_k, embeddings=embeddings, probabilities=probabilities,
                                  fmt="parquet-dataset", fast_decode=fast_decode)
        model_path = clf.model_path
    settings["device"] = "gpu" if num_gpus else str(model_options.get("device", "cpu")).split(":")[0]
    manifest = {"settings": settings, "info": {"pyimgcls_version": __version__, "engine": "ray",
                                               "model_path": str(model_path)[:500], "embedding_dim": dim,
                                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    schema = row_schema(manifest) if task == "detect" else parquet_schema(embeddings, probabilities, dim, manifest)
    if address is not None and not ray.is_initialized():
        ray.init(address=address)

    with OutputLock(out):
        os.makedirs(out, exist_ok=True)
        _remove_stale(out)
        _check_settings(out, settings, overwrite, resume)
        tmp = os.path.join(out, f".{MANIFEST}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(out, MANIFEST))
        done = done_paths(out) if resume else set()

        skipped = 0
        if not isinstance(source, ray.data.Dataset) and not _is_table(source):
            source = _Listing(*_listed(source, include_hidden))
            listed = len(source.readable) + len(source.direct)
            skipped = listed - sum(path_text(p) not in done for p in source.readable + source.direct)
        ds = score_dataset(source, model=model, task=task, batch_size=batch_size, concurrency=concurrency,
                           num_cpus=num_cpus, num_gpus=num_gpus, top_k=top_k, probabilities=probabilities,
                           fast_decode=fast_decode, item_timeout=item_timeout, include_hidden=include_hidden,
                           read_num_cpus=read_num_cpus, skip_paths=done, **model_options)
        run = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        seen = set(done)
        pending: list = []
        pending_rows = n = errors = parts = 0
        t0 = last = time.perf_counter()

        def flush() -> None:
            nonlocal pending, pending_rows, parts
            if pending:
                table, pending, pending_rows = pa.concat_tables(pending), [], 0
                _write_part(out, table.replace_schema_metadata(schema.metadata), run, parts)
                parts += 1

        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                batch = batch.select(schema.names).cast(schema)
                keep = []
                for p in batch.column("path").to_pylist():
                    keep.append(p not in seen)  # a row received twice (a retried task) is written once
                    seen.add(p)
                if not all(keep):
                    skipped += keep.count(False)
                    batch = batch.filter(pa.array(keep))
                if not batch.num_rows:
                    continue
                pending.append(batch)
                pending_rows += batch.num_rows
                n += batch.num_rows
                errors += batch.num_rows - batch.column("error").null_count
                if pending_rows >= chunk_size:
                    flush()
                now = time.perf_counter()
                if progress and now - last >= 10.0:
                    last = now
                    log.info("%d rows done, %.1f rows/s, %d errors", n, n / (now - t0), errors)
            flush()
        except KeyboardInterrupt:
            saved = n - pending_rows
            try:
                flush()
                saved = n
            finally:
                raise ScoreInterrupted(saved, out) from None
        except Exception:
            flush()  # the rows received before a failure are kept: a rerun goes on after them
            raise
    dt = time.perf_counter() - t0
    return RayScoreSummary(out=out, images=n, errors=errors, skipped=skipped, seconds=dt,
                           images_per_second=n / dt if dt > 0 else 0.0)


# ----------------------------------------------------------------------------- evaluation (eval --engine ray)
class _EvalScorer(_Scorer):
    """The callable class of ``eval --engine ray``: ``_Scorer``'s model and inputs, and per block,
    instead of rows, the mergeable states of ``jobs.eval`` / ``jobs.eval_detect`` (pickled in a
    one-row table): the model runs and the metric states are computed on the workers."""

    def __init__(self, *, lookup: list, spec: dict, **kw: Any) -> None:
        import ray

        super().__init__(**kw)
        # one copy in the object store: row key -> dataset indices, and what the states need per image
        self.lookup = ray.get(lookup[0])
        self.spec = spec

    def _name(self, item: Item, error: str | None, path: str) -> str | None:
        """The decoder names bytes ``<N bytes>``: name the dataset's path instead, as the local run does."""
        if error is not None and isinstance(item.payload, bytes):
            error = error.replace(f"<{len(item.payload)} bytes>", path, 1)
        return error

    def __call__(self, batch: dict) -> Any:
        import pickle

        import pyarrow as pa

        items = self._items(batch)
        look, sp = self.lookup, self.spec
        if self.detect:
            from ..jobs.eval_detect import DetectStates

            states = DetectStates(sp["num_classes"], sp["to_dataset"], threads=1)
            results = self.model.predict_iter(None, items=iter(items), batch_size=self.batch_size,
                                              fast_decode=self.fast_decode, item_timeout=self.item_timeout)
            for item, r in zip(items, results):
                for i in look["index"][item.source]:
                    states.add(i, self._name(item, r.error, look["paths"][i]), r.detections, look["boxes"][i],
                               look["class_ids"][i], look["iscrowd"][i])
        else:
            from ..jobs.eval import SingleLabelStates

            states = SingleLabelStates(sp["num_classes"], len(sp["cols"]), sp["bins"], sp["keep_scores"])
            by_key = {it.source: it for it in items}
            for b in self.model.predict_batches(None, items=iter(items), batch_size=self.batch_size,
                                                fast_decode=self.fast_decode, item_timeout=self.item_timeout):
                gi, rows, errs = [], [], []
                for j, src in enumerate(b.sources):
                    for i in look["index"][src]:
                        gi.append(i)
                        rows.append(j)
                        errs.append(self._name(by_key[src], b.errors[j], look["paths"][i]))
                gi_a, rows_a = np.asarray(gi, np.int64), np.asarray(rows, np.int64)
                states.add_block(gi_a, b.ok[rows_a], b.probabilities[rows_a], errs, look["truth"][gi_a],
                                 sp["cols"], sp["k_eff"])
        return pa.table({"state": pa.array([pickle.dumps(states, protocol=5)], pa.binary())})


def _eval_source(paths: list[str], include: list[int]):
    """The listing of the dataset's images for the read tasks, and row key -> dataset indices (a
    path listed twice is read once and answers for both)."""
    from ..jobs._writers import path_text as pt

    index: dict[str, list[int]] = {}
    order: list[str] = []
    for i in include:
        p = os.path.abspath(paths[i])
        k = pt(p)
        if k not in index:
            index[k] = []
            order.append(p)
        index[k].append(i)
    readable = [p for p in order if os.path.isfile(p) and os.access(p, os.R_OK)]
    direct = [p for p in order if not (os.path.isfile(p) and os.access(p, os.R_OK))]
    return _Listing(readable, direct), index


def _run_eval(listing: _Listing, lookup: dict, spec: dict, n: int, *, task: str, model: Any, batch_size: int,
              address: str | None, ray_options: dict | None, fast_decode: bool = False, **model_options: Any):
    """Maps ``_EvalScorer`` over the dataset's images and merges the states of the blocks on the
    driver, as they arrive (a block received twice, from a retried task, is merged once)."""
    import pickle

    ray = _import_ray()
    opts = dict(ray_options or {})
    bad = set(opts) - {"concurrency", "num_cpus", "num_gpus", "read_num_cpus", "item_timeout"}
    if bad:
        raise ValueError(f"ray_options: unknown keys {sorted(bad)} (concurrency, num_cpus, num_gpus, read_num_cpus, "
                         "item_timeout)")
    if address is not None and not ray.is_initialized():
        ray.init(address=address)
    ref = ray.put(lookup)
    ds = _map_source(listing, model=model, task=task, batch_size=batch_size, top_k=0, fast_decode=fast_decode,
                     actor_cls=_EvalScorer, actor_kwargs={"lookup": [ref], "spec": spec}, **opts, **model_options)
    merged = None
    seen = np.zeros(n, bool)  # dataset indices answered so far (a bool each: no Python set of N ints)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for blob in batch.column("state").to_pylist():
            st = pickle.loads(blob)
            got = st.indices()
            if got.size and seen[got].all():
                continue  # pragma: no cover - a retried block delivered twice
            if seen[got].any():  # pragma: no cover
                raise RuntimeError(f"images answered twice by the Ray workers: {got[seen[got]][:5].tolist()}")
            seen[got] = True
            merged = st if merged is None else merged.merge(st)
    return merged, int(seen.sum())


def eval_classify_pass(paths: list[str], truth: np.ndarray, *, num_classes: int, cols: np.ndarray, k_eff: int,
                       keep_scores: bool, bins: int, model: Any, batch_size: int, fast_decode: bool,
                       address: str | None = None, ray_options: dict | None = None, **model_options: Any):
    """The model pass of a single-label ``evaluate(engine="ray")``: ``jobs.eval.SingleLabelStates``
    of every image, computed per block on Ray actors and merged on the driver.

    Args:
        paths: (N,) the dataset's image paths; ``truth``: (N,) int64 model class of each image.
        num_classes, cols, k_eff, keep_scores, bins: as ``SingleLabelStates`` and ``add_block``.
        model, batch_size, fast_decode, **model_options: as ``score_dataset`` (``task="classify"``).
        address: the Ray cluster to join (``"auto"``, ``"ray://head:10001"``); ``None``: the one
            ``ray.init`` connected to, else ``RAY_ADDRESS``, else a local one.
        ray_options: ``concurrency``, ``num_cpus``, ``num_gpus``, ``read_num_cpus``, ``item_timeout``
            (as ``score_dataset``).
    """
    from ..jobs.eval import SingleLabelStates

    listing, index = _eval_source(paths, list(range(len(paths))))
    lookup = {"index": index, "paths": list(paths), "truth": np.asarray(truth, np.int64)}
    spec = {"num_classes": num_classes, "cols": np.asarray(cols, np.int64), "k_eff": int(k_eff),
            "keep_scores": bool(keep_scores), "bins": int(bins)}
    merged, seen = _run_eval(listing, lookup, spec, len(paths), task="classify", model=model, batch_size=batch_size,
                             address=address, ray_options=ray_options, fast_decode=fast_decode, **model_options)
    if seen != len(paths):
        raise RuntimeError(f"the Ray workers answered {seen} of {len(paths)} images")  # pragma: no cover
    return merged or SingleLabelStates(num_classes, len(cols), bins, keep_scores)


def eval_detect_pass(ds, *, readable: list[int], to_dataset: dict, model: Any, batch_size: int,
                     address: str | None = None, ray_options: dict | None = None, **model_options: Any):
    """The detector pass of ``evaluate_detection(engine="ray")``: ``jobs.eval_detect.DetectStates``
    of the images ``readable`` of the ``DetectionDataset`` ``ds`` (the COCO evaluator's per-image
    inputs and the kept detections), computed per block on Ray actors and merged on the driver.
    ``model_options`` go to ``load_detector`` (``conf``, ``iou``, ``max_det``, ``device``)."""
    from ..jobs.eval_detect import DetectStates

    if not readable:  # nothing to run: the caller reports that no image could be evaluated
        return DetectStates(len(ds.classes), to_dataset)
    listing, index = _eval_source(ds.paths, readable)
    lookup = {"index": index, "paths": list(ds.paths), "boxes": list(ds.boxes), "class_ids": list(ds.class_ids),
              "iscrowd": list(ds.iscrowd)}
    spec = {"num_classes": len(ds.classes), "to_dataset": dict(to_dataset)}
    merged, seen = _run_eval(listing, lookup, spec, len(ds.paths), task="detect", model=model, batch_size=batch_size,
                             address=address, ray_options=ray_options, **model_options)
    if seen != len(readable):
        raise RuntimeError(f"the Ray workers answered {seen} of {len(readable)} images")  # pragma: no cover
    return merged or DetectStates(len(ds.classes), to_dataset)
