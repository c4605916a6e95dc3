"""Batch scoring of large image sets into CSV, JSONL or Parquet: resumable, bounded memory.

Crash safety (a run killed at any moment, SIGKILL included, then started again with the same
output finishes with exactly one row per input):

* CSV / JSONL: rows are appended in chunks, each flushed and fsynced; on resume a trailing partial
  line is cut off and the paths already written are skipped.
* Parquet: each chunk is written to a part file (temporary name, fsync, atomic rename) in
  ``OUT.parts/``; at the end the parts (and any earlier final file) are combined into ``OUT``
  through a temporary file and an atomic rename, then the parts are removed.
* Embeddings: a list column in Parquet, a list field in JSONL, and ``OUT.embeddings.npy`` (rows in
  the order of the CSV rows) for CSV, assembled from atomic per-chunk parts.
* ``OUT.pyimgcls.json`` records the model (SHA-256) and every setting that changes an answer
  (decode mode, preprocessing, precision, device kind); an output written with another model or
  settings is refused unless ``overwrite=True``.
* Rows are keyed by the input's absolute path: the same folder given as a relative and as an
  absolute path, or a file listed twice (``DIR DIR/a.jpg``), gives one row. The ``path`` column
  holds that absolute path; the bytes of a file name that is not valid UTF-8 appear as ``\\xNN``.
* ``OUT.lock`` is held (``flock``) while a run writes: a second run on the same output stops at
  once with a message naming the holder. The lock dies with its process, SIGKILL included.
* Resuming CSV validates records, not lines: a row cut short is dropped even when a quoted file
  name holds a line break.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..io.sources import Item, iter_items

__all__ = ["score", "ScoreSummary", "OutputExistsError", "OutputLockedError"]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
COLUMNS = ["path", "label", "label_name", "score", "top_k_ids", "top_k_names", "top_k_scores", "error"]


class OutputExistsError(RuntimeError):
    """The output exists and was written by another model or with other settings."""


class OutputLockedError(RuntimeError):
    """Another ``score`` run is writing the same output."""


@dataclass
class ScoreSummary:
    """What a ``score`` run did."""

    out: str
    images: int          # rows written by this run
    errors: int          # of which with ``error`` set
    skipped: int         # inputs already present (resumed)
    seconds: float
    images_per_second: float

    def __str__(self) -> str:
        return (f"scored {self.images} images ({self.errors} errors, {self.skipped} already done) in "
                f"{self.seconds:.1f} s: {self.images_per_second:.1f} images/s -> {self.out}")


def _sha256(path_or_bytes) -> str:
    h = hashlib.sha256()
    if isinstance(path_or_bytes, (bytes, bytearray)):
        h.update(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path)


def _text(s: str) -> str:
    """``s`` as text every output format can hold (valid UTF-8): the undecodable bytes of a file
    name that is not UTF-8 (Python's surrogate escapes) are written as ``\\xNN``."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        try:
            raw = s.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = s.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")


def _keyed(item: Item) -> Item:
    """The item named by its row key: a path input by its absolute, normalised path (as text)."""
    if isinstance(item.payload, str) and item.source == item.payload:
        return Item(_text(os.path.abspath(item.payload)), item.payload)
    return Item(_text(item.source), item.payload)


class _OutputLock:
    """An exclusive ``flock`` on ``OUT.lock`` for the duration of a run (POSIX; elsewhere a no-op)."""

    def __init__(self, out: str) -> None:
        self.path = out + ".lock"
        self.fd: int | None = None

    def __enter__(self) -> "_OutputLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
                finally:
                    os.close(fd)
                raise OutputLockedError(f"{self.path[:-5]} is being written by another pyimgcls score run "
                                        f"({holder}); wait for it to finish, or stop it") from None
            # the file we locked must still be the one at the path (a finishing run unlinks it)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                import socket

                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
                self.fd = fd
                return self
            os.close(fd)
        raise OutputLockedError(f"could not lock {self.path}")  # pragma: no cover - endless unlink races

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)  # releases the flock
            self.fd = None


