"""``pyimgcls quantize``: an int8 copy of a float ONNX classifier, calibrated on real images.

The recipe is ONNX Runtime's static quantization, done as its documentation recommends for CPUs:

1. ``onnxruntime.quantization.shape_inference.quant_pre_process`` (graph optimisation: constant
   folding, Conv + BatchNorm fusion; ONNX shape inference) on the float model. Its symbolic shape
   inference is skipped: it needs sympy, which pyimgcls does not depend on, and it serves models
   with symbolic dimensions inside (transformers), not the CNN classifiers pyimgcls runs;
2. calibration: the images go through pyimgcls' own decode (``read_image``) and preprocessing
   (``preprocess`` with the model's ``PreprocessConfig``), so the ranges are measured on exactly
   what inference will feed the model; ranges by ``minmax``, ``entropy`` or ``percentile``;
3. ``quantize_static`` in QDQ format: uint8 activations, int8 weights per output channel (the
   u8s8 pair ONNX Runtime's x86 kernels use), some nodes optionally kept in float
   (``nodes_to_exclude``).

The float model's metadata (preprocessing, labels, class ids) is copied, and a
``pyimgcls.quantization`` entry (JSON: method, samples, excluded nodes, the float model's SHA-256,
...) records how the copy was made; ``pyimgcls info`` shows it.

``compare_outputs`` and ``evaluate`` give the agreement report (top-1 agreement, probability change,
top-5 containment, accuracy against labels), ``model_throughput`` the model-only speed of both.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..io.images import ImageDecodeError
from ..io.sources import iter_items, load_item
from ..preprocessing import PreprocessConfig, preprocess
from ..runtime.session import META_QUANTIZATION, Session, quantized_op_count

__all__ = ["METHODS", "MIN_CALIBRATION_IMAGES", "Agreement", "QuantizeReport", "compare_outputs", "evaluate",
           "load_images", "model_throughput", "quantize"]

METHODS = ("minmax", "entropy", "percentile")
#: fewer readable calibration images than this is an error: the ranges would be guesses
MIN_CALIBRATION_IMAGES = 16
#: the share of a probability distribution the ``percentile`` method keeps (ONNX Runtime's default)
DEFAULT_PERCENTILE = 99.999


# ----------------------------------------------------------------------------- images
def load_images(sources: Any, config: PreprocessConfig, *, limit: int | None = None, seed: int = 0,
                threads: int = 0, what: str = "calibration") -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Decodes and preprocesses images exactly as inference does.

    Args:
        sources: folders, files, ``@list`` files, bytes or arrays (what ``Classifier.predict`` takes).
        config: the model's preprocessing.
        limit: at most this many images; when there are more, a seeded random choice of them
            (``seed``), in input order. Unreadable files are skipped and replaced by others.
        what: how the images are named in errors.

    Returns:
        ``(batch, sources, skipped)``: ``(N, C, H, W)`` (or the model's layout) in the model's
        input dtype, the source of each row, and ``(source, reason)`` for each unreadable item.
    """
    items = list(iter_items(sources))
    order = list(range(len(items)))
    if limit is not None and len(items) > limit:
        random.Random(seed).shuffle(order)
    chosen, skipped = [], []
    for i in order:
        if limit is not None and len(chosen) >= limit:
            break
        try:
            chosen.append((i, load_item(items[i])))
        except (ImageDecodeError, ValueError, TypeError, OSError) as e:
            skipped.append((items[i].source, f"{type(e).__name__}: {e}"))
    chosen.sort(key=lambda t: t[0])
    if not chosen:
        return np.zeros((0,) + _sample_shape(config), np.dtype(config.dtype)), [], skipped
    batch, _ = preprocess([im for _, im in chosen], config, threads=threads)
    return batch, [items[i].source for i, _ in chosen], skipped


def _sample_shape(config: PreprocessConfig) -> tuple[int, int, int]:
    h, w = config.size
    return (config.channels, h, w) if config.layout == "NCHW" else (h, w, config.channels)


