"""Embeddings for the clustering and auto-label jobs: read from a ``score --embeddings`` output or
an ``.npy`` file, or computed with a ``Classifier`` through an on-disk cache.

The cache (``EmbeddingCache``) is a folder of two files:

* ``vectors.f32``: float32 rows, appended in chunks (each flushed and fsynced before the index
  that names them is replaced);
* ``index.json``: the model's SHA-256, the embedding output's name, the dimension and one entry
  per row: ``[absolute path, size in bytes, mtime in ns]``, replaced atomically.

A file is taken from the cache only when its path, size and mtime all match an entry, so an edited
image is embedded again. The cache survives a run killed at any moment: rows written after the
last index are cut off on the next open; an index from another model, an index that does not
parse or a vector file shorter than its index starts the cache afresh (with a warning). Images
that cannot be read are not cached (they are retried on the next run) and are reported in
``EmbeddingSet.errors``.

Thread safety: an ``EmbeddingCache`` is used by one process at a time (it takes no lock); the
functions are safe to call from several threads on different caches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["EmbeddingSet", "EmbeddingCache", "load_embeddings", "is_embeddings_file", "l2_normalize",
           "require_sklearn"]

log = logging.getLogger("pyimgcls")

CHUNK = 4096  # rows embedded (and appended to the cache) per step


@dataclass
class EmbeddingSet:
    """Embeddings with the input each row belongs to.

    Attributes:
        paths: one name per row (an image's absolute path, or ``row i`` for a bare array).
        vectors: ``(N, D)`` float32; may be a read-only memory map (large ``.npy`` files).
        errors: ``{input: reason}`` for inputs without an embedding (unreadable, corrupt, an
            error row of the scoring output); they have no row.
        from_cache: rows taken from the cache (0 when nothing was embedded).
        embedded: rows computed in this call.
    """

    paths: list[str]
    vectors: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)
    from_cache: int = 0
    embedded: int = 0

    def __len__(self) -> int:
        return len(self.paths)


def require_sklearn(what: str) -> None:
    """ImportError with the install line when scikit-learn (the ``label`` extra) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs scikit-learn: pip install \"pyimgcls[label]\"") from None


