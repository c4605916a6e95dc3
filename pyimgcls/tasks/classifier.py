"""``Classifier``: images in, classifications out, with the embedded default model or your own."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterator, Sequence

import numpy as np

from ..io.sources import Item
from ..runtime.session import Session, output_classes
from .base import ModelTask

__all__ = ["Classification", "ClassificationBatch", "Classifier", "PRECISIONS", "default_model_path"]

PRECISIONS = ("fp32", "int8")


def default_model_path(precision: str = "fp32") -> str:
    """Path of the embedded EfficientNet-Lite0 ImageNet-1k model (Apache-2.0): ``"fp32"`` the
    float model, ``"int8"`` its int8 copy (made by ``tools/make_int8_model.py``; README "int8")."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    name = "efficientnet_lite0.onnx" if precision == "fp32" else "efficientnet_lite0.int8.onnx"
    return str(resources.files("pyimgcls") / "assets" / name)


def _resolve_precision(model, precision: str) -> tuple[Any, str]:
    """(the model to load, the precision it runs at) for ``Classifier(model, precision=...)``.

    ``int8`` with the embedded model picks its int8 copy, unless this CPU lacks an 8-bit dot
    product (VNNI): there u8s8 products can saturate (ONNX Runtime's documentation), so the float
    model runs instead, with a ``RuntimeWarning``. With your own model, ``int8`` only checks that
    the model is quantized (``pyimgcls quantize`` makes one).
    """
    import warnings

    from ..runtime.cpu import int8_dot_product

    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return (default_model_path() if model is None else model), "fp32"
    if model is None:
        if int8_dot_product() is False:
            warnings.warn("precision='int8': this CPU has no 8-bit dot product instruction (AVX-512 VNNI, "
                          "AVX-VNNI, ARM dotprod), where int8 products can saturate and change answers; running "
                          "the fp32 model instead", RuntimeWarning, stacklevel=3)
            return default_model_path(), "fp32"
        return default_model_path("int8"), "int8"
    return model, "int8"


@dataclass
class Classification:
    """The answer for one input.

    Attributes:
        source: the input's path, or ``<bytes #i>`` / ``<array #i>`` / ``<PIL #i>``.
        label: top class id (``None`` when ``error`` is set or, multi-label, nothing passed).
        label_name: its name.
        score: its probability.
        top_k: ``[(class_id, name, probability)]``, best first.
        labels: multi-label only: every class at or above its threshold, best first.
        probabilities: all class probabilities, when asked for.
        error: why this input has no answer (unreadable, corrupt, wrong shape), else ``None``.
        embedding: penultimate-layer features, when asked for (``predict_iter(embeddings=True)``).
        image_size: ``(h, w)`` of the image as ``read_image`` returns it (EXIF orientation
            applied), when it was read.
        stored_size: ``(h, w)`` as stored in the file (before orientation), when it was read.
    """

    source: str
    label: int | None = None
    label_name: str | None = None
    score: float | None = None
    top_k: list[tuple[int, str, float]] = field(default_factory=list)
    labels: list[tuple[int, str, float]] | None = None
    probabilities: np.ndarray | None = None
    error: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    image_size: tuple[int, int] | None = None
    stored_size: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Classification({self.source!r}, error={self.error!r})"
        if self.labels is not None:
            names = ", ".join(n for _, n, _ in self.labels[:5]) + (", ..." if len(self.labels) > 5 else "")
            return f"Classification({self.source!r}, labels=[{names}])"
        return f"Classification({self.source!r}, {self.label_name!r} {self.score:.1%})"


@dataclass
class ClassificationBatch:
    """The answers for one batch of inputs as arrays (``Classifier.predict_batches``).

    Attributes:
        sources: the inputs' names, in input order (n of them).
        probabilities: (n, C) float64 class probabilities (softmax, or sigmoid with
            ``multi_label``); rows of failed inputs are zeros.
        ok: (n,) bool, False where the input failed.
        errors: (n,) why each input failed (``None`` where it did not).
    """

    sources: list[str]
    probabilities: np.ndarray
    ok: np.ndarray
    errors: list[str | None]