# ----------------------------------------------------------------------------- quantization
@dataclass
class Agreement:
    """How close the int8 model's answers are to the float model's, on the same images.

    Attributes:
        images: images compared.
        top1_agreement: share of images with the same top-1 class.
        mean_abs_prob_diff: mean over images of |p_int8 - p_fp32| for the float model's top class.
        mean_max_prob_diff: mean over images of the largest |p_int8 - p_fp32| over all classes.
        top5_containment: share of images whose float top-1 class is in the int8 top-5.
        confident_images: images the float model gives at least ``confident_at`` probability.
        confident_agreement: top-1 agreement on those (``None`` when there are none).
        accuracy_fp32, accuracy_int8: top-1 accuracy against labels, when labels were given.
    """

    images: int
    top1_agreement: float
    mean_abs_prob_diff: float
    mean_max_prob_diff: float
    top5_containment: float
    confident_at: float
    confident_images: int
    confident_agreement: float | None
    labelled_images: int = 0
    accuracy_fp32: float | None = None
    accuracy_int8: float | None = None

    def lines(self) -> list[str]:
        out = [f"top-1 agreement      {self.top1_agreement:.2%} of {self.images} held-out images",
               f"confident images     {self.confident_images} with fp32 p >= {self.confident_at:g}: agreement "
               + (f"{self.confident_agreement:.2%}" if self.confident_agreement is not None else "n/a"),
               f"fp32 top-1 in int8 top-5  {self.top5_containment:.2%}",
               f"mean |p change|      {self.mean_abs_prob_diff:.4f} (fp32's top class), "
               f"{self.mean_max_prob_diff:.4f} (largest over classes)"]
        if self.accuracy_fp32 is not None:
            out.append(f"accuracy             fp32 {self.accuracy_fp32:.2%}, int8 {self.accuracy_int8:.2%} "
                       f"({self.labelled_images} labelled images)")
        return out


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def compare_outputs(fp32_logits: np.ndarray, int8_logits: np.ndarray, labels: Sequence[int] | np.ndarray | None = None,
                    *, confident_at: float = 0.5, probabilities: bool = False) -> Agreement:
    """Agreement of two models' outputs on the same images.

    Args:
        fp32_logits, int8_logits: ``(N, C)`` scores of the reference and the quantized model.
        labels: ``(N,)`` int true classes, ``-1`` for an unlabelled image; accuracy is over the
            labelled ones.
        confident_at: the float probability from which an image counts as confident.
        probabilities: the scores are probabilities already (no softmax).

    Raises:
        ValueError: shapes that differ or are not ``(N, C)`` with ``N >= 1``.
    """
    a, b = np.asarray(fp32_logits), np.asarray(int8_logits)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"expected two (N, C) score arrays of one shape with N >= 1, got {a.shape} and {b.shape}")
    pa = a.astype(np.float64) if probabilities else _softmax(a)
    pb = b.astype(np.float64) if probabilities else _softmax(b)
    ta, tb = pa.argmax(1), pb.argmax(1)
    n = a.shape[0]
    rows = np.arange(n)
    same = ta == tb
    k = min(5, a.shape[1])
    top5 = np.argpartition(-pb, k - 1, axis=1)[:, :k] if k < a.shape[1] else np.tile(np.arange(k), (n, 1))
    contained = (top5 == ta[:, None]).any(1)
    conf = pa[rows, ta] >= confident_at
    res = Agreement(images=n, top1_agreement=float(same.mean()),
                    mean_abs_prob_diff=float(np.abs(pb[rows, ta] - pa[rows, ta]).mean()),
                    mean_max_prob_diff=float(np.abs(pb - pa).max(1).mean()),
                    top5_containment=float(contained.mean()), confident_at=confident_at,
                    confident_images=int(conf.sum()),
                    confident_agreement=float(same[conf].mean()) if conf.any() else None)
    if labels is not None:
        y = np.asarray(labels, np.int64).reshape(-1)
        if y.shape[0] != n:
            raise ValueError(f"labels has {y.shape[0]} entries for {n} images")
        m = y >= 0
        if m.any():
            res.labelled_images = int(m.sum())
            res.accuracy_fp32 = float((ta[m] == y[m]).mean())
            res.accuracy_int8 = float((tb[m] == y[m]).mean())
    return res


