"""The durable outputs of ``score``: CSV, JSONL and Parquet writers, the manifest, the lock.

Crash safety (a run killed at any moment, SIGKILL included, then started again with the same
output finishes with exactly one row per input):

* CSV / JSONL: rows are appended in chunks, each flushed and fsynced. On resume CSV is parsed
  record by record (a quoted file name may hold a line break) and JSONL line by line; a row cut
  short is dropped and the paths already written are skipped.
* CSV embeddings: float32 rows appended to ``OUT.embeddings.f32`` in the order of the CSV rows,
  each chunk fsynced before its CSV rows (so the file is never behind the CSV; on resume it is
  cut to the CSV's row count). At the end they become ``OUT.embeddings.npy`` (streamed: memory
  is bounded by a chunk) and the raw file is removed.
* Parquet: each chunk is a part file (temporary name, fsync, atomic rename) in ``OUT.parts/``; at
  the end the parts (and an earlier final file) are combined into ``OUT`` through a temporary
  file and an atomic rename, in row groups of about 64k rows or 128 MB, then the parts are
  removed. A path already written is skipped while combining, so a finish killed after the
  rename but before the removal never doubles a row on resume.
* ``OUT.pyimgcls.json`` (also stored in the Parquet file's key-value metadata under
  ``pyimgcls``) records the model's SHA-256 and every setting that changes an answer; a resume
  with other settings is refused.
* ``OUT.lock`` is held (``flock``) while a run writes: a second run stops at once, naming the holder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from typing import Any

import numpy as np

__all__ = ["AppendWriter", "ParquetWriter", "OutputExistsError", "OutputLockedError", "OutputLock", "COLUMNS",
           "check_manifest", "parquet_schema", "remove_stale_temporaries", "write_manifest", "manifest_path", "path_text", "text"]

COLUMNS = ["path", "label", "label_name", "score", "top_k_ids", "top_k_names", "top_k_scores", "width", "height",
           "stored_width", "stored_height", "error"]
# RFC 4180 line ends: with them the csv module quotes any field holding \r or \n (with "\n" alone a
# bare \r in a file name went unquoted and split the row for every reader)
CSV_EOL = "\r\n"
ROW_GROUP_ROWS = 65536
ROW_GROUP_BYTES = 128 << 20


class OutputExistsError(RuntimeError):
    """The output exists and was written by another model or with other settings."""


class OutputLockedError(RuntimeError):
    """Another ``score`` run is writing the same output."""


def text(s: str) -> str:
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


def path_text(s: str) -> str:
    """A file path as text, one to one: a name that is valid UTF-8 and has no backslash is kept as
    it is; otherwise backslashes are doubled and undecodable bytes written as ``\\xNN``, so two
    different names never give the same text."""
    try:
        s.encode("utf-8")
        if "\\" not in s:
            return s
    except UnicodeEncodeError:
        pass
    return text(s.replace("\\", "\\\\"))


def fsync_dir(path: str) -> None:
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


def atomic_write(path: str, data: bytes, *, hidden_tmp: bool = False) -> None:
    """Writes ``data`` to a temporary file beside ``path``, fsyncs it and renames it over ``path``.
    ``hidden_tmp``: the temporary's name starts with a dot (``.NAME.tmp-PID``), so that readers of a
    whole folder (pyarrow, Spark, Ray read a ``.parts`` folder as one dataset) skip a half-written one."""
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.tmp-{os.getpid()}") if hidden_tmp else f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # (a full disk, PATH a folder, an interrupt): no temporary left behind
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path)


# ----------------------------------------------------------------------------- lock
class OutputLock:
    """An exclusive ``flock`` on ``OUT.lock`` for the duration of a run (POSIX; elsewhere a no-op)."""

    def __init__(self, out: str) -> None:
        self.path = out + ".lock"
        self.fd: int | None = None

    def __enter__(self) -> "OutputLock":
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


# ----------------------------------------------------------------------------- manifest
def manifest_path(out: str) -> str:
    return out + ".pyimgcls.json"


def remove_stale_temporaries(out: str) -> None:
    """Temporary files of runs killed mid-write (``OUT.tmp-PID``, ``OUT.pyimgcls.json.tmp-PID``, ...),
    removed when their process is gone. Called under the output's lock."""
    import glob

    parts = glob.glob(os.path.join(glob.escape(out + ".parts"), ".*.tmp-*"))  # Parquet part files
    for tmp in glob.glob(glob.escape(out) + "*.tmp-*") + parts:
        pid = tmp.rsplit(".tmp-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running (cannot be: we hold the lock) or not ours to judge
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.remove(tmp)
        except OSError:
            pass


def write_manifest(out: str, manifest: dict) -> None:
    atomic_write(manifest_path(out), json.dumps(manifest, indent=1).encode())


def check_manifest(out: str, settings: dict, overwrite: bool, resume: bool, writer) -> None:
    """Refuses to mix rows made with other settings; clears the output for ``overwrite``."""
    mpath = manifest_path(out)
    exists = os.path.lexists(out) or writer.has_pending()
    if overwrite or not resume:
        if exists or os.path.exists(mpath):
            if not overwrite and exists:
                raise OutputExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it, or resume")
            writer.remove_all()
            if os.path.exists(mpath):
                os.remove(mpath)
        return
    if exists:
        if not os.path.exists(mpath):
            raise OutputExistsError(f"{out} exists but was not written by pyimgcls score (no {mpath}); "
                                    "pass overwrite=True (--overwrite) to replace it")
        with open(mpath, encoding="utf-8") as f:
            try:
                old = json.load(f).get("settings", {})
            except (ValueError, AttributeError):
                old = {}
        diff = [k for k in settings if old.get(k) != settings[k]]
        if diff:
            parts = []
            for k in diff:
                a, b = old.get(k), settings[k]
                if isinstance(a, dict) and isinstance(b, dict):  # name the fields that changed
                    parts += [f"{k}.{f}: {_short(a.get(f))} -> {_short(b.get(f))}" for f in sorted(set(a) | set(b))
                              if a.get(f) != b.get(f)]
                else:
                    parts.append(f"{k}: {_short(a)} -> {_short(b)}")
            what = ", ".join(parts)
            raise OutputExistsError(f"{out} was written with other settings ({what}); pass overwrite=True "
                                    "(--overwrite) to replace it, or choose another output")


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) < 80 else s[:77] + "..."