def _row(r, with_embedding: bool) -> dict:
    d = {
        "path": _text(r.source),
        "label": r.label,
        "label_name": None if r.label_name is None else _text(r.label_name),
        "score": r.score,
        "top_k_ids": [int(i) for i, _, _ in r.top_k],
        "top_k_names": [_text(n) for _, n, _ in r.top_k],
        "top_k_scores": [float(p) for _, _, p in r.top_k],
        "error": _text(r.error or ""),
    }
    if with_embedding:
        d["embedding"] = None if r.embedding is None else r.embedding.tolist()
    return d


# ----------------------------------------------------------------------------- writers
class _AppendWriter:
    """CSV / JSONL: append-only text with fsync per chunk; resume cuts a partial last line."""

    def __init__(self, path: str, fmt: str, embeddings: bool) -> None:
        self.path, self.fmt, self.embeddings = path, fmt, embeddings
        self.parts = path + ".parts"

    def done_paths(self) -> set[str]:
        if not os.path.exists(self.path):
            return set()
        if self.fmt == "csv":
            self._truncate(self._csv_valid_end())
        else:
            self._cut_partial_line()
        done = set()
        with open(self.path, encoding="utf-8", newline="") as f:  # streamed, not read whole
            if self.fmt == "jsonl":
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            done.add(json.loads(line)["path"])
                        except (ValueError, KeyError, TypeError):
                            raise OutputExistsError(f"{self.path}: line {n} is not a pyimgcls row; pass "
                                                    "overwrite=True (--overwrite) to start again") from None
            else:
                rows = csv.reader(f)
                header = next(rows, None)
                if header is not None and header[:len(COLUMNS)] != COLUMNS:
                    raise OutputExistsError(f"{self.path} has an unexpected header: {header}")
                for row in rows:
                    if row:
                        done.add(row[0])
        return done

    def _csv_valid_end(self) -> int:
        """Byte offset just past the last complete, well-formed CSV record (quoted fields may hold
        line breaks, so records are parsed, not lines counted)."""
        end = pos = 0
        complete = True
        with open(self.path, "rb") as f:
            def lines():
                nonlocal pos, complete
                for raw in f:
                    pos += len(raw)
                    complete = raw.endswith(b"\n")
                    yield raw.decode("utf-8", "surrogateescape")

            reader = csv.reader(lines())
            try:
                for i, rec in enumerate(reader):
                    if not complete:
                        break  # the file ends inside this record: cut short by a kill
                    if i == 0:
                        if rec[:len(COLUMNS)] != COLUMNS:
                            raise OutputExistsError(f"{self.path} has an unexpected header: {rec}")
                    elif len(rec) != len(COLUMNS):
                        break
                    end = pos
            except csv.Error:
                pass  # an unterminated quoted field at the end
        return end

    def _truncate(self, pos: int) -> None:
        with open(self.path, "rb+") as f:
            if f.seek(0, os.SEEK_END) != pos:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())

    def _cut_partial_line(self) -> None:
        """Drops a row cut short by a kill: everything after the last newline."""
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            pos = size
            while pos > 0:
                step = min(1 << 16, pos)
                f.seek(pos - step)
                block = f.read(step)
                nl = block.rfind(b"\n")
                if nl >= 0:
                    pos = pos - step + nl + 1
                    break
                pos -= step
            if pos != size:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())

    def write(self, rows: list[dict]) -> None:
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        buf = io.StringIO()
        if not rows and self.fmt == "csv" and self.embeddings:
            os.makedirs(self.parts, exist_ok=True)
        if self.fmt == "jsonl":
            for r in rows:
                buf.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            if self.embeddings and rows:
                self._write_embedding_part(rows)
            w = csv.writer(buf, lineterminator="\n")
            if new:
                w.writerow(COLUMNS)
            for r in rows:
                w.writerow([r["path"], "" if r["label"] is None else r["label"], r["label_name"] or "",
                            "" if r["score"] is None else repr(r["score"]), json.dumps(r["top_k_ids"]),
                            json.dumps(r["top_k_names"], ensure_ascii=False), json.dumps(r["top_k_scores"]),
                            r["error"]])
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def _write_embedding_part(self, rows: list[dict]) -> None:
        os.makedirs(self.parts, exist_ok=True)
        dim = next((len(r["embedding"]) for r in rows if r.get("embedding") is not None), 0)
        emb = np.full((len(rows), dim), np.nan, np.float32)
        for i, r in enumerate(rows):
            if r.get("embedding") is not None:
                emb[i] = r["embedding"]
        buf = io.BytesIO()
        np.savez(buf, paths=np.array([r["path"] for r in rows], dtype=object), emb=emb)
        n = len(os.listdir(self.parts))
        _atomic_write(os.path.join(self.parts, f"part-{n:06d}-{time.time_ns()}.npz"), buf.getvalue())

    def finish(self) -> None:
        if not os.path.exists(self.path):  # no rows at all: still a valid, empty output
            self.write([])
        if self.fmt != "csv" or not self.embeddings or not os.path.isdir(self.parts):
            return
        by_path: dict[str, np.ndarray] = {}
        dim = 0
        for name in sorted(os.listdir(self.parts)):
            if not name.endswith(".npz"):
                continue
            with np.load(os.path.join(self.parts, name), allow_pickle=True) as z:
                for p, e in zip(z["paths"], z["emb"]):
                    by_path[str(p)] = e
                    dim = max(dim, e.shape[0])
        with open(self.path, encoding="utf-8", newline="") as f:
            rows = csv.reader(f)
            next(rows, None)
            order = [row[0] for row in rows if row]
        emb = np.full((len(order), dim), np.nan, np.float32)
        for i, p in enumerate(order):
            e = by_path.get(p)
            if e is not None and e.shape[0] == dim:
                emb[i] = e
        buf = io.BytesIO()
        np.save(buf, emb)
        _atomic_write(self.path + ".embeddings.npy", buf.getvalue())