def l2_normalize(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero). ``x``: ``(N, D)``; float32 result."""
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(n, 1e-12, out=n)
    return np.divide(x, n, out=out)


def is_embeddings_file(data: Any) -> bool:
    """True when ``data`` names an embeddings file (``.npy``, or a ``score --embeddings`` output)."""
    if not isinstance(data, (str, os.PathLike)):
        return False
    p = os.fspath(data)
    ext = os.path.splitext(p)[1].lower()
    if ext == ".npy":
        return True
    if ext == ".csv":
        return os.path.isfile(p + ".embeddings.npy")
    return ext in (".parquet", ".jsonl") and os.path.isfile(p)


def _file_key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, int(st.st_size), int(st.st_mtime_ns))


class EmbeddingCache:
    """Embeddings of image files on disk, keyed by model and by file (path, size, mtime).

    Args:
        folder: the cache folder (created when missing).
        model_sha256: SHA-256 of the model's bytes.
        output: the name of the embedding tensor.
    """

    def __init__(self, folder: str | os.PathLike, model_sha256: str, output: str) -> None:
        self.folder = os.fspath(folder)
        self.model, self.output = model_sha256, output
        self.index_path = os.path.join(self.folder, "index.json")
        self.vectors_path = os.path.join(self.folder, "vectors.f32")
        self.dim: int | None = None
        self.entries: list[list] = []
        self.rows: dict[tuple[str, int, int], int] = {}
        self._open()

    def _reset(self, why: str | None) -> None:
        if why:
            log.warning("embedding cache %s: %s; starting it afresh", self.folder, why)
        self.dim, self.entries, self.rows = None, [], {}
        for p in (self.vectors_path, self.index_path):
            if os.path.exists(p):
                os.remove(p)

    def _open(self) -> None:
        os.makedirs(self.folder, exist_ok=True)
        if not os.path.exists(self.index_path):
            self._reset(None)
            return
        try:
            with open(self.index_path, encoding="utf-8") as f:
                idx = json.load(f)
            model, output, dim, entries = idx["model"], idx["output"], idx["dim"], idx["entries"]
            if not isinstance(entries, list) or (entries and not isinstance(dim, int)):
                raise ValueError("bad index")
        except (OSError, ValueError, KeyError, TypeError):
            self._reset("the index cannot be read")
            return
        if model != self.model or output != self.output:
            self._reset("made with another model")
            return
        have = os.path.getsize(self.vectors_path) if os.path.exists(self.vectors_path) else 0
        need = len(entries) * (dim or 0) * 4
        if have < need:
            self._reset(f"{self.vectors_path} holds {have} bytes, its index names {need}")
            return
        if have > need:  # rows of a run killed before it wrote their index
            with open(self.vectors_path, "r+b") as f:
                f.truncate(need)
        self.dim, self.entries = dim, entries
        self.rows = {tuple(e): i for i, e in enumerate(entries)}

    def lookup(self, keys: Sequence[tuple[str, int, int] | None]) -> np.ndarray:
        """Row of each key in the cache, ``-1`` where it is not cached. ``(N,)`` int64."""
        return np.asarray([self.rows.get(k, -1) if k is not None else -1 for k in keys], np.int64)

    def vectors(self) -> np.ndarray:
        """All cached rows, ``(M, D)`` float32, memory-mapped read-only."""
        if not self.entries:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.memmap(self.vectors_path, np.float32, "r", shape=(len(self.entries), self.dim))

    def append(self, keys: list[tuple[str, int, int]], vecs: np.ndarray) -> None:
        """Adds rows: vectors first (fsynced), then the index (atomic replace)."""
        if not keys:
            return
        vecs = np.ascontiguousarray(vecs, np.float32)
        if self.dim is None:
            self.dim = int(vecs.shape[1])
        elif vecs.shape[1] != self.dim:
            raise ValueError(f"embedding dimension changed: cache has {self.dim}, got {vecs.shape[1]}")
        with open(self.vectors_path, "ab") as f:
            f.write(vecs.tobytes())
            f.flush()
            os.fsync(f.fileno())
        for k in keys:
            self.rows[k] = len(self.entries)
            self.entries.append(list(k))
        tmp = self.index_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"model": self.model, "output": self.output, "dim": self.dim, "entries": self.entries}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)


def _read_score_output(path: str) -> EmbeddingSet:
    """Rows of a ``score --embeddings`` output (error rows go to ``errors``)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if "embedding" not in pf.schema_arrow.names:
            raise ValueError(f"{path} has no embedding column: score it with --embeddings")
        paths, errors, chunks = [], {}, []
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["path", "error", "embedding"])
            ps, es = t.column("path").to_pylist(), t.column("error").to_pylist()
            col = t.column("embedding").combine_chunks()
            ok = np.asarray([e is None for e in es])
            for p, e in zip(ps, es):
                if e is not None:
                    errors[p] = e
            if ok.any():
                flat = np.asarray(col.filter(ok).flatten().to_numpy(zero_copy_only=False), np.float32)
                chunks.append(flat.reshape(int(ok.sum()), -1))
            paths.extend(p for p, k in zip(ps, ok) if k)
        vecs = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
        return EmbeddingSet(paths, vecs, errors)
    if ext == ".jsonl":
        paths, errors, rows = [], {}, []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                if "embedding" not in r:
                    raise ValueError(f"{path}: line {n} has no embedding: score it with --embeddings")
                if r.get("error") or r["embedding"] is None:
                    errors[r["path"]] = r.get("error") or "no embedding"
                    continue
                paths.append(r["path"])
                rows.append(r["embedding"])
        vecs = np.asarray(rows, np.float32) if rows else np.zeros((0, 0), np.float32)
        return EmbeddingSet(paths, vecs, errors)
    # CSV: paths from the CSV, vectors from OUT.embeddings.npy in CSV row order
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "path" not in rows[0]:
        raise ValueError(f"{path}: no path column (is it a score output?)")
    vecs = np.load(path + ".embeddings.npy", mmap_mode="r")
    if vecs.ndim != 2 or vecs.shape[0] != len(rows):
        raise ValueError(f"{path}.embeddings.npy has shape {vecs.shape}, expected ({len(rows)}, D) for the CSV's "
                         f"{len(rows)} rows")
    keep = [i for i, r in enumerate(rows) if not r.get("error")]
    errors = {r["path"]: r["error"] for r in rows if r.get("error")}
    paths = [rows[i]["path"] for i in keep]
    if len(keep) != len(rows):
        vecs = np.asarray(vecs[keep], np.float32)
    return EmbeddingSet(paths, vecs, errors)


def _check_vectors(vecs: np.ndarray, what: str) -> np.ndarray:
    if vecs.ndim != 2:
        raise ValueError(f"{what}: embeddings must be (N, D), got shape {vecs.shape}")
    if vecs.dtype != np.float32:
        vecs = np.asarray(vecs, np.float32)
    return vecs


def _model_sha(clf) -> str:
    return hashlib.sha256(clf.session.model_bytes).hexdigest()