# ----------------------------------------------------------------------------- CSV / JSONL
class AppendWriter:
    """CSV / JSONL: append-only text with fsync per chunk."""

    def __init__(self, path: str, fmt: str, embeddings: bool, probabilities: bool) -> None:
        self.path, self.fmt, self.embeddings, self.probabilities = path, fmt, embeddings, probabilities
        self.raw = path + ".embeddings.f32"
        self.npy = path + ".embeddings.npy"
        self.columns = COLUMNS + (["probabilities"] if probabilities else [])
        self.dim: int | None = None
        self.rows_written = 0
        self.saved = 0  # rows this run made durable

    def has_pending(self) -> bool:
        return os.path.exists(self.raw)

    def remove_all(self) -> None:
        for p in (self.path, self.raw, self.npy):
            if os.path.lexists(p):
                os.remove(p)

    # -- resume
    def done_paths(self) -> set[str]:
        if not os.path.exists(self.path):
            if os.path.exists(self.raw):
                os.remove(self.raw)  # embeddings of rows that never reached the CSV
            return set()
        if self.fmt == "csv":
            self._truncate(self.path, self._csv_valid_end())
        else:
            self._truncate(self.path, self._jsonl_valid_end())
        done: set[str] = set()
        n = 0
        with open(self.path, encoding="utf-8", newline="") as f:  # streamed, not read whole
            if self.fmt == "jsonl":
                for line in f:
                    if line.strip():
                        done.add(json.loads(line)["path"])
                        n += 1
            else:
                rows = csv.reader(f)
                next(rows, None)
                for row in rows:
                    done.add(row[0])
                    n += 1
        self.rows_written = n
        if self.embeddings and self.fmt == "csv":
            self._align_embeddings(n)
        return done

    def _align_embeddings(self, n: int) -> None:
        """Cuts the raw embeddings to the CSV's rows (they are written first, so never fewer)."""
        if not os.path.exists(self.raw) and os.path.exists(self.npy):
            self._npy_to_raw()  # a finished run: continue from its .npy
        if not os.path.exists(self.raw):
            if n:
                raise OutputExistsError(f"{self.raw} is missing for {n} rows of {self.path}; pass overwrite=True "
                                        "(--overwrite) to start again")
            return
        size = os.path.getsize(self.raw)
        if n == 0:
            self._truncate(self.raw, 0)
            return
        dim = self._dim_from_header()
        if dim is None or size < n * dim * 4:
            raise OutputExistsError(f"{self.raw} holds fewer embeddings than {self.path} has rows; pass "
                                    "overwrite=True (--overwrite) to start again")
        self.dim = dim
        self._truncate(self.raw, n * dim * 4)

    def _npy_to_raw(self) -> None:
        """The rows of a finished run's ``.npy`` back into the raw append file (streamed)."""
        tmp = f"{self.raw}.tmp-{os.getpid()}"
        with open(self.npy, "rb") as src:
            np.lib.format.read_magic(src)
            np.lib.format.read_array_header_1_0(src)
            with open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, self.raw)
        fsync_dir(self.raw)

    def _dim_from_header(self) -> int | None:
        mpath = manifest_path(self.path)
        try:
            with open(mpath, encoding="utf-8") as f:
                return json.load(f).get("info", {}).get("embedding_dim")
        except (OSError, ValueError):
            return None

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
                        if rec != self.columns:
                            raise OutputExistsError(f"{self.path} has an unexpected header: {rec}; expected "
                                                    f"{self.columns}")
                    elif len(rec) != len(self.columns):
                        break
                    end = pos
            except csv.Error:
                pass  # an unterminated quoted field at the end
        return end

    def _jsonl_valid_end(self) -> int:
        """Byte offset past the last complete JSON row; a line that does not parse ends the rows."""
        end = 0
        with open(self.path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    break
                if raw.strip():
                    try:
                        row = json.loads(raw)
                        row["path"]
                    except (ValueError, KeyError, TypeError):
                        if f.read(1):  # not the last line: a corrupt file, not a cut
                            raise OutputExistsError(f"{self.path}: line {n} is not a pyimgcls row; pass "
                                                    "overwrite=True (--overwrite) to start again") from None
                        break
                end += len(raw)
        return end

    @staticmethod
    def _truncate(path: str, pos: int) -> None:
        with open(path, "rb+") as f:
            if f.seek(0, os.SEEK_END) != pos:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())

    # -- writing
    def write(self, rows: list[dict]) -> None:
        if self.embeddings and self.fmt == "csv" and rows:
            self._append_embeddings(rows)  # first: the raw file is never behind the CSV
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        buf = io.StringIO()
        if self.fmt == "jsonl":
            for r in rows:
                buf.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            w = csv.writer(buf, lineterminator=CSV_EOL)
            if new:
                w.writerow(self.columns)
            for r in rows:
                w.writerow([_csv_cell(r[c]) for c in self.columns])
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        self.rows_written += len(rows)
        self.saved += len(rows)

    def _append_embeddings(self, rows: list[dict]) -> None:
        dim = self.dim or next((len(r["embedding"]) for r in rows if r.get("embedding") is not None), None)
        if dim is None:
            raise OutputExistsError("no embedding dimension known yet")  # pragma: no cover - set by score()
        self.dim = dim
        emb = np.full((len(rows), dim), np.nan, np.float32)
        for i, r in enumerate(rows):
            if r.get("embedding") is not None:
                emb[i] = r["embedding"]
        with open(self.raw, "ab") as f:
            f.write(emb.tobytes())
            f.flush()
            os.fsync(f.fileno())

    def finish(self) -> None:
        if not os.path.exists(self.path):  # no rows at all: still a valid, empty output
            self.write([])
        if self.fmt != "csv" or not self.embeddings:
            return
        dim = self.dim or self._dim_from_header() or 0
        n = self.rows_written
        tmp = f"{self.npy}.tmp-{os.getpid()}"
        with open(tmp, "wb") as out:
            np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
            if os.path.exists(self.raw) and n * dim:
                with open(self.raw, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.npy)
        fsync_dir(self.npy)
        if os.path.exists(self.raw):
            os.remove(self.raw)


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ----------------------------------------------------------------------------- Parquet
def parquet_schema(embeddings: bool, probabilities: bool, embedding_dim: int | None, metadata: dict | None):
    """The Arrow schema of ``score``'s Parquet rows (also the rows of the Ray integration); the
    manifest, when given, goes into the key-value metadata under ``pyimgcls``."""
    import pyarrow as pa

    fields = [("path", pa.string()), ("label", pa.int64()), ("label_name", pa.string()), ("score", pa.float64()),
              ("top_k_ids", pa.list_(pa.int64())), ("top_k_names", pa.list_(pa.string())),
              ("top_k_scores", pa.list_(pa.float64())), ("width", pa.int32()), ("height", pa.int32()),
              ("stored_width", pa.int32()), ("stored_height", pa.int32()), ("error", pa.string())]
    if probabilities:
        fields.append(("probabilities", pa.list_(pa.float32())))
    if embeddings:
        fields.append(("embedding", pa.list_(pa.float32(), embedding_dim) if embedding_dim
                       else pa.list_(pa.float32())))
    return pa.schema(fields, metadata=None if metadata is None else {"pyimgcls": json.dumps(metadata)})