class _ParquetWriter:
    """Parquet: atomic part files per chunk, combined into the final file at the end."""

    def __init__(self, path: str, embeddings: bool) -> None:
        self.path, self.embeddings = path, embeddings
        self.parts = path + ".parts"

    def _schema(self):
        import pyarrow as pa

        fields = [("path", pa.string()), ("label", pa.int64()), ("label_name", pa.string()), ("score", pa.float64()),
                  ("top_k_ids", pa.list_(pa.int64())), ("top_k_names", pa.list_(pa.string())),
                  ("top_k_scores", pa.list_(pa.float64())), ("error", pa.string())]
        if self.embeddings:
            fields.append(("embedding", pa.list_(pa.float32())))
        return pa.schema(fields)

    def _part_files(self) -> list[str]:
        if not os.path.isdir(self.parts):
            return []
        return sorted(os.path.join(self.parts, n) for n in os.listdir(self.parts) if n.endswith(".parquet"))

    def done_paths(self) -> set[str]:
        import pyarrow.parquet as pq

        done: set[str] = set()
        for f in ([self.path] if os.path.exists(self.path) else []) + self._part_files():
            done.update(pq.read_table(f, columns=["path"]).column("path").to_pylist())
        return done

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        os.makedirs(self.parts, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=self._schema())
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        n = len(self._part_files())
        _atomic_write(os.path.join(self.parts, f"part-{n:06d}-{time.time_ns()}.parquet"), buf.getvalue().to_pybytes())

    def finish(self) -> None:
        import pyarrow.parquet as pq

        parts = self._part_files()
        if not parts and os.path.exists(self.path):
            return
        # Streamed one part (or row group of the earlier file) at a time: memory stays bounded by a
        # chunk, however many rows the output has.
        # A path already written is skipped: a run killed after publishing the combined file but
        # before removing the parts combines them again on resume, and must not double a row.
        tmp = f"{self.path}.tmp-{os.getpid()}"
        schema = self._schema()
        seen: set[str] = set()

        def fresh(table):
            import pyarrow as pa

            keep = []
            for p in table.column("path").to_pylist():
                keep.append(p not in seen)
                seen.add(p)
            return table if all(keep) else table.filter(pa.array(keep))

        with pq.ParquetWriter(tmp, schema) as w:
            if os.path.exists(self.path):
                old = pq.ParquetFile(self.path)
                for g in range(old.num_row_groups):
                    w.write_table(fresh(old.read_row_group(g).cast(schema)))
            for p in parts:
                w.write_table(fresh(pq.read_table(p).cast(schema)))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path)
        shutil.rmtree(self.parts, ignore_errors=True)


