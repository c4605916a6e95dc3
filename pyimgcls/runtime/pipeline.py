"""The batch paths: results come out in input order, a bad item becomes an error entry.

* ``parallel_batches`` (a CPU model on several cores, the default there): each of ``threads``
  worker threads takes the next batch and does all of it on its own core (read, decode,
  preprocess, then the model in a single-threaded ONNX Runtime session).
* ``prepare_batches`` (GPU sessions, one core, ``item_timeout``): the overlapped pipeline. A
  producer thread takes ``batch_size`` items at a time from the (lazy) input iterator, decodes
  them on a small thread pool (libjpeg-turbo and OpenCV release the GIL), preprocesses the good
  ones into one batch tensor (native, threaded) and hands it over a queue of depth 2; the caller's
  thread runs the model and post-processes.

Memory stays bounded by the number of batches in flight in both.
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .. import _core
from ..io.images import DecodeInfo
from ..limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, HEADER_FIRST_BYTES
from ..io.sources import Item, load_item
from ..preprocessing import PreprocessConfig, Transforms, preprocess

__all__ = ["Prepared", "prepare_batches", "parallel_batches", "decode_min_size"]


@dataclass
class Prepared:
    """One batch ready for the model."""

    items: list[Item]
    batch: np.ndarray | None                   # (n_ok, ...) model input, None if all failed
    ok: list[int]                              # positions in `items` that are in `batch`
    errors: dict[int, BaseException] = field(default_factory=dict)
    transforms: Transforms | None = None       # model input -> full-resolution pixels of each image
    infos: list[DecodeInfo] = field(default_factory=list)  # per item in `batch`: decode scale and sizes
    decode_s: float = 0.0                      # thread-seconds spent decoding this batch
    preprocess_s: float = 0.0


def decode_min_size(cfg: PreprocessConfig) -> tuple[int, int]:
    """Smallest decoded size that keeps the following resize a downscale (JPEG DCT scaling)."""
    H, W = cfg.size
    if cfg.resize == "center_crop":
        s = max(int(H / cfg.crop_pct), int(W / cfg.crop_pct))
        return (s, s)
    return (H, W)


_LOAD_PNGS = getattr(_core, "load_pngs", None)  # None where the module was built without zlib


def _load_native_pngs(chunk: list[Item], threads: int) -> dict[int, tuple]:
    """The chunk's ``*.png`` paths read and decoded in one native call (threads, no GIL): position
    -> ``((image, DecodeInfo), None, thread-seconds)``. Exactly what ``load_item`` gives for the
    files it takes (clean 8-bit PNGs without EXIF, within the default limits); the rest, and every
    file it does not take, go through ``load_item``."""
    if _LOAD_PNGS is None:
        return {}
    idx = [i for i, it in enumerate(chunk) if type(it.payload) is str and it.payload[-4:].lower() == ".png"]
    if len(idx) < 2:
        return {}
    t0 = time.perf_counter()
    try:
        imgs = _LOAD_PNGS([os.fsencode(chunk[i].payload) for i in idx], min(HEADER_FIRST_BYTES, DEFAULT_MAX_BYTES),
                          DEFAULT_MAX_PIXELS, 0, max(1, threads))
    except (MemoryError, ValueError):  # (an undecodable path) every item goes through load_item instead
        return {}
    dt = (time.perf_counter() - t0) * min(max(1, threads), len(idx)) / len(idx)
    out = {}
    for i, a in zip(idx, imgs):
        if a is not None:
            size = (int(a.shape[0]), int(a.shape[1]))
            out[i] = ((a, DecodeInfo(scale=1.0, full_size=size, stored_size=size)), None, dt)
    return out


def _load(item: Item, min_size) -> tuple:
    """``load_item`` as a pipeline entry: ``((image, DecodeInfo), None, thread-seconds)`` or
    ``(None, error, thread-seconds)`` for a bad input."""
    t0 = time.thread_time()
    try:
        img, info = load_item(item, min_size=min_size, return_info=True)
        return (img, info), None, time.thread_time() - t0
    except (ValueError, TypeError, OSError, MemoryError) as e:
        return None, e, time.thread_time() - t0


def _assemble(chunk: list[Item], results: list[tuple], cfg: PreprocessConfig, threads: int,
              on_error: Callable[[Item, BaseException], None] | None = None) -> Prepared:
    """One ``Prepared`` batch from a chunk's load results: the good images preprocessed into one
    tensor (``threads`` threads), the bad ones error entries."""
    p = Prepared(items=chunk, batch=None, ok=[])
    imgs, infos = [], []
    for i, (loaded, err, dt) in enumerate(results):
        p.decode_s += dt
        if err is not None:
            p.errors[i] = err
            if on_error is not None:
                on_error(chunk[i], err)
        else:
            p.ok.append(i)
            imgs.append(loaded[0])
            infos.append(loaded[1])
    p.infos = infos
    if imgs:
        t0 = time.perf_counter()
        p.batch, p.transforms = preprocess(imgs, cfg, threads=threads)
        if any(info.scale != 1.0 for info in infos):  # boxes map back to the file's pixels
            p.transforms = Transforms(tuple(t.at_full_resolution(info.scale, info.full_size)
                                            for t, info in zip(p.transforms, infos)))
        p.preprocess_s = (time.perf_counter() - t0) * min(max(1, threads), len(imgs))
    return p


SERIAL_DECODE_S = 100e-6  # per item: below this mean decode time, decode in the producer thread
SERIAL_MIN_ITEMS = 8      # a chunk this large or larger sets the mode for the next one


def _chunks(it: Iterator[Item], n: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for x in it:
        chunk.append(x)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepare_batches(items: Iterable[Item], cfg: PreprocessConfig, *, batch_size: int, threads: int,
                    fast_decode: bool = False, depth: int = 2,
                    on_error: Callable[[Item, BaseException], None] | None = None,
                    item_timeout: float | None = None) -> Iterator[Prepared]:
    """Yields ``Prepared`` batches in input order, prepared ``depth`` batches ahead in a thread.

    ``item_timeout``: seconds one item may take to load and decode; a slower one becomes an error
    entry (``TimeoutError``) and the run goes on. Its worker thread cannot be stopped and finishes
    in the background; the decode pool is replaced so that the run keeps its workers.
    """
    if item_timeout is not None and not (isinstance(item_timeout, (int, float)) and not isinstance(item_timeout, bool)
                                         and item_timeout > 0 and item_timeout < float("inf")):
        raise ValueError(f"item_timeout must be a finite number of seconds > 0 or None, got {item_timeout!r}")
    min_size = decode_min_size(cfg) if fast_decode else None
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    _END = object()

    def load(item: Item):
        return _load(item, min_size)

    def new_pool() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="pyimgcls-decode")

    # Small images (a 28x28 PNG decodes in ~15 us) are decoded in the producer thread itself: a
    # pool's workers would hand the GIL back and forth around every short native call and run
    # slower than one thread. Each chunk's mean decode time (thread CPU seconds per item) decides
    # the next chunk: below SERIAL_DECODE_S per item, serial; above, the pool.
    serial = [False]

    def load_all(pool: ThreadPoolExecutor, chunk: list[Item]):
        if item_timeout is None:
            native = _load_native_pngs(chunk, threads)
            rest = [it for i, it in enumerate(chunk) if i not in native] if native else chunk
            if not rest:
                results = []
            elif len(rest) == 1 or serial[0] or threads <= 1:
                results = [load(it) for it in rest]
            else:
                # a few runs of items per worker, not one task per item (fewer hand-offs)
                step = -(-len(rest) // (4 * max(1, threads)))
                runs = pool.map(lambda run: [load(it) for it in run],
                                [rest[i:i + step] for i in range(0, len(rest), step)])
                results = [r for run in runs for r in run]
            if len(rest) >= SERIAL_MIN_ITEMS:
                serial[0] = sum(r[2] for r in results) < SERIAL_DECODE_S * len(rest)
            if native:
                it_rest = iter(results)
                results = [native[i] if i in native else next(it_rest) for i in range(len(chunk))]
            return results, False
        futures = [pool.submit(load, it) for it in chunk]
        results, stuck = [], False
        for it, fut in zip(chunk, futures):
            try:
                results.append(fut.result(timeout=item_timeout))
            except FutureTimeout:
                stuck = True
                results.append((None, TimeoutError(f"{it.source}: loading took longer than item_timeout="
                                                   f"{item_timeout:g} s"), 0.0))
        return results, stuck

    def producer() -> None:
        pool = new_pool()
        try:
            for chunk in _chunks(iter(items), batch_size):
                if stop.is_set():
                    return
                results, stuck = load_all(pool, chunk)
                if stuck:  # the stuck thread keeps its slot: carry on with a fresh pool
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = new_pool()
                q.put(_assemble(chunk, results, cfg, threads, on_error))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            q.put(_END)

    t = threading.Thread(target=producer, name="pyimgcls-prepare", daemon=True)
    t.start()
    try:
        while True:
            p = q.get()
            if p is _END:
                break
            if isinstance(p, BaseException):
                raise p
            yield p
    finally:
        stop.set()
        while t.is_alive():  # drain so the producer can finish
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


_OPEN_RUNS: set[tuple] = set()  # (halt, settle) of each parallel_batches run not closed yet
_OPEN_LOCK = threading.Lock()


@atexit.register
def _halt_open_runs() -> None:
    """At interpreter exit (atexit runs before Python finalizes): the workers of a run left open
    (an unfinished ``predict_iter``) start no further batch, and the batches under way are waited
    for. A daemon thread still inside native code (ONNX Runtime, the kernels) once Python
    finalizes is stopped there when it takes the GIL back, and that aborts the process. A worker
    waiting inside the input iterator (a live source) is not waited for: it may never return."""
    with _OPEN_LOCK:
        runs = list(_OPEN_RUNS)
    for halt, _ in runs:
        halt()
    for _, settle in runs:
        settle()


def parallel_batches(items: Iterable[Item], cfg: PreprocessConfig, run: Callable[[np.ndarray], list[np.ndarray]], *,
                     batch_size: int, workers: int, fast_decode: bool = False,
                     ahead: int = 1) -> Iterator[tuple[Prepared, list[np.ndarray] | None, float]]:
    """The batch path of a CPU model on several cores: ``workers`` threads each take the next
    ``batch_size`` items and do all of that batch on their own thread (read, decode, preprocess
    on one thread, then ``run``, which must be a model run on the calling thread alone, e.g. a
    single-threaded ONNX Runtime session, safe to call from several threads at once). Yields
    ``(prepared, outputs, inference thread-seconds)`` per batch, in input order; ``outputs`` is
    ``None`` when every item of the batch failed.

    Why: on a CPU every stage is compute, and one thread per batch keeps every core busy with no
    hand-off between stages and none of the intra-op parallel overhead of a model spread over all
    cores (ONNX Runtime on two threads does not run twice as fast as on one). At most
    ``workers + ahead`` batches are taken and not yet handed to the caller, so memory stays
    bounded. An exception from the input iterator or from ``run`` is raised to the caller at its
    batch's place, after the batches before it; the workers stop when the caller stops.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    min_size = decode_min_size(cfg) if fast_decode else None
    source = _chunks(iter(items), batch_size)
    take = threading.Lock()                       # the input iterator is not thread-safe
    slots = threading.Semaphore(workers + max(0, ahead))
    done: dict[int, tuple] = {}
    posted = threading.Condition()
    stop = threading.Event()
    state = {"taken": 0, "end": False, "working": 0}

    def post(k: int, entry: tuple) -> None:
        with posted:
            done[k] = entry
            posted.notify_all()

    def work(chunk: list[Item]) -> tuple:
        native = _load_native_pngs(chunk, 1)
        results = [native[i] if i in native else _load(it, min_size) for i, it in enumerate(chunk)]
        p = _assemble(chunk, results, cfg, 1)
        outs, dt = None, 0.0
        if p.batch is not None:
            t0 = time.thread_time()
            outs = run(p.batch)
            dt = time.thread_time() - t0
        return p, outs, dt

    def worker() -> None:
        while True:
            slots.acquire()
            with take:
                if stop.is_set() or state["end"]:
                    return
                k = state["taken"]
                try:
                    chunk = next(source, None)
                except BaseException as e:  # noqa: BLE001 - raised to the caller at its place
                    state["end"] = True
                    post(k, ("raise", e))
                    return
                if chunk is None:
                    state["end"] = True
                    post(k, ("end", None))
                    return
                state["taken"] = k + 1
            with posted:  # once stopped (closed, or the interpreter exiting) no batch starts
                if stop.is_set():
                    return
                state["working"] += 1
            try:
                result = ("ok", work(chunk))
            except BaseException as e:  # noqa: BLE001 - raised to the caller at its place
                result = ("raise", e)
            with posted:
                state["working"] -= 1
                posted.notify_all()
            if result[0] == "raise":
                with take:
                    state["end"] = True
            post(k, result)
            if result[0] == "raise":
                return

    def halt() -> None:
        with posted:
            stop.set()
        for _ in threads:
            slots.release()

    def settle() -> None:  # after halt: until no worker is inside a batch
        with posted:
            while state["working"]:
                posted.wait()

    threads = [threading.Thread(target=worker, name=f"pyimgcls-worker-{i}", daemon=True) for i in range(workers)]
    this_run = (halt, settle)
    k = 0
    try:
        with _OPEN_LOCK:
            _OPEN_RUNS.add(this_run)
        for t in threads:  # inside: a thread that cannot start stops those already started
            t.start()
        while True:
            with posted:
                while k not in done:
                    posted.wait()
                kind, payload = done.pop(k)
            if kind == "end":
                return
            if kind == "raise":
                raise payload
            slots.release()
            k += 1
            yield payload
    finally:
        with _OPEN_LOCK:
            _OPEN_RUNS.discard(this_run)
        halt()
        # no join while Python finalizes (a frozen daemon thread is never joined), nor on a worker
        # (closed there by the garbage collector: joining would wait on itself, or on a worker that
        # waits for the input lock this thread holds); the workers end on their own
        if not sys.is_finalizing() and threading.current_thread() not in threads:
            for t in threads:
                if t.is_alive():
                    t.join()