def _softmax(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Classifier(ModelTask):
    """Image classifier on an ONNX model.

    Thread safety: ``predict_one`` may be called from any number of threads at once on one
    ``Classifier`` (each thread gets its own preallocated buffers and IO binding); ``predict``,
    ``predict_iter`` and ``embed`` may also run concurrently (each call has its own pipeline),
    though concurrent batch calls share the one thread budget and gain nothing over one call.

    Args:
        model: path / bytes of an ONNX classifier; ``None`` loads the embedded default,
            EfficientNet-Lite0 with ImageNet-1k weights.
        preprocess: replaces the model's preprocessing: a ``PreprocessConfig`` or a dict of
            fields to change (``{"size": 256}``); checked against what the model takes.
        precision: ``"fp32"`` (default) or ``"int8"``. With the embedded model, ``"int8"`` runs
            its shipped int8 copy (1.4x-2x the model's speed on CPUs with VNNI; top-1 agreement
            with fp32 in the README); on a CPU without an 8-bit dot product (no VNNI) it warns
            and runs fp32. With your own model, ``"int8"`` requires a quantized model (``pyimgcls
            quantize``). ``.precision`` says what runs.
        **session_options: passed to ``Session`` (``device``: ``"auto"``, ``"cpu"``,
            ``"cuda[:N]"``, ``"tensorrt[:N]"``; ``providers``, ``threads``, ``allow_spinning``);
            ``threads`` (0 = all usable cores) is the budget for inference, decoding and
            preprocessing together.
    """

    def __init__(self, model=None, *, preprocess=None, precision: str = "fp32", **session_options: Any) -> None:
        path, runs = _resolve_precision(model, precision)
        super().__init__(path, preprocess=preprocess, **session_options)
        # None: the embedded model wherever loaded (and its precision chosen again there)
        self._init_args = (model, preprocess, dict(session_options, **({"precision": precision}
                                                                       if precision != "fp32" else {})))
        #: the precision that runs: "int8" or "fp32" ("int8" asked for can fall back, see above)
        self.precision: str = runs
        if precision == "int8" and model is not None and not self.session.quantized:
            raise ValueError(f"precision='int8': {self.session.source} is not a quantized model; make an int8 copy "
                             f"with `pyimgcls quantize MODEL --calibration IMAGES --out MODEL.int8.onnx` and load "
                             f"that")
        if precision == "fp32" and self.session.quantization is not None:
            self.precision = "int8"  # your own quantized model runs as it is
        outs = self.session.info.outputs
        name, shape = outs[0]
        self._rank_unknown = len(shape) == 0  # not declared in the model: checked on the first outputs
        if not self._rank_unknown:
            self._check_scores_shape(name, shape)
        c = output_classes(shape)
        self.num_classes: int | None = c if c is not None else (len(self.session.labels) if self.session.labels else None)
        self.labels: list[str] = self.session.labels or [str(i) for i in range(self.num_classes or 0)]
        #: stable class ids from the model (WordNet ids for the embedded ImageNet model), or None
        self.class_ids: list[str] | None = self.session.class_ids
        self._embed_session: Session | None = None
        self._embed_output: str | None = None
        self._embed_lock = threading.Lock()

    # ------------------------------------------------------------------ names
    def _name(self, k: int) -> str:
        return self.labels[k] if 0 <= k < len(self.labels) else str(k)

    # ------------------------------------------------------------------ batch path
    def predict(self, inputs, *, batch_size: int = 32, top_k: int = 5, multi_label: bool = False,
                threshold: float | Sequence[float] | np.ndarray = 0.5, probabilities: bool = False,
                errors: str = "record", fast_decode: bool = False,
                item_timeout: float | None = None) -> list[Classification]:
        """Classifies ``inputs`` (paths, folders, bytes, arrays, PIL images, or an iterable of them).

        Args:
            batch_size: images per model call.
            top_k: classes listed per image.
            multi_label: sigmoid per class and ``labels`` above ``threshold`` (one value or one
                per class), instead of a softmax.
            probabilities: also return every class probability.
            errors: ``"record"`` (a bad item gets ``error`` set, the rest go on) or ``"raise"``.
            fast_decode: ``False`` (default): every image is decoded in full, as the model's
                reference pipeline does. ``True``: JPEGs are decoded at the smallest libjpeg-turbo
                DCT scale (1/2 .. 1/8) that keeps the model's resize a downscale: faster on large
                photos, but the pixels differ from a full decode and the top-1 class changes on
                some images (measured in the README: "Exact and fast decoding").
            item_timeout: seconds one input may take to read and decode; a slower one gets an
                error (``TimeoutError``) instead of stalling the batch (``None``: no limit).

        Returns:
            One ``Classification`` per input item, in input order: a path, bytes, array or PIL
            image gives one; a folder gives one per image file inside it (recursively, in sorted
            order, hidden names skipped), each with its ``source`` set to the file's path. So
            ``zip(inputs, results)`` pairs them for flat inputs; with folders, use ``source``.
        """
        return list(self.predict_iter(inputs, batch_size=batch_size, top_k=top_k, multi_label=multi_label,
                                      threshold=threshold, probabilities=probabilities, errors=errors,
                                      fast_decode=fast_decode, item_timeout=item_timeout))

    def predict_iter(self, inputs, *, batch_size: int = 32, top_k: int = 5, multi_label: bool = False,
                     threshold: float | Sequence[float] | np.ndarray = 0.5, probabilities: bool = False,
                     errors: str = "record", fast_decode: bool = False, items: Iterator[Item] | None = None,
                     embeddings: bool = False, stats: dict | None = None,
                     item_timeout: float | None = None) -> Iterator[Classification]:
        """Like ``predict`` but yields results as they come (bounded memory for huge inputs).

        With ``embeddings=True`` each result also carries ``.embedding`` (penultimate features).
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
        thr = self._thresholds(threshold) if multi_label else None
        session = self._embedding_session() if embeddings else None
        for prep, outs in self._run_batches(inputs, batch_size=batch_size, errors=errors, fast_decode=fast_decode,
                                            session=session, items=items, stats=stats,
                                            item_timeout=item_timeout):
            if self._rank_unknown and outs is not None:
                self._check_scores_shape(self.session.info.outputs[0][0], outs[0].shape)
            row = {j: r for r, j in enumerate(prep.ok)}
            for j, item in enumerate(prep.items):
                if j in prep.errors:
                    e = prep.errors[j]
                    yield Classification(source=item.source, error=f"{type(e).__name__}: {e}")
                    continue
                res = self._postprocess(outs[0][row[j]], top_k, multi_label, thr, probabilities, item.source)
                info = prep.infos[row[j]]
                res.image_size, res.stored_size = info.full_size, info.stored_size
                if embeddings:
                    res.embedding = np.asarray(outs[-1][row[j]], np.float32).reshape(-1)
                yield res

    def predict_batches(self, inputs, *, batch_size: int = 32, multi_label: bool = False, errors: str = "record",
                        fast_decode: bool = False, items: Iterator[Item] | None = None, stats: dict | None = None,
                        item_timeout: float | None = None) -> Iterator[ClassificationBatch]:
        """Like ``predict_iter``, but one ``ClassificationBatch`` of arrays per model call instead
        of one object per image: for jobs that reduce the answers with NumPy (``jobs.eval``), at a
        fraction of the per-image Python cost. The probabilities are those ``predict_iter`` gives
        (``probabilities=True``), computed in float64 for the whole batch at once.
        """
        for prep, outs in self._run_batches(inputs, batch_size=batch_size, errors=errors, fast_decode=fast_decode,
                                            items=items, stats=stats, item_timeout=item_timeout):
            n = len(prep.items)
            errs: list[str | None] = [None] * n
            for j, e in prep.errors.items():
                errs[j] = f"{type(e).__name__}: {e}"
            ok = np.zeros(n, bool)
            ok[prep.ok] = True
            if outs is None:
                probs = np.zeros((n, self.num_classes or 0), np.float64)
            else:
                if self._rank_unknown:
                    self._check_scores_shape(self.session.info.outputs[0][0], outs[0].shape)
                x = np.asarray(outs[0], np.float64).reshape(len(prep.ok), -1)
                if self.session.info.output_kind != "probabilities":
                    x = _sigmoid(x) if multi_label else _softmax(x)
                probs = np.zeros((n, x.shape[1]), np.float64)
                probs[prep.ok] = x
            yield ClassificationBatch(sources=[it.source for it in prep.items], probabilities=probs, ok=ok,
                                      errors=errs)

    def _check_scores_shape(self, name: str, shape) -> None:
        if not (len(shape) == 2 or (len(shape) == 4 and shape[2] == 1 and shape[3] == 1)):
            raise ValueError(f"{self.session.source}: a classifier's first output must be (N, C) class scores "
                             f"(or (N, C, 1, 1)); {name} has shape {_shape_text(shape)}"
                             + (" (a detector's output?)" if len(shape) == 3 else ""))

    def _thresholds(self, threshold) -> np.ndarray:
        t = np.asarray(threshold, np.float64)
        if t.ndim == 0:
            return np.full(self.num_classes or 1, float(t))
        if t.ndim != 1 or (self.num_classes is not None and t.shape[0] != self.num_classes):
            raise ValueError(f"threshold must be one value or one per class ({self.num_classes}), got shape {t.shape}")
        return t

    def _probs(self, logits: np.ndarray, multi_label: bool) -> np.ndarray:
        x = np.asarray(logits, np.float64).reshape(-1)
        if self.session.info.output_kind == "probabilities":
            return x
        return _sigmoid(x) if multi_label else _softmax(x)

    def classify_logits(self, logits: np.ndarray, *, top_k: int = 5, source: str = "") -> Classification:
        """The single-label answer for one image's raw model output ``(C,)`` (or ``(C, 1, 1)``)."""
        return self._postprocess(logits, top_k, False, None, False, source)

    def _postprocess(self, logits, top_k, multi_label, thr, probabilities, source) -> Classification:
        p = self._probs(logits, multi_label)
        k = min(top_k, p.shape[0])
        idx = np.argpartition(-p, k - 1)[:k] if 0 < k < p.shape[0] else np.arange(p.shape[0])[:k]
        idx = idx[np.lexsort((idx, -p[idx]))]
        top = [(int(i), self._name(int(i)), float(p[i])) for i in idx]
        res = Classification(source=source, top_k=top, probabilities=p.astype(np.float32) if probabilities else None)
        if multi_label:
            hits = np.nonzero(p >= thr[: p.shape[0]])[0]
            hits = hits[np.lexsort((hits, -p[hits]))]
            res.labels = [(int(i), self._name(int(i)), float(p[i])) for i in hits]
            if len(hits):
                res.label, res.label_name, res.score = res.labels[0]
        else:
            best = int(np.argmax(p))
            res.label, res.label_name, res.score = best, self._name(best), float(p[best])
        return res

    # ------------------------------------------------------------------ one image, low latency
    def predict_one(self, image, *, top_k: int = 5) -> Classification:
        """The low-latency embedded path: one image (array, path, bytes or PIL image) in, answer out.

        The image is preprocessed on the calling thread straight into a preallocated input
        buffer bound to the session. Safe to call from many threads at once: each thread has its
        own buffers. Errors raise.
        """
        run = self._run_one(image)
        if self._rank_unknown:
            self._check_scores_shape(self.session.info.outputs[0][0], run.outputs[0].shape)
        return self._postprocess(run.outputs[0][0], top_k, False, None, False, run.source)

    # ------------------------------------------------------------------ embeddings
    def _embedding_session(self, output: str | None = None) -> Session:
        with self._embed_lock:
            if self._embed_session is not None and (output is None or output == self._embed_output):
                return self._embed_session
            return self._make_embedding_session(output)

    def _make_embedding_session(self, output: str | None) -> Session:
        import onnx

        m = onnx.load_from_string(self.session.model_bytes)
        name = output or _penultimate(m)
        if name not in {o.name for o in m.graph.output}:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        s = Session(m.SerializeToString(), providers=self.session.providers, threads=self.session.threads,
                    allow_spinning=self.session.allow_spinning)
        names = [o.name for o in s.session.get_outputs()]
        if names[-1] != name:
            raise ValueError(f"could not expose {name!r} as an output")
        self._embed_session, self._embed_output = s, name
        return s

    def embedding_output(self, output: str | None = None) -> str:
        """Name of the graph tensor that ``embed`` returns (found as ``embed`` finds it, or ``output``)."""
        self._embedding_session(output)
        return self._embed_output  # type: ignore[return-value]

    def embedding_dim(self, output: str | None = None) -> int | None:
        """Length of the embedding vectors, when the model declares it (``None`` otherwise)."""
        declared = self._embedding_session(output).session.get_outputs()[-1].shape
        d = declared[-1] if declared else None
        return d if isinstance(d, int) and d > 0 else None

    def embed(self, inputs, *, output: str | None = None, batch_size: int = 32, errors: str = "record",
              fast_decode: bool = False, return_sources: bool = False) -> np.ndarray | tuple[np.ndarray, list[str]]:
        """Penultimate-layer features, ``(N, D)`` float32, one row per input item (in the order of
        ``predict``), for clustering and auto-labelling.

        The feature tensor is found automatically (the input of the final Gemm / MatMul) or named
        by ``output``; it is exposed as an extra graph output. ``errors="record"`` (the default,
        as in ``predict``): a bad item gets a row of NaN; ``"raise"``: it raises.
        ``return_sources``: also return each row's ``source`` (a folder expands to its files).
        """
        es = self._embedding_session(output)
        rows, sources = [], []
        for r in self.predict_iter(inputs, batch_size=batch_size, top_k=0, errors=errors, fast_decode=fast_decode,
                                   embeddings=True):
            rows.append(r.embedding)
            sources.append(r.source)
        declared = es.session.get_outputs()[-1].shape
        dim = next((x.shape[0] for x in rows if x is not None),
                   declared[-1] if declared and isinstance(declared[-1], int) else 0)
        out = np.full((len(rows), dim), np.nan, np.float32)
        for i, x in enumerate(rows):
            if x is not None:
                out[i] = x
        return (out, sources) if return_sources else out


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _penultimate(m) -> str:
    """Name of the input of the final Gemm / MatMul feeding the first graph output."""
    producers = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name for i in m.graph.initializer}
    name = m.graph.output[0].name
    for _ in range(len(m.graph.node)):
        node = producers.get(name)
        if node is None:
            break
        if node.op_type in ("Gemm", "MatMul"):
            data = [i for i in node.input if i not in inits]
            if data:
                return data[0]
            break
        name = next((i for i in node.input if i not in inits), None)
        if name is None:
            break
    raise ValueError("no final Gemm / MatMul found: pass the feature tensor's name as output=")