# ----------------------------------------------------------------------------- manifest
def _manifest_path(out: str) -> str:
    return out + ".pyimgcls.json"


def _check_manifest(out: str, manifest: dict, overwrite: bool, resume: bool, writer) -> None:
    mpath = _manifest_path(out)
    exists = os.path.exists(out) or os.path.isdir(out + ".parts")
    if overwrite or not resume:
        if exists or os.path.exists(mpath):
            if not overwrite and exists:
                raise OutputExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it, or resume")
            for p in (out, mpath, out + ".embeddings.npy"):
                if os.path.exists(p):
                    os.remove(p)
            shutil.rmtree(out + ".parts", ignore_errors=True)
        return
    if exists:
        if not os.path.exists(mpath):
            raise OutputExistsError(f"{out} exists but was not written by pyimgcls score (no {mpath}); "
                                    "pass overwrite=True (--overwrite) to replace it")
        with open(mpath) as f:
            old = json.load(f)
        diff = [k for k in manifest if old.get(k) != manifest[k]]
        if diff:
            what = ", ".join(f"{k}: {old.get(k)!r} -> {manifest[k]!r}" for k in diff)
            raise OutputExistsError(f"{out} was written with other settings ({what}); pass overwrite=True "
                                    "(--overwrite) to replace it, or choose another output")


# ----------------------------------------------------------------------------- score
def _device_kind(providers: list[str]) -> str:
    first = providers[0] if providers else "CPUExecutionProvider"
    return {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
            "TensorrtExecutionProvider": "tensorrt"}.get(first, first)


def _count_hint(inputs) -> int | None:
    if isinstance(inputs, (list, tuple)) and all(isinstance(x, (str, os.PathLike)) and os.path.isfile(x) for x in inputs):
        return len(inputs)
    return None


def _countable(inputs) -> bool:
    """Inputs that can be listed twice (paths, folders, globs, list files), unlike an iterator."""
    if isinstance(inputs, (str, os.PathLike)):
        return True
    return isinstance(inputs, (list, tuple)) and all(isinstance(x, (str, os.PathLike)) for x in inputs)


def score(inputs: Any, *, model=None, out: str, batch_size: int = 64, resume: bool = True, threads: int = 0,
          progress: bool = True, top_k: int = 5, embeddings: bool = False, overwrite: bool = False,
          chunk_size: int | None = None, classifier=None, fast_decode: bool = False,
          item_timeout: float | None = None) -> ScoreSummary:
    """Scores every image of ``inputs`` with a classifier and writes one row per input to ``out``.

    Args:
        inputs: folders (recursive), glob patterns, a ``.txt`` file of paths, paths, or an
            iterable of them; listed lazily.
        model: ONNX classifier path (default: the embedded EfficientNet-Lite0).
        out: ``.csv``, ``.jsonl`` or ``.parquet``.
        batch_size: images per model call.
        resume: continue an interrupted run with the same output (skip inputs already written).
        threads: threads for decode, preprocessing and inference (0 = all usable cores).
        progress: tqdm bar (only when stderr is a terminal).
        top_k: classes per row.
        embeddings: also write penultimate-layer features.
        overwrite: replace an existing output instead of resuming or refusing.
        chunk_size: rows per durable write (default: ``batch_size``, at least 64).
        classifier: an existing ``Classifier`` to use instead of loading ``model``.
        fast_decode: DCT-scaled JPEG decoding (faster, answers differ a little; see
            ``Classifier.predict``). Recorded in the output's manifest: a resume with another
            setting is refused.
        item_timeout: seconds one image may take to read and decode; a slower one becomes an error
            row instead of stalling the run (``None``: no limit).

    Returns:
        ``ScoreSummary`` (rows written, errors, skipped, images/s). Per-item failures are rows
        with ``error`` set; the run goes on.
    """
    from ..tasks.classifier import Classifier

    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"out must end with one of {sorted(FORMATS)}, got {out!r}")
    fmt = FORMATS[ext]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    clf = classifier or Classifier(model, threads=threads)
    with _OutputLock(out):
        return _score_locked(inputs, clf, out, fmt, batch_size, resume, progress, top_k, embeddings, overwrite,
                             chunk_size, fast_decode, item_timeout)


