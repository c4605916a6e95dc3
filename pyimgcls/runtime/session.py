"""ONNX Runtime sessions: provider selection, one thread budget, model introspection, metadata.

Self-describing models carry their preprocessing and class names in ``metadata_props``:
``pyimgcls.preprocess`` (JSON of ``PreprocessConfig``), ``pyimgcls.labels`` (JSON list) and
``pyimgcls.output`` (``"logits"`` or ``"probabilities"``) and, for detectors, ``pyimgcls.detector``
(JSON: ``layout``, ``conf``, ``iou``, ``max_det``); ``annotate_model`` writes them.
"""

from __future__ import annotations

import copy
import ctypes
import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..preprocessing import PreprocessConfig
from .threads import resolve_threads

__all__ = ["DeviceUnavailableError", "Session", "ModelInfo", "annotate_model", "available_providers", "detector_settings",
           "duplicate_onnxruntime", "output_classes", "parse_device", "quantized_op_count"]

log = logging.getLogger("pyimgcls")

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
              "tensor(double)": "float64", "tensor(int64)": "int64", "tensor(int32)": "int32"}
META_PREPROCESS = "pyimgcls.preprocess"
META_LABELS = "pyimgcls.labels"
META_OUTPUT = "pyimgcls.output"
META_CLASS_IDS = "pyimgcls.class_ids"
META_DETECTOR = "pyimgcls.detector"
DETECTOR_LAYOUTS = ("v5", "v8", "end2end")
META_QUANTIZATION = "pyimgcls.quantization"
#: operators that only a quantized model holds
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                           "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd", "QLinearMul",
                           "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearConcat", "QLinearAveragePool",
                           "MatMulNBits"})
#: ONNX Runtime graph transformers pyimgcls turns off. ``WeightBiasQuantization`` quantizes the
#: float weights of a node that sits between DequantizeLinear and QuantizeLinear, per tensor: that
#: undoes ``nodes_to_exclude`` (a node kept in float on purpose) and, on a depthwise Conv, costs
#: most of the model's accuracy (measured: top-1 agreement 49% instead of 80% with the embedded
#: model's depthwise Convs kept in float). Without it such a node runs in float, as the file says.
DISABLED_OPTIMIZERS = ["WeightBiasQuantization"]


def quantized_op_count(model) -> int:
    """Number of quantization operators (``QUANTIZED_OPS``) in an ``onnx.ModelProto``'s main graph."""
    return sum(n.op_type in QUANTIZED_OPS for n in model.graph.node)


def _ort():
    import onnxruntime

    return onnxruntime


