"""Batch scoring of large image sets into CSV, JSONL or Parquet: resumable, bounded memory,
exactly one row per input (the durability rules are in ``_writers``).

* Rows are keyed by the input's absolute path: the same folder given as a relative and as an
  absolute path, or a file listed twice (``DIR DIR/a.jpg``), gives one row. The ``path`` column
  holds that absolute path; the bytes of a file name that is not valid UTF-8 appear as ``\\xNN``.
  In-memory inputs (arrays, bytes, PIL images) are keyed by the ``ids`` the caller gives.
* ``shard=(i, n)`` keeps the inputs whose path, relative to the input argument it came from,
  hashes to ``i`` modulo ``n``: machines that mount the data at different places agree.
* Without a terminal, progress goes to the ``pyimgcls.progress`` logger every 10 seconds.

The output's schema (one row per input): ``path``, ``label`` (nullable int), ``label_name``,
``score``, ``top_k_ids`` / ``top_k_names`` / ``top_k_scores`` (lists), ``width`` / ``height`` (as
``read_image`` returns the image, EXIF orientation applied), ``stored_width`` /
``stored_height`` (as stored), ``error`` (null when there is none), and with the options
``probabilities`` (every class) and ``embedding``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..io.sources import FolderListingError, Item, iter_items
from ._writers import (AppendWriter, OutputExistsError, OutputLock, OutputLockedError, ParquetWriter, check_manifest,
                       path_text, remove_stale_temporaries, text, write_manifest)

__all__ = ["score", "ScoreSummary", "ScoreInterrupted", "OutputExistsError", "OutputLockedError", "shard_of", "run_rows", "check_job_args"]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
log = logging.getLogger("pyimgcls.progress")


@dataclass
class ScoreSummary:
    """What a ``score`` run did."""

    out: str
    images: int          # rows written by this run
    errors: int          # of which with ``error`` set
    skipped: int         # inputs already present (resumed), listed twice, or in other shards
    seconds: float
    images_per_second: float

    def __str__(self) -> str:
        return (f"scored {self.images} images ({self.errors} errors, {self.skipped} skipped) in "
                f"{self.seconds:.1f} s: {self.images_per_second:.1f} images/s -> {self.out}")


class ScoreInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``score``: the rows scored so far are saved; running again resumes."""

    def __init__(self, rows: int, out: str) -> None:
        super().__init__(f"{rows} rows saved in {out}; run the same command to resume")
        self.rows, self.out = rows, out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shard_of(key: str, n: int) -> int:
    """The shard (0 .. n-1) of an input key: a stable hash, the same on every machine."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big") % n


def _device_kind(providers: list[str]) -> str:
    first = providers[0] if providers else "CPUExecutionProvider"
    return {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
            "TensorrtExecutionProvider": "tensorrt"}.get(first, first)


def _arguments(inputs: Any) -> list:
    """The top-level input arguments (each a folder, pattern, list file, file or object)."""
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview)):
        return [inputs]
    try:
        import numpy as np

        if isinstance(inputs, np.ndarray):
            return [inputs]
    except ImportError:  # pragma: no cover
        pass
    return inputs if isinstance(inputs, (list, tuple)) else [inputs] if not hasattr(inputs, "__iter__") else inputs


def _relative_key(item: Item, folders: list[str]) -> str:
    """The shard key of a path input: relative to the first folder argument that holds it (the
    same on every machine that runs the same command, wherever the data is mounted, and the same
    for a file that two overlapping arguments both reach)."""
    if isinstance(item.payload, str):
        p = os.path.abspath(item.payload)
        for base in folders:
            if p.startswith(base.rstrip(os.sep) + os.sep):
                return os.path.relpath(p, base).replace(os.sep, "/")
        return os.path.basename(p)
    return item.source


def _keyed_items(inputs: Any, ids: Sequence[str] | None, include_hidden: bool,
                 shard: tuple[int, int] | None, resumable: bool) -> Iterator[tuple[Item, bool]]:
    """``(item named by its row key, in this shard)`` for every input item, in order."""
    ids_iter = iter(ids) if ids is not None else None
    ids_seen: set[str] = set()
    counter = 0
    args = list(_arguments(inputs))
    folders = [os.path.abspath(os.fspath(a)) for a in args if isinstance(a, (str, os.PathLike)) and os.path.isdir(a)]
    for arg in args:
        for item in iter_items(arg, include_hidden=include_hidden):
            if isinstance(item.payload, str) and item.source == item.payload:
                key = path_text(os.path.abspath(item.payload))
            elif isinstance(item.payload, FolderListingError):  # reported under the folder's path
                key = path_text(os.path.abspath(item.source))
            elif ids_iter is not None:
                try:
                    key = text(str(next(ids_iter)))
                except StopIteration:
                    raise ValueError("ids= has fewer entries than the in-memory inputs") from None
                if key in ids_seen:
                    raise ValueError(f"ids= must be unique: {key!r} appears twice")
                ids_seen.add(key)
            elif resumable:
                raise ValueError(f"in-memory input {item.source} needs an id: pass ids=[...] (one per in-memory "
                                 "input, in order) so a resumed run can tell it from the others, or resume=False")
            else:  # not resumable: named in order over all arguments
                key = text(re.sub(r"#\d+>$", f"#{counter}>", item.source))
            if not isinstance(item.payload, (str, FolderListingError)):
                counter += 1
            inside = shard is None or shard_of(_relative_key(item, folders), shard[1]) == shard[0]
            yield Item(key, item.payload), inside
    if ids_iter is not None and next(ids_iter, None) is not None:
        raise ValueError("ids= has more entries than the in-memory inputs")


def score_settings(clf, *, top_k: int, embeddings: bool, probabilities: bool, fmt: str, fast_decode: bool) -> dict:
    """Every setting that changes an output row (recorded in the manifest; a resume with other
    settings is refused)."""
    return {"model": _sha256(clf.session.model_bytes), "top_k": top_k, "embeddings": bool(embeddings),
            "probabilities": bool(probabilities), "format": fmt, "schema": 2,
            "decode": "fast" if fast_decode else "exact", "preprocess": json.loads(clf.config.to_json()),
            "precision": clf.session.info.dtype, "device": _device_kind(clf.session.providers)}


def _row(r, embeddings: bool, probabilities: bool) -> dict:
    (h, w) = r.image_size if r.image_size else (None, None)
    (sh, sw) = r.stored_size if r.stored_size else (None, None)
    d = {
        "path": r.source,  # already the row key (see _keyed_items)
        "label": r.label,
        "label_name": None if r.label_name is None else text(r.label_name),
        "score": r.score,
        "top_k_ids": [int(i) for i, _, _ in r.top_k],
        "top_k_names": [text(n) for _, n, _ in r.top_k],
        "top_k_scores": [float(p) for _, _, p in r.top_k],
        "width": w, "height": h, "stored_width": sw, "stored_height": sh,
        "error": text(r.error) if r.error else None,
    }
    if probabilities:
        d["probabilities"] = None if r.probabilities is None else r.probabilities.tolist()
    if embeddings:
        d["embedding"] = None if r.embedding is None else r.embedding.tolist()
    return d


def _write(writer, rows: list[dict]) -> None:
    """``writer.write(rows)`` with Ctrl-C held back until it returns (main thread): the interrupt
    then comes between chunks, and the count of saved rows is exact.

    A signal mask would not do: SIGINT goes to any thread that does not block it (the decode pool,
    ONNX Runtime's workers), and Python then runs its handler in the main thread at the next
    bytecode, inside ``write``. So the handler itself is swapped for one that only notes the
    interrupt, and the old one runs once the chunk is durable."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        writer.write(rows)
        return
    hits: list[object] = []
    try:
        old = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(frame))
    except ValueError:  # not the main interpreter: nothing to hold back
        writer.write(rows)
        return
    try:
        writer.write(rows)
    finally:
        signal.signal(signal.SIGINT, old)
    if hits:
        if callable(old):
            old(signal.SIGINT, hits[0])
        elif old == signal.SIG_DFL:
            raise KeyboardInterrupt


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line every ``every`` seconds."""

    def __init__(self, enabled: bool, total: int | None, every: float = 10.0) -> None:
        self.bar = None
        self.enabled = enabled
        self.total = total
        self.every = every
        self.t0 = self.last = time.monotonic()
        self.done = self.errors = 0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", dynamic_ncols=True, desc="pyimgcls score")

    def set_total(self, n: int) -> None:
        self.total = n
        if self.bar is not None:
            self.bar.total = n
            self.bar.refresh()

    def update(self, error: bool) -> None:
        self.done += 1
        self.errors += error
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                rate = self.done / max(1e-9, now - self.t0)
                eta = ""
                if self.total:
                    eta = f", ETA {max(0.0, (self.total - self.done) / max(rate, 1e-9)):.0f} s"
                log.info("%d rows done%s, %.1f rows/s, %d errors%s", self.done,
                         f" of {self.total}" if self.total else "", rate, self.errors, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def score(inputs: Any, *, model=None, out: str, batch_size: int = 64, resume: bool = True, threads: int = 0,
          progress: bool = True, top_k: int = 5, embeddings: bool = False, overwrite: bool = False,
          chunk_size: int | None = None, classifier=None, fast_decode: bool = False,
          item_timeout: float | None = None, device: str | None = None, probabilities: bool = False,
          ids: Sequence[str] | None = None, shard: tuple[int, int] | None = None, include_hidden: bool = False,
          preprocess=None, task: str = "classify", detector=None) -> ScoreSummary:
    """Scores every image of ``inputs`` with a classifier and writes one row per input to ``out``.

    ``task="detect"`` writes detections instead (``jobs.detect.score_detections``: the same
    guarantees; ``model`` is ``"faces"`` (default) or a YOLO ONNX path, ``detector`` an existing
    ``Detector`` / ``FaceDetector``; the classification options do not apply).

    Args:
        inputs: folders (recursive, hidden names skipped), glob patterns, ``@FILE`` list files,
            paths, in-memory images (with ``ids``), or an iterable of them; listed lazily.
        model: ONNX classifier path (default: the embedded EfficientNet-Lite0).
        out: ``.csv``, ``.jsonl`` or ``.parquet``.
        batch_size: images per model call.
        resume: continue an interrupted run with the same output (skip inputs already written).
        threads: threads for decode, preprocessing and inference (0 = all usable cores).
        progress: a bar on a terminal, else a ``pyimgcls.progress`` log line every 10 s.
        top_k: classes per row (at most the model's classes).
        embeddings: also write penultimate-layer features (Parquet: a fixed-size list column;
            JSONL: a list; CSV: ``OUT.embeddings.npy`` in row order).
        overwrite: replace an existing output instead of resuming or refusing.
        chunk_size: rows per durable write (default: ``batch_size``, at least 64).
        classifier: an existing ``Classifier`` to use instead of loading ``model``.
        fast_decode: DCT-scaled JPEG decoding (faster, answers differ a little; see
            ``Classifier.predict``).
        item_timeout: seconds one image may take to read and decode; a slower one becomes an error
            row instead of stalling the run (``None``: no limit).
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"``, ``"tensorrt[:N]"`` (see ``Session``).
        probabilities: also store every class probability per row (for curves, AP, calibration).
        ids: one id per in-memory input (array, bytes, PIL image), in order; required for a
            resumable output that has in-memory inputs.
        shard: ``(i, n)``: score only this machine's share of the inputs (``0 <= i < n``).
        include_hidden: also walk hidden files and folders.
        preprocess: replaces the model's preprocessing (see ``Classifier``).

    Every setting that changes an answer is recorded in ``OUT.pyimgcls.json`` (and the Parquet
    metadata); a resume with other settings is refused unless ``overwrite``.

    Returns:
        ``ScoreSummary``. Per-item failures are rows with ``error`` set; the run goes on.

    Raises:
        ScoreInterrupted: Ctrl-C; the rows scored so far are saved (a ``KeyboardInterrupt``).
    """
    from .. import __version__
    from ..tasks.classifier import Classifier

    if task == "detect":
        given = [k for k, v in (("classifier", classifier), ("embeddings", embeddings),
                                ("probabilities", probabilities), ("top_k", top_k != 5)) if v]
        if given:
            raise ValueError(f"{', '.join(given)} apply to task='classify', not 'detect'")
        from .detect import score_detections

        opts = {} if detector is not None else {"threads": threads, "device": device, "preprocess": preprocess}
        return score_detections(inputs, out=out, detector=detector, model=model or "faces", batch_size=batch_size,
                                resume=resume, progress=progress, overwrite=overwrite, chunk_size=chunk_size,
                                fast_decode=fast_decode, item_timeout=item_timeout, ids=ids, shard=shard,
                                include_hidden=include_hidden, **opts)
    if task != "classify":
        raise ValueError(f"task must be 'classify' or 'detect', got {task!r}")
    if detector is not None:
        raise ValueError("detector= applies to task='detect'")
    out, fmt, shard = check_job_args(out, batch_size, shard)
    if classifier is None:
        kw = {"threads": threads, "preprocess": preprocess}
        if device is not None:
            kw["device"] = device
        classifier = Classifier(model, **kw)
    clf = classifier
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
    top_k = min(top_k, clf.num_classes) if clf.num_classes else top_k
    dim = clf.embedding_dim() if embeddings else None
    settings = score_settings(clf, top_k=top_k, embeddings=embeddings, probabilities=probabilities, fmt=fmt,
                              fast_decode=fast_decode)
    manifest = {"settings": settings,
                "info": {"pyimgcls_version": __version__, "model_path": str(clf.model_path)[:500],
                         "providers": clf.session.providers, "embedding_dim": dim, "shard": shard,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    if fmt == "parquet":
        writer = ParquetWriter(out, embeddings, probabilities, dim, manifest)
    else:
        writer = AppendWriter(out, fmt, embeddings, probabilities)
        writer.dim = dim
    with OutputLock(out):
        remove_stale_temporaries(out)
        check_manifest(out, settings, overwrite, resume, writer)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_manifest(out, manifest)
        return run_rows(inputs, out, writer,
                        lambda items: clf.predict_iter(None, items=items, batch_size=batch_size, top_k=top_k,
                                                       embeddings=embeddings, probabilities=probabilities,
                                                       fast_decode=fast_decode, item_timeout=item_timeout),
                        lambda r: _row(r, embeddings, probabilities),
                        batch_size=batch_size, resume=resume, progress=progress, chunk_size=chunk_size, ids=ids,
                        shard=shard, include_hidden=include_hidden)


def check_job_args(out, batch_size, shard) -> tuple[str, str, tuple[int, int] | None]:
    """The arguments every batch job checks first: ``out``'s format from its suffix, a positive
    ``batch_size``, ``shard`` as ``(i, n)`` with ``0 <= i < n``. Returns ``(out, format, shard)``."""
    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"out must end with one of {sorted(FORMATS)}, got {out!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if shard is not None:
        i, n = (int(v) for v in shard)
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
        shard = (i, n)
    return out, FORMATS[ext], shard


def run_rows(inputs, out: str, writer, predict, row, *, batch_size: int, resume: bool, progress: bool,
             chunk_size: int | None, ids: Sequence[str] | None, shard: tuple[int, int] | None,
             include_hidden: bool) -> ScoreSummary:
    """The resumable loop of a batch job, shared by every task: lists the inputs (keyed, sharded,
    skipping those already in ``writer``), runs ``predict(items)`` (an iterator of results, one
    per item, in order), turns each result into a row with ``row(result)`` and writes the rows in
    durable chunks. Called with the output's lock held and its manifest checked."""
    done = writer.done_paths() if resume else set()
    skipped = 0

    def todo() -> Iterator[Item]:
        nonlocal skipped
        for item, inside in _keyed_items(inputs, ids, include_hidden, shard, resume):
            if not inside or item.source in done:  # another shard's, written earlier, or listed twice
                skipped += 1
                continue
            done.add(item.source)
            yield item

    countable = isinstance(inputs, (str, os.PathLike)) or (
        isinstance(inputs, (list, tuple)) and all(isinstance(x, (str, os.PathLike)) for x in inputs))
    prog = _Progress(progress, None)
    if progress and countable:
        # counted in the background: the bar / log gets an ETA without delaying the first image
        import threading

        before = frozenset(done)  # the scoring loop adds to `done` while this counts

        def count() -> None:
            try:
                prog.set_total(sum(1 for it, inside in _keyed_items(inputs, None, include_hidden, shard, False)
                                   if inside and it.source not in before))
            except Exception:  # noqa: BLE001 - only the progress total is lost
                pass

        threading.Thread(target=count, name="pyimgcls-count", daemon=True).start()
    chunk = max(64, batch_size) if chunk_size is None else max(1, int(chunk_size))
    n = errors = 0
    pending: list[dict] = []
    t0 = time.perf_counter()
    try:
        for r in predict(todo()):
            pending.append(row(r))
            n += 1
            errors += r.error is not None
            prog.update(r.error is not None)
            if len(pending) >= chunk:
                rows, pending = pending, []  # taken first: an interrupt inside write() never writes them twice
                _write(writer, rows)
        if pending:
            rows, pending = pending, []
            _write(writer, rows)
        writer.finish()
    except KeyboardInterrupt:
        if pending:  # finished rows are kept: the next run resumes after them
            rows, pending = pending, []
            _write(writer, rows)
        raise ScoreInterrupted(writer.saved, out) from None
    finally:
        prog.close()
    dt = time.perf_counter() - t0
    return ScoreSummary(out=out, images=n, errors=errors, skipped=skipped, seconds=dt,
                        images_per_second=n / dt if dt > 0 else 0.0)


# for other engines that write the same rows (integrations.ray)
__all__ += ["result_row", "score_settings"]


def result_row(r, embeddings: bool, probabilities: bool) -> dict:
    """One output row (a dict of the columns) of a ``Classification``; ``r.source`` is the row key."""
    return _row(r, embeddings, probabilities)
