"""``ModelTask``: what every model task (classifier, detector, ...) shares.

A task owns one ONNX Runtime ``Session``, the model's ``PreprocessConfig`` and one thread budget
(``threads``: ONNX Runtime's intra-op pool, the decode pool and the preprocessing kernel all get
the same resolved number). It gives its subclasses two ways to run the model:

* ``_run_batches``: the batch path, yielding each ``Prepared`` batch with the model's outputs in
  input order; a bad input is an entry in ``Prepared.errors``, never a lost row. On a CPU with
  two or more threads, ``threads`` workers each run whole batches on one core (a second,
  single-threaded session of the model: ``Session.single_threaded``); on a GPU, with one thread
  or with ``item_timeout``, the overlapped pipeline (decode + preprocess of batch ``i + 1`` in
  pyimgcls' threads while batch ``i`` is in the model).
* ``_run_one``: the low-latency path for one image: preprocessed on the calling thread straight
  into a preallocated input buffer, run through an ONNX Runtime IO binding. The buffers and the
  binding belong to the calling thread (``threading.local``), so any number of threads may call
  it on one task at once; ONNX Runtime's ``run`` is itself thread-safe.

A subclass adds only what is its own: post-processing and the result type.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from ..io.images import DecodeInfo
from ..io.sources import Item, iter_items, load_item, peek
from ..preprocessing import ImageTransform, PreprocessConfig, output_shape, preprocess
from ..runtime.pipeline import Prepared, parallel_batches, prepare_batches
from ..runtime.session import Session

__all__ = ["ModelTask", "OneRun"]

ERROR_MODES = ("record", "raise")
WORKER_BATCH_BYTES = 5 << 19     # largest model input of one CPU worker's batch (dynamic-batch models)
WORKER_MAX_MODEL = 256 << 20     # larger models keep one session and the overlapped pipeline


@dataclass
class OneRun:
    """What ``_run_one`` hands back: the model's outputs for one image (batch dimension kept,
    owned by the calling thread's buffers until its next call), the image's transform and its
    source name."""

    outputs: list[np.ndarray]
    transform: ImageTransform
    source: str
    info: DecodeInfo | None = None  # decode scale, full-resolution and stored sizes


def source_name(image: Any) -> str:
    """How a single input is named in results and errors."""
    if isinstance(image, np.ndarray):
        return "<array #0>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "<bytes #0>"
    return str(image)[:200]


class ModelTask:
    """A model, its preprocessing and its thread budget.

    Args:
        model: path / bytes / ``onnx.ModelProto`` of the ONNX model.
        preprocess: the model's preprocessing replaced: a ``PreprocessConfig``, or a dict of
            fields to change in the model's own (``{"size": 256, "interpolation": "bicubic"}``);
            checked against what the model takes.
        **session_options: passed to ``Session`` (``device``, ``providers``, ``threads``,
            ``allow_spinning``, ``device_id``). ``threads`` (default 0 = all usable cores) is the
            one budget of the task, for inference, decoding and preprocessing alike.
        batch_workers: CPU batch path: how many threads each run whole batches on one core
            (``None``: ``threads``, or 1 for a model over 256 MiB, since each worker session
            holds the weights once more; 1: the overlapped pipeline). The answers are the same
            either way; ``predict_one`` always uses the ``threads``-wide session.
    """

    #: ``f(info) -> (PreprocessConfig, message | None)`` for models without ``pyimgcls.preprocess``
    #: metadata (``Session(default_preprocess=...)``); ``None``: the classifier defaults.
    _default_preprocess = None

    def __init__(self, model, *, preprocess: PreprocessConfig | dict | None = None, batch_workers: int | None = None,
                 **session_options: Any) -> None:
        if batch_workers is not None and (isinstance(batch_workers, bool) or not isinstance(batch_workers, int)
                                          or batch_workers < 1):
            raise ValueError(f"batch_workers must be a positive int or None, got {batch_workers!r}")
        self._init_args = (model, preprocess, dict(session_options, **({} if batch_workers is None else
                                                                       {"batch_workers": batch_workers})))
        self.batch_workers = batch_workers
        self.model_path = model
        if self._default_preprocess is not None:
            session_options = {**session_options, "default_preprocess": self._default_preprocess}
        self.session = Session(model, **session_options)
        self.config = self.session.preprocess_config
        if preprocess is not None:
            if isinstance(preprocess, dict):
                preprocess = self.config.replace(**preprocess)
            self.config = self.session.check_preprocess(preprocess)
        self.threads: int = self.session.threads
        self._local = threading.local()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """Pickled by what it was made from (model path or bytes, preprocessing, session options);
        the ONNX Runtime session is built again on load (Ray, multiprocessing)."""
        model, preprocess, opts = self._init_args
        if hasattr(model, "SerializeToString"):
            model = model.SerializeToString()
        return {"model": model, "preprocess": preprocess, "session_options": opts}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model"], preprocess=state["preprocess"], **state["session_options"])

    def __repr__(self) -> str:
        src = self.session.source if len(self.session.source) <= 60 else "..." + self.session.source[-57:]
        return (f"{type(self).__name__}({src!r}, input={self.config.size[0]}x{self.config.size[1]}, "
                f"providers={self.session.providers}, threads={self.threads})")

    # ------------------------------------------------------------------ batch path
    def _run_batches(self, inputs: Any, *, batch_size: int, errors: str, fast_decode: bool,
                     session: Session | None = None, items: Iterable[Item] | None = None,
                     stats: dict | None = None,
                     item_timeout: float | None = None) -> Iterator[tuple[Prepared, list[np.ndarray] | None]]:
        """Yields ``(prepared, outputs)`` per batch, in input order; ``outputs`` is ``None`` when
        every item of the batch failed. With ``errors="raise"`` the first bad item raises.
        ``stats`` accumulates ``decode_s`` and ``preprocess_s`` (thread-seconds) and ``inference_s``
        (thread-seconds on the CPU workers; wall seconds of each model run on the overlapped
        pipeline, where the model alone holds the cores)."""
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        session = self.session if session is None else session
        items = iter_items(inputs) if items is None else items
        workers = self._workers(session)
        if workers > 1 and item_timeout is None:
            size = self.worker_batch_size(batch_size, session)
            items, short = peek(items, 2 * workers * size)
            if short:  # too few for the workers to pay: one session, the overlapped pipeline
                workers = 1
        if workers > 1 and item_timeout is None:
            for prep, outs, dt in parallel_batches(items, self.config, session.single_threaded().run,
                                                   batch_size=size, workers=workers, fast_decode=fast_decode):
                if errors == "raise" and prep.errors:
                    raise prep.errors[min(prep.errors)]
                if stats is not None and outs is not None:
                    stats["inference_s"] = stats.get("inference_s", 0.0) + dt
                    stats["decode_s"] = stats.get("decode_s", 0.0) + prep.decode_s
                    stats["preprocess_s"] = stats.get("preprocess_s", 0.0) + prep.preprocess_s
                yield prep, outs
            return
        for prep in prepare_batches(items, self.config, batch_size=batch_size, threads=self.threads,
                                    fast_decode=fast_decode, item_timeout=item_timeout):
            if errors == "raise" and prep.errors:
                raise prep.errors[min(prep.errors)]
            outs = None
            if prep.batch is not None:
                t0 = time.perf_counter()
                outs = session.run(prep.batch)
                if stats is not None:
                    stats["inference_s"] = stats.get("inference_s", 0.0) + time.perf_counter() - t0
                    stats["decode_s"] = stats.get("decode_s", 0.0) + prep.decode_s
                    stats["preprocess_s"] = stats.get("preprocess_s", 0.0) + prep.preprocess_s
            yield prep, outs

    def worker_batch_size(self, batch_size: int, session: Session | None = None) -> int:
        """The model batch of one CPU worker for ``batch_size``: at most WORKER_BATCH_BYTES of input
        unless the model's batch is fixed. A large input's activations stay in the caches (224x224
        RGB float32: 4 images, measured best with two workers, 4% above 8 and 2-5% above 1 and 2);
        a small input's batch stays whole."""
        session = self.session if session is None else session
        if session.info.batch is not None:
            return batch_size
        per_image = int(np.prod(output_shape(self.config, 1))) * np.dtype(self.config.dtype).itemsize
        return max(1, min(batch_size, WORKER_BATCH_BYTES // per_image))

    def batch_worker_count(self) -> int:
        """How many CPU workers ``predict`` / ``embed`` use on an input long enough for them (two
        batches per worker); 1: the overlapped pipeline (a GPU, one thread, ``batch_workers=1``)."""
        return self._workers(self.session)

    def _workers(self, session: Session) -> int:
        """How many worker threads run the batch path (``parallel_batches``): ``batch_workers`` if
        set, else the thread budget on a CPU session whose model is at most ``WORKER_MAX_MODEL``
        bytes (each worker session holds the weights once more); 1 means the overlapped pipeline."""
        if not session.providers or session.providers[0] != "CPUExecutionProvider":
            return 1
        if self.batch_workers is not None:
            return self.batch_workers
        return self.threads if len(session.model_bytes) <= WORKER_MAX_MODEL else 1

    # ------------------------------------------------------------------ one image, low latency
    def _one_buffers(self) -> tuple[np.ndarray, Any, list[np.ndarray] | None]:
        """The calling thread's input buffer, IO binding and bound output buffers (made on first use)."""
        local = self._local
        if getattr(local, "one_in", None) is None:
            cfg = self.config
            one_in = np.zeros(output_shape(cfg, 1), np.dtype(cfg.dtype))
            binding, one_out = None, None
            s = self.session
            shapes = [(1,) + tuple(shape[1:]) for _, shape in s.info.outputs]
            static = all(all(isinstance(d, int) and d > 0 for d in shp) for shp in shapes)
            if static and s.providers and s.providers[0] == "CPUExecutionProvider" and s.info.batch in (None, 1):
                try:
                    b = s.session.io_binding()
                    b.bind_input(s.info.input_name, "cpu", 0, one_in.dtype, one_in.shape, one_in.ctypes.data)
                    one_out = []
                    for k, ((name, _), shp) in enumerate(zip(s.info.outputs, shapes)):
                        o = np.zeros(shp, s.output_dtype(k))
                        b.bind_output(name, "cpu", 0, o.dtype, o.shape, o.ctypes.data)
                        one_out.append(o)
                    binding = b
                except Exception:  # noqa: BLE001 - an unbindable model runs through Session.run
                    binding, one_out = None, None
            local.one_in, local.binding, local.one_out = one_in, binding, one_out
        return local.one_in, local.binding, local.one_out

    def _run_one(self, image: Any) -> OneRun:
        """Decodes (if needed), preprocesses and runs one image on the calling thread. Errors raise."""
        item = Item(source_name(image), image)
        img, info = load_item(item, return_info=True)
        one_in, binding, one_out = self._one_buffers()
        _, transforms = preprocess([img], self.config, threads=1, out=one_in)
        if binding is not None:
            self.session.session.run_with_iobinding(binding)
            outs = one_out
        else:
            outs = self.session.run(one_in)
        return OneRun(outputs=outs, transform=transforms[0], source=item.source, info=info)