def _cuda_driver_present() -> bool:
    """True when the NVIDIA driver library loads: without it the GPU providers cannot work."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


_PRELOADED = False


def _preload_cuda_libraries() -> None:
    """Loads CUDA / cuDNN from the NVIDIA pip packages (``pip install "pyimgcls[gpu]"``) when they
    are there, so the CUDA provider finds them without LD_LIBRARY_PATH (onnxruntime >= 1.21)."""
    global _PRELOADED
    if _PRELOADED:
        return
    _PRELOADED = True
    preload = getattr(_ort(), "preload_dlls", None)
    if preload is None:
        return
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            preload()
    except Exception:  # noqa: BLE001 - absent libraries just mean the provider will not load
        pass


class DeviceUnavailableError(RuntimeError):
    """An explicitly requested device (``device="cuda"``, ``"tensorrt"``) cannot run here; the
    message says why. Only ``device="auto"`` falls back to the CPU."""


_DEVICE_PROVIDERS = {"cpu": ["CPUExecutionProvider"],
                     "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
                     "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"tensorrt"``, ``"tensorrt:N"`` or ``"auto"`` ->
    ``(kind, device_id)``; case-insensitive."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda:0' or 'auto', got {type(device).__name__}")
    d = device.strip().lower()
    kind, _, idx = d.partition(":")
    if kind not in ("auto", *_DEVICE_PROVIDERS) or (idx and (kind in ("auto", "cpu") or not idx.isdigit())):
        raise ValueError(f"device must be one of auto, cpu, cuda, cuda:N, tensorrt, tensorrt:N; got {device!r}")
    return kind, int(idx) if idx else 0


def duplicate_onnxruntime() -> str | None:
    """A repair hint when both onnxruntime and onnxruntime-gpu are installed (they overwrite each
    other's files, and which one answers depends on install order), else ``None``."""
    from importlib import metadata

    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    if len(found) < 2:
        return None
    return (f"both {found[0]} and {found[1]} are installed; they overwrite each other's files. Keep one: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu "
            "(Linux x86-64 with an NVIDIA GPU) or pip install onnxruntime (CPU only)")


def _why_unavailable(provider: str) -> str:
    ort = _ort()
    if provider not in ort.get_available_providers():
        dup = duplicate_onnxruntime()
        return dup or (f"the installed onnxruntime has no {provider} (install onnxruntime-gpu; see README, "
                       "'Devices')")
    if not _cuda_driver_present():
        return "no NVIDIA driver (libcuda) on this machine: no usable GPU"
    return ("it failed to load: its CUDA / cuDNN libraries are missing or do not match "
            "(pip install \"pyimgcls[gpu]\" installs NVIDIA's; ONNX Runtime's log above says which)")


def available_providers() -> list[str]:
    """Providers ONNX Runtime lists, minus GPU providers on a machine without an NVIDIA driver."""
    provs = list(_ort().get_available_providers())
    if not _cuda_driver_present():
        provs = [p for p in provs if p not in _GPU_PROVIDERS]
    return provs


@dataclass(frozen=True)
class ModelInfo:
    """What a model takes and gives.

    Attributes:
        input_name: name of the image input.
        layout: ``"NCHW"`` or ``"NHWC"``.
        dtype: ``"float32"``, ``"float16"`` or ``"uint8"``.
        batch: fixed batch size, or ``None`` when dynamic.
        size: fixed ``(H, W)``, or ``None`` when dynamic.
        channels: 1 or 3.
        outputs: ``[(name, shape)]`` of the graph outputs.
        output_kind: ``"logits"`` or ``"probabilities"`` (declared in metadata or detected from a
            final Softmax / Sigmoid).
        metadata: the model's ``metadata_props``.
    """

    input_name: str
    layout: str
    dtype: str
    batch: int | None
    size: tuple[int, int] | None
    channels: int
    outputs: tuple[tuple[str, tuple], ...]
    output_kind: str
    metadata: dict


def _dim(d) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _load_bytes(model) -> bytes:
    """The serialized model; a file with external data (weights beside it) gets them loaded from
    the model file's own folder, never from the current directory."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file not found: {path}")
        with open(path, "rb") as f:
            data = f.read()
        return _inline_external_data(data, path)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    raise TypeError(f"model must be a path, bytes or an onnx.ModelProto, got {type(model).__name__}")


def _inline_external_data(data: bytes, path: str) -> bytes:
    import onnx
    from onnx.external_data_helper import (
        load_external_data_for_model,
        uses_external_data,
    )

    try:
        m = onnx.load_from_string(data)
    except Exception:  # noqa: BLE001 - not parseable here: ONNX Runtime gives the error
        return data
    if not any(uses_external_data(t) for t in m.graph.initializer):
        return data
    base = os.path.dirname(os.path.abspath(path))
    try:
        load_external_data_for_model(m, base)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot load its external data from {base}: {e}") from None
    return m.SerializeToString()


# ops that only move or reshape values: a Softmax before them still means probabilities come out
SHAPE_ONLY_OPS = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})


def _final_activation(model_bytes: bytes) -> str | None:
    """The op that computes the first output, looking back through shape-only ops."""
    try:
        import onnx

        m = onnx.load_from_string(model_bytes)
    except Exception:  # noqa: BLE001 - introspection only
        return None
    if not m.graph.output:
        return None
    producers = {o: n for n in m.graph.node for o in n.output}
    name = m.graph.output[0].name
    for _ in range(len(m.graph.node) + 1):
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type not in SHAPE_ONLY_OPS or not node.input:
            return node.op_type
        name = node.input[0]
    return None


def output_classes(shape: Sequence) -> int | None:
    """Classes of a classifier output shaped ``(N, C)`` or ``(N, C, 1, 1)``; ``None`` when ``C`` is
    not fixed in the model."""
    dims = list(shape[1:])
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return dims[0] if len(dims) == 1 and isinstance(dims[0], int) and dims[0] > 0 else None


class Session:
    """An ``onnxruntime.InferenceSession`` with provider fallback, a thread budget and introspection.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        providers: ``"auto"`` (TensorRT, then CUDA, then CPU: the first that really loads), a
            provider name, a comma-separated list, or an explicit list (honoured as given).
            TensorRT engines are cached under ``~/.cache/pyimgcls/trt``.
        device: ``"auto"`` (the same as ``providers="auto"``), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"tensorrt"`` or ``"tensorrt:N"``. An explicit device that cannot
            run is a ``DeviceUnavailableError`` saying why, never a silent CPU fallback. Give
            ``device`` or ``providers``, not both.
        threads: ONNX Runtime intra-op threads (0 or ``None`` = all usable cores, see
            ``pyimgcls.runtime.threads``); ``Session.threads`` holds the resolved number.
        allow_spinning: let ORT's idle workers spin. ``None``: off (pyimgcls' own threads
            preprocess beside the session, and spinning slows them down many times over).
        device_id: CUDA device for the GPU providers.
        default_preprocess: for tasks whose models do not follow the classifier defaults (a
            detector): ``f(info) -> (config, message)`` gives the preprocessing of a model without
            ``pyimgcls.preprocess`` metadata; ``message`` (or ``None``) says what was assumed.
    """

    def __init__(self, model, *, providers: str | Sequence[str] = "auto", threads: int | None = 0,
                 allow_spinning: bool | None = None, device_id: int = 0, device: str | None = None,
                 default_preprocess: Callable[[ModelInfo], tuple[PreprocessConfig, str | None]] | None = None) -> None:
        self._bytes = _load_bytes(model)
        self.source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "<bytes>"
        self.threads = resolve_threads(threads)
        self.allow_spinning = bool(allow_spinning) if allow_spinning is not None else False
        self._opts = self._options(self.threads)
        self._single: Session | None = None
        self._single_lock = threading.Lock()
        self._device_id = device_id
        want = None
        if device is not None:
            kind, idx = parse_device(device)
            if kind != "auto":
                if providers != "auto":
                    raise ValueError("give device= or providers=, not both")
                providers, want, self._device_id = list(_DEVICE_PROVIDERS[kind]), _DEVICE_PROVIDERS[kind][0], idx
                if want != "CPUExecutionProvider" and want not in available_providers():
                    # the CPU provider in the list only serves ops the GPU provider lacks: no fallback
                    raise DeviceUnavailableError(f"device {device!r} was asked for, but {want} cannot run here: "
                                                 f"{_why_unavailable(want)}")
        self.device = "auto" if want is None else device
        try:
            self.session = self._create(providers)
        except (ValueError, DeviceUnavailableError):
            raise
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's own exception types, named here
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            if want is not None and want != "CPUExecutionProvider":
                raise DeviceUnavailableError(f"device {device!r} cannot run {self.source}: "
                                             f"{lines[-1] if lines else type(e).__name__}") from None
            raise ValueError(f"{self.source}: ONNX Runtime cannot load this model: "
                             f"{lines[-1] if lines else type(e).__name__}") from None
        if want is not None and self.session.get_providers()[0] != want:
            raise DeviceUnavailableError(f"device {device!r} was asked for, but {want} cannot run here: "
                                         f"{_why_unavailable(want)}")
        if want is None:
            log.info("providers %s (auto)", ", ".join(self.session.get_providers()))
        self.providers: list[str] = list(self.session.get_providers())
        self.info = self._introspect()
        self.labels: list[str] | None = None
        raw = self.info.metadata.get(META_LABELS)
        if raw:
            labels = json.loads(raw)
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise ValueError(f"{META_LABELS} metadata must be a JSON list of strings")
            c = output_classes(self.info.outputs[0][1]) if self.info.outputs else None
            if c is not None and len(labels) != c:
                raise ValueError(f"{self.source}: {META_LABELS} holds {len(labels)} names but the model's output "
                                 f"{self.info.outputs[0][0]} has {c} classes")
            self.labels = labels
        self.class_ids: list[str] | None = None
        raw = self.info.metadata.get(META_CLASS_IDS)
        if raw:
            ids = json.loads(raw)
            if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
                raise ValueError(f"{META_CLASS_IDS} metadata must be a JSON list of strings")
            if self.labels is not None and len(ids) != len(self.labels):
                raise ValueError(f"{self.source}: {META_CLASS_IDS} holds {len(ids)} ids but {META_LABELS} "
                                 f"{len(self.labels)} names")
            self.class_ids = ids
        self.assumptions: list[str] = []
        self.preprocess_config = self._preprocess_config(default_preprocess)
        #: how the model was quantized (``pyimgcls.quantization`` metadata as a dict), else None
        self.quantization: dict | None = None
        raw = self.info.metadata.get(META_QUANTIZATION)
        if raw:
            try:
                q = json.loads(raw)
            except ValueError:
                q = None
            self.quantization = q if isinstance(q, dict) else {"note": raw[:200]}
        self._binding = None

    @property
    def quantized(self) -> bool:
        """True when the model is quantized: ``pyimgcls.quantization`` metadata, or quantization
        operators (``QUANTIZED_OPS``) in its graph (parsed once, on first use)."""
        if self.quantization is not None:
            return True
        if getattr(self, "_quantized_ops", None) is None:
            import onnx

            self._quantized_ops = quantized_op_count(onnx.load_from_string(self._bytes))
        return self._quantized_ops > 0

    @property
    def model_bytes(self) -> bytes:
        """The serialized ONNX model this session runs."""
        return self._bytes

    def output_dtype(self, index: int = 0) -> np.dtype:
        """NumPy dtype of graph output ``index`` (float32 where ONNX Runtime reports another type)."""
        return np.dtype(_ORT_TYPES.get(self.session.get_outputs()[index].type, "float32"))

    # ------------------------------------------------------------------ providers
    def _provider_options(self, name: str) -> dict:
        if name == "TensorrtExecutionProvider":
            # building a TensorRT engine takes minutes: keep it on disk for the next session
            cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "pyimgcls", "trt")
            return {"device_id": str(self._device_id), "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": cache}
        if name in _GPU_PROVIDERS:
            return {"device_id": str(self._device_id)}
        return {}

    def _options(self, threads: int):
        ort = _ort()
        opts = ort.SessionOptions()
        # ONNX Runtime's own log follows pyimgcls' logger: errors only, warnings at -v, all at -vv
        level = log.getEffectiveLevel()
        opts.log_severity_level = 0 if level <= logging.DEBUG else 2 if level <= logging.INFO else 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        spin = "1" if self.allow_spinning else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
        return opts

    def single_threaded(self) -> Session:
        """This model in an ONNX Runtime session that runs on the calling thread alone (intra-op
        threads 1), made on first use and kept; the session itself when ``threads`` is 1. Several
        threads may run it at once, one core each: the CPU batch path's workers
        (``runtime.pipeline.parallel_batches``). It holds its own copy of the weights."""
        if self.threads == 1:
            return self
        with self._single_lock:
            if self._single is None:
                one = copy.copy(self)
                one.threads = 1
                one._opts = self._options(1)
                one._binding = None
                one._single, one._single_lock = None, threading.Lock()
                one.session = one._try(list(self.providers))  # its own single_threaded(): itself (threads 1)
                self._single = one
        return self._single

    def _try(self, plist: list[str]):
        ort = _ort()
        return ort.InferenceSession(self._bytes, sess_options=self._opts, providers=plist,
                                    provider_options=[self._provider_options(p) for p in plist],
                                    disabled_optimizers=DISABLED_OPTIMIZERS)

    def _create(self, providers):
        ort = _ort()
        if isinstance(providers, str) and providers != "auto":
            providers = [p.strip() for p in providers.split(",") if p.strip()]  # "CUDA...,CPU..." too
        if providers == "auto":
            avail = available_providers()
            if any(g in avail for g in _GPU_PROVIDERS):
                _preload_cuda_libraries()
            for gpu in _GPU_PROVIDERS:
                if gpu not in avail:
                    continue
                log.debug("auto: trying %s", gpu)
                plist = [gpu] + (["CUDAExecutionProvider"] if gpu == "TensorrtExecutionProvider" and
                                 "CUDAExecutionProvider" in avail else []) + ["CPUExecutionProvider"]
                try:
                    s = self._try(plist)
                except Exception:  # noqa: BLE001 - a provider that fails to load is skipped quietly
                    continue
                if s.get_providers()[0] == gpu:
                    return s
                log.info("auto: %s did not load (%s); falling back", gpu, _why_unavailable(gpu))
            return self._try(["CPUExecutionProvider"])
        plist = list(dict.fromkeys(providers))  # order kept, duplicates dropped
        if any(p in _GPU_PROVIDERS for p in plist):
            _preload_cuda_libraries()
        known = set(ort.get_all_providers())
        for p in plist:
            if p not in known:
                raise ValueError(f"unknown execution provider {p!r}; known: {sorted(known)}")
        # the first provider of an explicit list is the one asked for: never a silent CPU fallback
        # (later entries only serve the operators it lacks)
        if plist and plist[0] in _GPU_PROVIDERS and plist[0] not in available_providers():
            raise DeviceUnavailableError(f"{plist[0]} was asked for but cannot run here: {_why_unavailable(plist[0])}")
        s = self._try(plist)
        if plist and s.get_providers()[0] != plist[0]:
            raise DeviceUnavailableError(f"{plist[0]} was asked for but did not load: {_why_unavailable(plist[0])}")
        return s

    # ------------------------------------------------------------------ introspection
    def _introspect(self) -> ModelInfo:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected a model with one image input, got {len(inputs)}: {[i.name for i in inputs]}")
        inp = inputs[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ValueError(f"expected a 4-d image input (N, C, H, W) or (N, H, W, C), got {inp.name} {shape}")
        dtype = _ORT_TYPES.get(inp.type)
        if dtype not in ("float32", "float16", "uint8"):
            raise ValueError(f"unsupported input type {inp.type}; expected float32, float16 or uint8")
        if _dim(shape[1]) in (1, 3):
            layout, channels, hw = "NCHW", shape[1], shape[2:4]
        elif _dim(shape[3]) in (1, 3):
            layout, channels, hw = "NHWC", shape[3], shape[1:3]
        else:
            layout, channels, hw = "NCHW", 3, shape[2:4]
        size = (hw[0], hw[1]) if _dim(hw[0]) and _dim(hw[1]) else None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        kind = meta.get(META_OUTPUT)
        if kind not in ("logits", "probabilities"):
            act = _final_activation(self._bytes)
            kind = "probabilities" if act in ("Softmax", "Sigmoid") else "logits"
        outputs = tuple((o.name, tuple(o.shape)) for o in self.session.get_outputs())
        return ModelInfo(input_name=inp.name, layout=layout, dtype=dtype, batch=_dim(shape[0]), size=size,
                         channels=int(channels), outputs=outputs, output_kind=kind, metadata=meta)

    def check_preprocess(self, cfg: PreprocessConfig, what: str = "preprocess") -> PreprocessConfig:
        """``cfg`` if the model can take what it makes (size, layout, dtype, channels), else ``ValueError``."""
        info = self.info
        if not isinstance(cfg, PreprocessConfig):
            raise TypeError(f"{what} must be a PreprocessConfig, got {type(cfg).__name__}")
        if info.size is not None and tuple(cfg.size) != info.size:
            raise ValueError(f"{what} size {cfg.size} disagrees with the model input size {info.size}")
        if cfg.layout != info.layout or cfg.dtype != info.dtype or cfg.channels != info.channels:
            raise ValueError(f"{what} ({cfg.layout}, {cfg.dtype}, {cfg.channels} channels) disagrees "
                             f"with the model input ({info.layout}, {info.dtype}, {info.channels} channels)")
        return cfg

    def _preprocess_config(self, default=None) -> PreprocessConfig:
        raw = self.info.metadata.get(META_PREPROCESS)
        info = self.info
        if raw:
            return self.check_preprocess(PreprocessConfig.from_json(raw), META_PREPROCESS)
        if default is not None:
            cfg, msg = default(info)
            if msg:
                self.assumptions.append(msg)
                warnings.warn(msg, stacklevel=4)
            return self.check_preprocess(cfg, "the model's preprocessing")
        size = info.size or (224, 224)
        cfg = PreprocessConfig(size=size, resize="center_crop", crop_pct=0.875, interpolation="bilinear_aa",
                               mean=(0.485, 0.456, 0.406)[: info.channels] if info.channels == 3 else (0.5,),
                               std=(0.229, 0.224, 0.225)[: info.channels] if info.channels == 3 else (0.5,),
                               layout=info.layout, dtype=info.dtype, channels=info.channels)
        msg = (f"model has no {META_PREPROCESS} metadata; assuming {size[0]}x{size[1]} {info.layout} {info.dtype}, "
               f"center crop 0.875, antialiased bilinear, ImageNet mean/std. Store the right one with "
               f"pyimgcls.annotate_model(src, dst, preprocess=PreprocessConfig(...)).")
        self.assumptions.append(msg)
        warnings.warn(msg, stacklevel=3)
        return cfg

    # ------------------------------------------------------------------ running
    def run(self, batch: np.ndarray, output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Runs the model on a preprocessed batch; a fixed-batch model gets the last partial batch
        padded and the padding dropped from the outputs."""
        n = batch.shape[0]
        fixed = self.info.batch
        feed = batch
        if fixed is not None and n != fixed:
            if n > fixed:
                parts = [self.run(batch[i:i + fixed], output_names) for i in range(0, n, fixed)]
                return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
            feed = np.zeros((fixed,) + batch.shape[1:], batch.dtype)
            feed[:n] = batch
        if self.providers and self.providers[0] in _GPU_PROVIDERS:
            outs = self._run_bound(feed, output_names)
        else:
            outs = self.session.run(list(output_names) if output_names else None, {self.info.input_name: feed})
        return [o[:n] for o in outs] if feed is not batch else outs

    def _run_bound(self, feed: np.ndarray, output_names: Sequence[str] | None) -> list[np.ndarray]:
        """GPU providers: IO binding, so the input is copied to the device once and the outputs are
        allocated there by ONNX Runtime and copied back once (no per-run host staging buffers)."""
        b = self.session.io_binding()
        b.bind_cpu_input(self.info.input_name, np.ascontiguousarray(feed))
        names = list(output_names) if output_names else [o.name for o in self.session.get_outputs()]
        for name in names:
            b.bind_output(name, "cuda", self._device_id)
        self.session.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()

    def describe(self) -> dict:
        """A JSON-friendly description (``pyimgcls info``)."""
        i = self.info
        meta = {k: (v if len(v) < 200 else v[:200] + "...") for k, v in i.metadata.items()}
        return {
            "source": self.source,
            "device": self.device,
            "onnxruntime": _ort().__version__,
            "install_problem": duplicate_onnxruntime(),
            "input": {"name": i.input_name, "layout": i.layout, "dtype": i.dtype, "batch": i.batch or "dynamic",
                      "size": list(i.size) if i.size else "dynamic", "channels": i.channels},
            "outputs": [{"name": n, "shape": [d if isinstance(d, int) else str(d) for d in s]} for n, s in i.outputs],
            "output_kind": i.output_kind,
            "classes": len(self.labels) if self.labels else None,
            "preprocess": json.loads(self.preprocess_config.to_json()),
            "assumed": self.assumptions,
            "providers": self.providers,
            "threads": self.threads,
            "allow_spinning": self.allow_spinning,
            "quantization": self.quantization,
            "metadata": meta,
        }