class ParquetWriter:
    """Parquet: atomic part files per chunk, combined into the final file at the end."""

    def __init__(self, path: str, embeddings: bool, probabilities: bool, embedding_dim: int | None,
                 metadata: dict) -> None:
        self.path, self.embeddings, self.probabilities = path, embeddings, probabilities
        self.parts = path + ".parts"
        self.embedding_dim = embedding_dim
        self.metadata = metadata
        self.saved = 0  # rows this run made durable

    def schema(self):
        return parquet_schema(self.embeddings, self.probabilities, self.embedding_dim, self.metadata)

    def has_pending(self) -> bool:
        return os.path.isdir(self.parts)

    def remove_all(self) -> None:
        if os.path.lexists(self.path):
            os.remove(self.path)
        shutil.rmtree(self.parts, ignore_errors=True)

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
        table = pa.Table.from_pylist(rows, schema=self.schema())
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        n = len(self._part_files())
        atomic_write(os.path.join(self.parts, f"part-{n:06d}-{time.time_ns()}.parquet"), buf.getvalue().to_pybytes(),
                     hidden_tmp=True)
        self.saved += len(rows)

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self._part_files()
        if not parts and os.path.exists(self.path):
            return
        tmp = f"{self.path}.tmp-{os.getpid()}"
        schema = self.schema()
        seen: set[str] = set()
        pending: list = []
        pending_rows = pending_bytes = 0

        def fresh(table):
            keep = []
            for p in table.column("path").to_pylist():
                keep.append(p not in seen)
                seen.add(p)
            return table if all(keep) else table.filter(pa.array(keep))

        with pq.ParquetWriter(tmp, schema) as w:
            def flush():
                nonlocal pending, pending_rows, pending_bytes
                if pending:
                    w.write_table(pa.concat_tables(pending), row_group_size=max(1, pending_rows))
                pending, pending_rows, pending_bytes = [], 0, 0

            def add(table):
                nonlocal pending_rows, pending_bytes
                table = fresh(table.cast(schema))
                while table.num_rows:  # row groups of about 64k rows or 128 MB
                    room = ROW_GROUP_ROWS - pending_rows
                    head, table = table.slice(0, room), table.slice(room)
                    pending.append(head)
                    pending_rows += head.num_rows
                    pending_bytes += head.nbytes
                    if pending_rows >= ROW_GROUP_ROWS or pending_bytes >= ROW_GROUP_BYTES:
                        flush()

            if os.path.exists(self.path):
                old = pq.ParquetFile(self.path)
                for g in range(old.num_row_groups):
                    add(old.read_row_group(g))
            for p in parts:
                add(pq.read_table(p))
            flush()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path)
        shutil.rmtree(self.parts, ignore_errors=True)