def _score_locked(inputs, clf, out, fmt, batch_size, resume, progress, top_k, embeddings, overwrite, chunk_size,
                  fast_decode, item_timeout) -> ScoreSummary:
    model_id = _sha256(clf.session.model_bytes)
    # everything that changes an answer: a resume with other settings is refused, so rows never mix
    manifest = {"model": model_id, "top_k": int(top_k), "embeddings": bool(embeddings), "format": fmt, "version": 1,
                "decode": "fast" if fast_decode else "exact", "preprocess": json.loads(clf.config.to_json()),
                "precision": clf.session.info.dtype, "device": _device_kind(clf.session.providers)}
    writer = _ParquetWriter(out, embeddings) if fmt == "parquet" else _AppendWriter(out, fmt, embeddings)
    _check_manifest(out, manifest, overwrite, resume, writer)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    _atomic_write(_manifest_path(out), json.dumps(manifest).encode())
    done = writer.done_paths() if resume else set()

    skipped = 0

    def todo() -> Iterator[Item]:
        nonlocal skipped
        for item in iter_items(inputs):
            item = _keyed(item)
            if item.source in done:  # written by an earlier run, or listed twice in this one
                skipped += 1
                continue
            done.add(item.source)
            yield item

    total = _count_hint(inputs)
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=max(0, total - len(done)) if total is not None else None, unit="img",
                       dynamic_ncols=True, disable=None if sys.stderr.isatty() else True, desc="pyimgcls score")
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
        if bar is not None and not bar.disable and total is None and _countable(inputs):
            # Folders and lists are counted in the background so the bar gets an ETA without
            # delaying the first image (listing stays lazy for the scoring itself).
            import threading

            before = frozenset(done)  # the scoring loop adds to `done` while this counts

            def count() -> None:
                n = sum(1 for it in iter_items(inputs) if _keyed(it).source not in before)
                bar.total = n
                bar.refresh()

            threading.Thread(target=count, name="pyimgcls-count", daemon=True).start()
    chunk = max(64, batch_size) if chunk_size is None else max(1, int(chunk_size))
    n = errors = 0
    pending: list[dict] = []
    t0 = time.perf_counter()
    try:
        for r in clf.predict_iter(None, items=todo(), batch_size=batch_size, top_k=top_k, embeddings=embeddings,
                                   fast_decode=fast_decode, item_timeout=item_timeout):
            pending.append(_row(r, embeddings))
            n += 1
            errors += r.error is not None
            if bar is not None:
                bar.update(1)
            if len(pending) >= chunk:
                writer.write(pending)
                pending = []
        if pending:
            writer.write(pending)
            pending = []
        writer.finish()
    finally:
        if bar is not None:
            bar.close()
    dt = time.perf_counter() - t0
    return ScoreSummary(out=out, images=n, errors=errors, skipped=skipped, seconds=dt,
                        images_per_second=n / dt if dt > 0 else 0.0)