def _run_all(session: Session, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate([session.run(x[i:i + batch_size])[0] for i in range(0, len(x), batch_size)])


def evaluate(fp32: Session, int8: Session, x: np.ndarray, labels=None) -> Agreement:
    """Runs both sessions on the preprocessed batch ``x`` and compares them (``compare_outputs``)."""
    return compare_outputs(_run_all(fp32, x), _run_all(int8, x), labels,
                           probabilities=fp32.info.output_kind == "probabilities")


def model_throughput(sessions: Sequence[Session], x: np.ndarray, *, rounds: int = 5,
                     seconds: float = 2.0) -> list[float]:
    """Model-only images per second of each session on the batch ``x``, measured in alternating
    rounds in this one run (so machine noise hits all alike); the median round per session."""
    per = [[] for _ in sessions]
    for s in sessions:  # warm-up
        s.run(x)
    budget = seconds / max(1, rounds * len(sessions))
    for _ in range(rounds):
        for k, s in enumerate(sessions):
            n, t0 = 0, time.perf_counter()
            while n < 2 or time.perf_counter() - t0 < budget:
                s.run(x)
                n += 1
            per[k].append(n * len(x) / (time.perf_counter() - t0))
    return [float(np.median(p)) for p in per]


@dataclass
class QuantizeReport:
    """What ``quantize`` made and measured."""

    model: str
    out: str
    method: str
    samples: int
    skipped: list = field(default_factory=list)
    nodes_to_exclude: list = field(default_factory=list)
    quantized_ops: int = 0
    size_fp32_mb: float = 0.0
    size_int8_mb: float = 0.0
    agreement: Agreement | None = None
    eval_skipped: list = field(default_factory=list)
    batch_size: int = 8
    throughput_fp32: float | None = None
    throughput_int8: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"wrote      {self.out} ({self.size_int8_mb:.1f} MB; fp32 {self.size_fp32_mb:.1f} MB)",
                 f"recipe     QDQ, uint8 activations, int8 per-channel weights; {self.method} calibration on "
                 f"{self.samples} images" + (f" ({len(self.skipped)} unreadable skipped)" if self.skipped else ""),
                 f"kept float {', '.join(self.nodes_to_exclude) if self.nodes_to_exclude else 'none'}",
                 f"quantized  {self.quantized_ops} QuantizeLinear / DequantizeLinear nodes"]
        if self.agreement is not None:
            lines += self.agreement.lines()
        if self.throughput_fp32 is not None:
            lines.append(f"model only batch {self.batch_size}: fp32 {self.throughput_fp32:.1f} img/s, int8 "
                         f"{self.throughput_int8:.1f} img/s ({self.throughput_int8 / self.throughput_fp32:.2f}x, "
                         f"same run)")
        lines.append(f"took       {self.seconds:.1f} s")
        return "\n".join(lines)


class _Reader:
    """An ONNX Runtime ``CalibrationDataReader`` over an array of preprocessed images, in batches;
    ``set_range`` (ONNX Runtime's ``CalibStridedMinMax``) limits it to a window of batches, so the
    calibrator holds a few batches' activations at a time, whatever the method."""

    def __init__(self, input_name: str, x: np.ndarray, batch_size: int = 8) -> None:
        self.input_name, self.x, self.batch_size = input_name, x, batch_size
        self.start, self.end = 0, len(self)
        self.i = 0

    def get_next(self):
        if self.start + self.i >= self.end:
            return None
        k = (self.start + self.i) * self.batch_size
        self.i += 1
        return {self.input_name: self.x[k:k + self.batch_size]}

    def rewind(self) -> None:
        self.i = 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.i = start_index, min(end_index, len(self)), 0