def load_embeddings(data: Any, *, classifier=None, model=None, cache: str | os.PathLike | None = None,
                    batch_size: int = 32, threads: int = 0, progress: bool = False) -> EmbeddingSet:
    """The embeddings of ``data``.

    Args:
        data: an ``(N, D)`` array (rows named ``row i``); an ``.npy`` file (memory-mapped); a
            ``score --embeddings`` output (``.parquet``, ``.jsonl``, or ``.csv`` beside its
            ``.embeddings.npy``); or images (folders, files, ``@LIST`` files, or a list of them),
            embedded with ``classifier`` / ``model`` (default: the embedded EfficientNet-Lite0).
        cache: a folder for the image embeddings (see the module's notes); ``None``: no cache.
        batch_size: images per model call.
        threads: thread budget when a classifier is made here.
        progress: log progress every ``CHUNK`` images.

    Raises:
        ValueError: an empty set, a file that is not an embeddings file, bad shapes.
        FileNotFoundError: an input that does not exist.
    """
    if isinstance(data, EmbeddingSet):
        return data
    if isinstance(data, np.ndarray):
        vecs = _check_vectors(data, "array")
        return EmbeddingSet([f"row {i}" for i in range(len(vecs))], vecs)
    if is_embeddings_file(data):
        p = os.fspath(data)
        if not os.path.exists(p):
            raise FileNotFoundError(f"embeddings file not found: {p}")
        if p.lower().endswith(".npy"):
            vecs = _check_vectors(np.load(p, mmap_mode="r"), p)
            return EmbeddingSet([f"row {i}" for i in range(len(vecs))], vecs)
        es = _read_score_output(p)
        es.vectors = _check_vectors(es.vectors, p) if len(es.paths) else es.vectors
        return es
    return _embed_images(data, classifier=classifier, model=model, cache=cache, batch_size=batch_size,
                         threads=threads, progress=progress)


def _image_paths(data: Any) -> list[str]:
    from ..io.sources import FolderListingError, iter_items

    items = data if isinstance(data, (list, tuple)) else [data]
    paths, seen = [], set()
    for x in items:
        if isinstance(x, (str, os.PathLike)) and not str(x).startswith("@") and not os.path.exists(x) \
                and not set("*?[") & set(str(x)):
            raise FileNotFoundError(f"no such file or folder: {os.fspath(x)}")
        for it in iter_items(x):
            if isinstance(it.payload, FolderListingError):
                it.payload.raise_error()
            if not isinstance(it.payload, str):
                raise TypeError(f"images must be given as files or folders here (to key the cache), got "
                                f"{it.source}")
            p = os.path.abspath(it.payload)
            if p not in seen:
                seen.add(p)
                paths.append(p)
    return paths


def _embed_images(data, *, classifier, model, cache, batch_size, threads, progress) -> EmbeddingSet:
    from ..tasks.classifier import Classifier

    paths = _image_paths(data)
    if not paths:
        raise ValueError(f"no images found in {data if not isinstance(data, (list, tuple)) else list(data)[:5]}")
    clf = classifier if classifier is not None else Classifier(model, threads=threads)
    keys = [_file_key(p) for p in paths]
    c = EmbeddingCache(cache, _model_sha(clf), clf.embedding_output()) if cache is not None else None
    where = c.lookup(keys) if c is not None else np.full(len(paths), -1, np.int64)
    todo = np.flatnonzero(where < 0)
    errors: dict[str, str] = {}
    new_rows: dict[int, np.ndarray] = {}
    for s in range(0, len(todo), CHUNK):
        idx = todo[s:s + CHUNK]
        batch = [paths[i] for i in idx]
        out = []
        for r in clf.predict_iter(batch, batch_size=batch_size, top_k=0, embeddings=True):
            out.append(r)
        good_keys, good_vecs = [], []
        for i, r in zip(idx, out):
            if r.error is not None or r.embedding is None:
                errors[paths[i]] = r.error or "no embedding"
                continue
            new_rows[int(i)] = r.embedding
            if keys[i] is not None:
                good_keys.append(keys[i])
                good_vecs.append(r.embedding)
        if c is not None and good_vecs:
            c.append(good_keys, np.stack(good_vecs))
        if progress:
            log.info("embedded %d of %d images", min(s + CHUNK, len(todo)), len(todo))
    if c is not None and new_rows:  # everything now lives in the cache: read it memory-mapped
        where = c.lookup(keys)
    ok = [i for i in range(len(paths)) if paths[i] not in errors]
    if c is not None:
        mm = c.vectors()
        rows = where[ok]
        if len(rows) and np.all(rows >= 0):
            vecs = np.asarray(mm[rows]) if not np.array_equal(rows, np.arange(len(mm))) else mm
        else:  # files whose key could not be taken (stat failed) are not cached
            dim = c.dim or next(iter(new_rows.values())).shape[0]
            vecs = np.empty((len(ok), dim), np.float32)
            for j, i in enumerate(ok):
                vecs[j] = mm[where[i]] if where[i] >= 0 else new_rows[i]
    else:
        dim = next(iter(new_rows.values())).shape[0] if new_rows else 0
        vecs = np.stack([new_rows[i] for i in ok]) if ok else np.zeros((0, dim), np.float32)
    if errors:
        log.warning("%d of %d images could not be embedded (first: %s: %s)", len(errors), len(paths),
                    *next(iter(errors.items())))
    return EmbeddingSet([paths[i] for i in ok], vecs, errors, from_cache=len(paths) - len(todo),
                        embedded=len(new_rows))
