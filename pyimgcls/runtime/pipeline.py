"""The overlapped batch pipeline: decode + preprocess in pyimgcls' threads while the previous
batch is in the model; results come out in input order, a bad item becomes an error entry.

Stages: a producer thread takes ``batch_size`` items at a time from the (lazy) input iterator,
decodes them on a small thread pool (libjpeg-turbo and OpenCV release the GIL), preprocesses the
good ones into one batch tensor (native, threaded) and hands it over a queue of depth 2; the
caller's thread runs the model and post-processes. Memory stays bounded by the queue depth.
"""

from __future__ import annotations

import os
import queue
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

__all__ = ["Prepared", "prepare_batches", "decode_min_size"]


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
        t0 = time.thread_time()
        try:
            img, info = load_item(item, min_size=min_size, return_info=True)
            return (img, info), None, time.thread_time() - t0
        except (ValueError, TypeError, OSError, MemoryError) as e:
            return None, e, time.thread_time() - t0

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
                q.put(p)
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