def _stride(batches: int, most: int = 4) -> int:
    """The largest divisor of ``batches`` up to ``most`` (ONNX Runtime wants the chunks even)."""
    return max(d for d in range(1, most + 1) if batches % d == 0)


def _reader_class():
    """``_Reader`` as a subclass of ONNX Runtime's ``CalibrationDataReader`` (imported lazily)."""
    from onnxruntime.quantization import CalibrationDataReader

    return type("CalibrationReader", (_Reader, CalibrationDataReader), {})


def _last_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _model_bytes(model) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "<bytes>"
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model not found: {path}")
    with open(path, "rb") as f:
        return f.read(), path


def check_float_model(data: bytes, name: str):
    """The parsed model if it is a float model ONNX Runtime may quantize; ``ValueError`` naming
    ``name`` when it is already quantized or not an ONNX model."""
    import onnx

    try:
        m = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"{name}: not an ONNX model ({_last_line(e)})") from None
    props = {p.key: p.value for p in m.metadata_props}
    n = quantized_op_count(m)
    if META_QUANTIZATION in props or n:
        how = f"{n} quantized operators" if n else f"{META_QUANTIZATION} metadata"
        raise ValueError(f"{name} is already quantized ({how}); quantize the float model it was made from")
    return m


def quantize(model, calibration: Any, out, *, method: str = "minmax", samples: int = 256, seed: int = 0,
             nodes_to_exclude: Sequence[str] | None = None, op_types: Sequence[str] | None = None,
             per_channel: bool = True, reduce_range: bool = False,
             percentile: float = DEFAULT_PERCENTILE, evaluation: Any = None, eval_labels: Sequence[int] | None = None,
             eval_limit: int | None = 1000, throughput_batch: int | None = 8, threads: int = 0,
             calibration_cache: str | None = None, extra_options: dict | None = None,
             status: Callable[[str], None] | None = None) -> QuantizeReport:
    """Writes an int8 (QDQ) copy of a float ONNX classifier, calibrated on real images.

    Args:
        model: path or bytes of the float model (with pyimgcls metadata for its preprocessing,
            else the assumed defaults, with a warning).
        calibration: images for the ranges: a folder, files, ``@list``, or arrays / bytes.
        out: path of the int8 model to write.
        method: ``"minmax"`` (the observed range), ``"entropy"`` (KL-divergence optimal
            threshold) or ``"percentile"`` (``percentile`` of each tensor's histogram).
        samples: calibration images used (a seeded random choice, ``seed``, when there are more).
        nodes_to_exclude: nodes kept in float: names, or shell patterns matched against the
            node names of the pre-processed graph (``"/_blocks.[0-2]/*"``: every node of those
            blocks). Keep a whole region in float (its activations too) rather than single Convs
            between int8 ones: a float node between DequantizeLinear and QuantizeLinear gets its
            weights quantized per tensor by ONNX Runtime's ``WeightBiasQuantization`` optimiser
            (pyimgcls' ``Session`` turns that off; plain ONNX Runtime does not).
        op_types: only these operator types are quantized (``None``: all that ONNX Runtime can).
        per_channel: one weight scale per output channel (default) or one per tensor.
        reduce_range: 7-bit weights, for CPUs without VNNI where u8s8 products can saturate.
        evaluation: held-out images for the agreement report (``None``: no report).
        eval_labels: the true class of each ``evaluation`` image (``-1`` = unknown), for accuracy;
            only with a list of images (a folder expands in sorted order).
        eval_limit: at most this many evaluation images (seeded choice).
        throughput_batch: batch size of the model-only speed comparison (``None``: skipped).
        threads: threads for decoding, preprocessing and inference (0 = all usable cores).
        calibration_cache: a JSON file of ONNX Runtime's calibration ranges to reuse (written
            when missing): the same ranges for several ``nodes_to_exclude`` choices. Needs an
            ONNX Runtime whose ``quantize_static`` takes ``calibration_cache_path``.
        extra_options: more of ``quantize_static``'s ``extra_options`` (ONNX Runtime's names).
        status: ``callable(str)`` told what is being done.

    Returns:
        A ``QuantizeReport``. Not thread-safe with itself on one ``out`` (it writes the file).

    Raises:
        ValueError: an unknown method, too few readable calibration images (fewer than
            ``MIN_CALIBRATION_IMAGES``), a model that is already quantized, a model ONNX Runtime
            cannot quantize (its message), or nothing in it that could be quantized.
        FileNotFoundError: a model that is not there.
    """
    t_start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < MIN_CALIBRATION_IMAGES:
        raise ValueError(f"samples must be an int >= {MIN_CALIBRATION_IMAGES}, got {samples!r}")
    if not (0 < percentile <= 100):
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    say = status or (lambda msg: None)
    data, name = _model_bytes(model)
    src = check_float_model(data, name)
    fp32 = Session(data, providers=["CPUExecutionProvider"], threads=threads)
    cfg = fp32.preprocess_config

    say(f"reading up to {samples} calibration images")
    x_cal, _, skipped = load_images(calibration, cfg, limit=samples, seed=seed, threads=fp32.threads)
    if len(x_cal) < MIN_CALIBRATION_IMAGES:
        shown = "; ".join(f"{s}: {r}" for s, r in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise ValueError(f"calibration {_describe_sources(calibration)}: {len(x_cal)} readable images, at least "
                         f"{MIN_CALIBRATION_IMAGES} are needed" + (f" ({len(skipped)} unreadable: {shown})"
                                                                     if skipped else ""))

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    excluded = list(dict.fromkeys(nodes_to_exclude or []))
    out = os.fspath(out)
    with tempfile.TemporaryDirectory(prefix="pyimgcls-quant-") as tmp:
        src_path = os.path.join(tmp, "fp32.onnx")
        prep_path = os.path.join(tmp, "fp32.prep.onnx")
        q_path = os.path.join(tmp, "int8.onnx")
        with open(src_path, "wb") as f:
            f.write(data)
        say("ONNX Runtime pre-processing (shape inference, graph optimisation)")
        try:
            quant_pre_process(src_path, prep_path, skip_symbolic_shape=True)  # sympy: see the module doc
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's many error types, one message
            raise ValueError(f"ONNX Runtime cannot prepare {name} for quantization: {_last_line(e)}") from None
        # the optimiser keeps the names of the nodes it keeps; fused or folded ones vanish
        import onnx

        prep_names = [n.name for n in onnx.load(prep_path, load_external_data=False).graph.node]
        excluded = _resolve_nodes(excluded, prep_names, name)
        say(f"calibrating ({method}, {len(x_cal)} images) and quantizing")
        reader = _reader_class()(fp32.info.input_name, x_cal)
        # the activations of a few batches at a time, whatever the method: bounded memory
        extra = {"CalibStridedMinMax": _stride(len(reader))}
        if method == "percentile":
            extra["CalibPercentile"] = percentile
        extra.update(extra_options or {})
        kw = {}
        if calibration_cache is not None:
            import inspect

            if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
                raise ValueError("calibration_cache needs an onnxruntime whose quantize_static takes "
                                 "calibration_cache_path (a newer onnxruntime)")
            kw["calibration_cache_path"] = calibration_cache
        try:
            quantize_static(prep_path, q_path, reader,
                            quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=calib, nodes_to_exclude=excluded, extra_options=extra,
                            op_types_to_quantize=list(op_types) if op_types else None, **kw)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"ONNX Runtime cannot quantize {name}: {_last_line(e)}") from None
        qm = onnx.load(q_path)
    n_q = quantized_op_count(qm)
    if n_q == 0:
        raise ValueError(f"ONNX Runtime found nothing to quantize in {name} (no Conv, MatMul, Gemm or other "
                         f"operator it quantizes, or all of them excluded)")
    props = {p.key: p.value for p in src.metadata_props}
    import onnxruntime

    props[META_QUANTIZATION] = json.dumps({
        "format": "QDQ", "activations": "uint8", "weights": "int8", "per_channel": per_channel,
        "reduce_range": reduce_range, "method": method,
        **({"percentile": percentile} if method == "percentile" else {}),
        "samples": int(len(x_cal)), "seed": seed, "nodes_to_exclude": excluded,
        "exclude_patterns": list(nodes_to_exclude or []),
        "op_types": sorted(op_types) if op_types else "all",
        "source_sha256": hashlib.sha256(data).hexdigest(), "onnxruntime": onnxruntime.__version__})
    del qm.metadata_props[:]
    for k, v in props.items():
        qm.metadata_props.add(key=k, value=v)
    q_bytes = qm.SerializeToString()
    tmp_out = out + ".tmp"
    with open(tmp_out, "wb") as f:
        f.write(q_bytes)
    os.replace(tmp_out, out)
    report = QuantizeReport(model=name, out=out, method=method, samples=int(len(x_cal)), skipped=skipped,
                            nodes_to_exclude=excluded, quantized_ops=n_q, size_fp32_mb=len(data) / 2**20,
                            size_int8_mb=len(q_bytes) / 2**20)
    int8 = None
    if evaluation is not None or throughput_batch:
        int8 = Session(q_bytes, providers=["CPUExecutionProvider"], threads=threads)
    if evaluation is not None:
        say("comparing fp32 and int8 on the held-out images")
        x_ev, ev_src, report.eval_skipped = load_images(evaluation, cfg, limit=eval_limit, seed=seed + 1,
                                                        threads=fp32.threads, what="evaluation")
        if len(x_ev) == 0:
            raise ValueError(f"evaluation {_describe_sources(evaluation)}: no readable images")
        labels = None
        if eval_labels is not None:
            all_src = [it.source for it in iter_items(evaluation)]
            if len(eval_labels) != len(all_src):
                raise ValueError(f"eval_labels has {len(eval_labels)} entries for {len(all_src)} evaluation images")
            by_src = dict(zip(all_src, eval_labels))
            labels = [by_src[s] for s in ev_src]
        report.agreement = evaluate(fp32, int8, x_ev, labels)
    if throughput_batch:
        say(f"model-only throughput at batch {throughput_batch}")
        xb = x_cal[np.arange(throughput_batch) % len(x_cal)]
        report.batch_size = throughput_batch
        report.throughput_fp32, report.throughput_int8 = model_throughput([fp32, int8], xb)
    report.seconds = time.perf_counter() - t_start
    return report


def _resolve_nodes(wanted: Sequence[str], names: Sequence[str], model_name: str) -> list[str]:
    """Node names from ``wanted``: exact names, or shell patterns (``/_blocks.[0-2]/*``) matched
    against ``names`` (the pre-processed graph's nodes, in graph order)."""
    import fnmatch

    out: list[str] = []
    known = set(names)
    for w in wanted:
        if set("*?[") & set(w) and w not in known:
            hits = [n for n in names if fnmatch.fnmatchcase(n, w)]
            if not hits:
                raise ValueError(f"nodes_to_exclude: the pattern {w!r} matches no node of {model_name} after ONNX "
                                 f"Runtime's pre-processing")
            out.extend(hits)
        elif w in known:
            out.append(w)
        else:
            raise ValueError(f"nodes_to_exclude: no node named {w!r} in {model_name} after ONNX Runtime's "
                             f"pre-processing (a node folded or fused away has no name of its own)")
    return list(dict.fromkeys(out))


def _describe_sources(x: Any) -> str:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    if isinstance(x, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in x):
        return ", ".join(os.fspath(v) for v in x[:3]) + (" ..." if len(x) > 3 else "")
    return f"({type(x).__name__})"