def detector_settings(value, what: str = META_DETECTOR) -> dict:
    """Checks a detector's stored settings (a dict, or its JSON text): ``layout`` (one of
    ``"v5"``, ``"v8"``, ``"end2end"``), ``conf`` and ``iou`` (in [0, 1]) and ``max_det`` (an int
    >= 1), each optional. Returns the dict; ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise ValueError(f"{what} must be JSON, got {value[:80]!r}: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object with keys layout, conf, iou, max_det; got {type(value).__name__}")
    known = {"layout", "conf", "iou", "max_det"}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    out = dict(value)
    if "layout" in out and out["layout"] not in DETECTOR_LAYOUTS:
        raise ValueError(f"{what}: layout must be one of {DETECTOR_LAYOUTS}, got {out['layout']!r}")
    for k in ("conf", "iou"):
        if k in out:
            v = out[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{what}: {k} must be a number in [0, 1], got {v!r}")
            out[k] = float(v)
    if "max_det" in out:
        v = out["max_det"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what}: max_det must be an int >= 1, got {v!r}")
    return out


def annotate_model(src, dst, *, preprocess: PreprocessConfig | None = None, labels: Sequence[str] | None = None,
                   output: str | None = None, class_ids: Sequence[str] | None = None,
                   detector: dict | None = None) -> None:
    """Writes a copy of an ONNX model with pyimgcls metadata (preprocessing, class names, output kind).

    Args:
        src: path or bytes of the model.
        dst: path to write.
        preprocess: stored as JSON under ``pyimgcls.preprocess``.
        labels: class names, stored as a JSON list under ``pyimgcls.labels``.
        output: ``"logits"`` or ``"probabilities"``, stored under ``pyimgcls.output``.
        class_ids: a stable id per class (e.g. WordNet ids ``n01440764`` for ImageNet), stored
            as a JSON list under ``pyimgcls.class_ids``; datasets whose folders are named by id
            map to the classes through them.
        detector: a detector's settings, stored as JSON under ``pyimgcls.detector``:
            ``{"layout": "v5" | "v8" | "end2end", "conf": float, "iou": float, "max_det": int}``
            (each optional; ``Detector`` uses them where its caller gives none). A detector's
            ``labels`` are its class names (the output's class count is not checked here).
    """
    import onnx

    if preprocess is not None and not isinstance(preprocess, PreprocessConfig):
        raise TypeError(f"preprocess must be a PreprocessConfig, got {type(preprocess).__name__}")
    if output is not None and output not in ("logits", "probabilities"):
        raise ValueError(f"output must be 'logits' or 'probabilities', got {output!r}")
    if detector is not None:
        detector = detector_settings(detector, "detector")
    m = onnx.load_from_string(_load_bytes(src))
    if labels is not None and m.graph.output and detector is None:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in m.graph.output[0].type.tensor_type.shape.dim]
        c = output_classes(dims) if len(dims) >= 2 else None
        if c is not None and len(labels) != c:
            raise ValueError(f"labels has {len(labels)} names but the model's output {m.graph.output[0].name} has "
                             f"{c} classes")
    props = {p.key: p.value for p in m.metadata_props}
    if preprocess is not None:
        props[META_PREPROCESS] = preprocess.to_json()
    if labels is not None:
        labels = [str(x) for x in labels]
        props[META_LABELS] = json.dumps(labels)
    if output is not None:
        props[META_OUTPUT] = output
    if detector is not None:
        props[META_DETECTOR] = json.dumps(detector)
    if class_ids is not None:
        class_ids = [str(x) for x in class_ids]
        n = len(labels) if labels is not None else len(json.loads(props.get(META_LABELS, "null") or "null") or [])
        if n and len(class_ids) != n:
            raise ValueError(f"class_ids has {len(class_ids)} entries but there are {n} class names")
        props[META_CLASS_IDS] = json.dumps(class_ids)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    with open(dst, "wb") as f:
        f.write(m.SerializeToString())
