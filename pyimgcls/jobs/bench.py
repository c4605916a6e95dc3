"""``pyimgcls bench``: honest throughput and latency of a model on this machine.

Per batch size it reports

* latency of one batch with the stages run one after the other (decode -> preprocess ->
  inference -> post-process): the number of samples, min / mean / max and p50 / p90 / p99;
* throughput through the batch path ``predict`` uses (on a CPU with 2+ threads, one worker
  per core running whole batches; else the stages overlapped);
* the time of each stage per image, so the bottleneck is visible;

plus cold start (session creation and first inference), peak memory, the CPU, ONNX Runtime's
version, providers and threads. ``model_only`` times the model alone on a prepared batch, run as
the batch path runs it (one single-threaded session per core with CPU workers): the ceiling that
decoding and preprocessing can only lower. Warm-up runs are excluded; each batch
size gets at least ``iterations`` samples even when that takes longer than ``duration``.
"""

from __future__ import annotations

import itertools
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["BenchResult", "run_bench", "synthetic_jpegs"]


def synthetic_jpegs(n: int = 16, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs (smooth shapes and gradients plus sensor-like noise), mixed sizes."""
    import cv2

    rng = np.random.default_rng(seed)
    sizes = [(480, 640), (1080, 1920), (960, 1280), (720, 1280)]
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        small = rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        for _ in range(6):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(h // 16, h // 3)), c, -1)
        img = cv2.GaussianBlur(img, (0, 0), 2.0)
        img = np.clip(img.astype(np.int16) + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(buf.tobytes())
    return out


@dataclass
class BatchStats:
    batch_size: int
    throughput: float            # images/s through the overlapped pipeline (or the model alone)
    latency_ms: dict             # samples, min / mean / max, p50 / p90 / p99 of one batch, stages in sequence
    stage_ms_per_image: dict     # decode / preprocess / inference / postprocess
    batches: int
    note: str = ""


@dataclass
class BenchResult:
    model: str
    providers: list
    threads: int
    allow_spinning: bool
    images: str
    cold_start_ms: dict
    decode: str = "exact"
    mode: str = "end to end"
    cpu: str = ""
    onnxruntime: str = ""
    batches: list = field(default_factory=list)
    peak_rss_mb: float = 0.0
    notes: list = field(default_factory=list)
    precision: str = "fp32"
    batch_path: str = ""          # how the throughput runs: the CPU workers or the overlapped pipeline
    #: with ``precision="int8"``: the fp32 model measured in the same run, for the ratios
    reference: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"model      {self.model} ({self.precision})",
                 f"providers  {', '.join(self.providers)} (threads {self.threads}, "
                 f"spinning {'on' if self.allow_spinning else 'off'}), onnxruntime {self.onnxruntime}",
                 f"cpu        {self.cpu}",
                 f"images     {self.images} ({self.decode} decode)" if self.mode == "end to end"
                 else f"mode       {self.mode}: session.run on a prepared batch (no decode, no preprocessing)",
                 f"cold start session {self.cold_start_ms['session']:.1f} ms, first inference "
                 f"{self.cold_start_ms['first_inference']:.1f} ms", "",
                 "latency: one batch, stages one after the other; throughput: " + (self.batch_path or
                                                                                     "stages overlapped"), ""]
        lines.append(f"{'batch':>5}  {'img/s':>8}  {'n':>4}  {'min':>7}  {'mean':>7}  {'max':>7}  {'p50':>7}  "
                     f"{'p90':>7}  {'p99':>7}  {'decode':>7}  {'prep':>7}  {'infer':>7}  {'post':>7}")
        lines.append(f"{'':>5}  {'':>8}  {'':>4}  {'(ms per batch)':^47}  {'(ms per image)':^34}")
        for b in self.batches:
            s = b["stage_ms_per_image"]
            lat = b["latency_ms"]
            lines.append(f"{b['batch_size']:>5}  {b['throughput']:8.1f}  {lat['samples']:>4}  {lat['min']:7.2f}  "
                         f"{lat['mean']:7.2f}  {lat['max']:7.2f}  {lat['p50']:7.2f}  {lat['p90']:7.2f}  "
                         f"{lat['p99']:7.2f}  {s['decode']:7.2f}  {s['preprocess']:7.2f}  {s['inference']:7.2f}  "
                         f"{s['postprocess']:7.3f}")
        notes = list(self.notes) + [b["note"] for b in self.batches if b.get("note")]
        if self.reference is not None:
            lines += ["", f"int8 against fp32 ({self.reference['model']}), measured in this run:"]
            for b, r in zip(self.batches, self.reference["batches"]):
                lines.append(f"{b['batch_size']:>5}  throughput {b['throughput'] / r['throughput']:.2f}x "
                             f"({r['throughput']:.1f} -> {b['throughput']:.1f} img/s), latency p50 "
                             f"{r['latency_ms']['p50'] / b['latency_ms']['p50']:.2f}x, inference per image "
                             f"{r['stage_ms_per_image']['inference'] / max(1e-9, b['stage_ms_per_image']['inference']):.2f}x")
        lines.append("")
        lines.extend(f"note: {n}" for n in notes)
        lines.append(f"peak memory {self.peak_rss_mb:.0f} MB")
        return "\n".join(lines)


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 1024 / 1024


def cpu_name() -> str:
    """The CPU model, as the OS names it."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _latency(samples: list[float]) -> dict:
    a = np.asarray(samples, np.float64)
    return {"samples": int(a.size), "min": float(a.min()), "mean": float(a.mean()), "max": float(a.max()),
            "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99))}


def run_bench(model=None, *, batch_sizes=(1, 8, 32), threads: int = 0, duration: float = 3.0,
              images: str | None = None, providers="auto", fast_decode: bool = False, device: str | None = None,
              model_only: bool = False, warmup: int = 3, iterations: int = 30, preprocess=None,
              status=None, precision: str = "fp32") -> BenchResult:
    """Measures cold start, then per batch size latency, throughput and per-stage cost.

    Args:
        duration: seconds per batch size (half for latency, half for throughput); extended until
            each batch size has at least ``iterations`` latency samples.
        images: a folder (or list) of real images; default: 16 synthetic photo-like JPEGs.
        fast_decode: measure the DCT-scaled JPEG decode (answers differ a little; see
            ``Classifier.predict``) instead of the exact full decode.
        model_only: time ``session.run`` alone on a prepared batch (the ceiling).
        warmup: untimed runs per batch size.
        iterations: least number of latency samples per batch size.
        status: ``callable(str)`` told what is being measured (the CLI prints it).
        precision: ``"fp32"`` or ``"int8"`` (``Classifier(precision=...)``). With ``"int8"`` the
            fp32 model is measured too, right after on the same images, and the result carries
            it as ``reference`` with the ratios in its text.
    """
    import math

    from ..io.images import ImageDecodeError, read_image
    from ..io.sources import iter_items
    from ..preprocessing import preprocess as run_preprocess
    from ..runtime.pipeline import decode_min_size
    from ..tasks.classifier import Classifier

    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise ValueError(f"duration must be a finite number of seconds > 0, got {duration!r}")
    for name, v, lo in (("warmup", warmup, 0), ("iterations", iterations, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    say = status or (lambda msg: None)
    say("loading the model")
    t0 = time.perf_counter()
    kw = {"threads": threads, "preprocess": preprocess}
    if device is not None and providers == "auto":
        kw["device"] = device
    else:
        kw["providers"] = providers
    clf = Classifier(model, precision=precision, **kw)
    t_session = time.perf_counter() - t0
    cfg = clf.config
    if images:
        data = []
        for it in iter_items(images):
            try:
                with open(it.payload, "rb") as f:
                    raw = f.read()
                read_image(raw)  # every image must decode: the one that does not is named here
            except (OSError, TypeError, ImageDecodeError) as e:
                raise ValueError(f"--images: {it.source} cannot be used: {e}") from None
            data.append(raw)
        if not data:
            raise ValueError(f"no images found in {images}")
        desc = f"{len(data)} files from {images}"
    else:
        data = synthetic_jpegs(16)
        desc = "16 synthetic photo-like JPEGs (640x480 .. 1920x1080, quality 90)"
    min_size = decode_min_size(cfg) if fast_decode else None
    x, _ = run_preprocess([read_image(data[0], min_size=min_size)], cfg, threads=1)
    say("first inference (cold start)")
    t0 = time.perf_counter()
    clf.session.run(x)
    t_first = time.perf_counter() - t0
    import onnxruntime

    res = BenchResult(model=str(clf.model_path), providers=list(clf.session.providers), threads=clf.threads,
                      allow_spinning=clf.session.allow_spinning, images=desc,
                      decode="fast (DCT-scaled JPEG)" if fast_decode else "exact",
                      mode="model only" if model_only else "end to end", cpu=cpu_name(),
                      onnxruntime=onnxruntime.__version__,
                      cold_start_ms={"session": t_session * 1e3, "first_inference": t_first * 1e3})
    workers = clf.batch_worker_count()
    res.batch_path = (f"{workers} CPU workers, each running whole batches on one core (a single-threaded "
                      f"session)" if workers > 1 else "stages overlapped (decode and preprocess beside the model)")
    if workers > 1:
        one = clf.session.single_threaded()  # made (and warmed below) outside the timing
    if model_only and workers > 1:
        res.batch_path = f"{workers} threads each running the model on one core (as the CPU workers do)"
    sizes = [int(b) for b in batch_sizes]
    fixed = clf.session.info.batch
    if fixed is not None and sizes != [fixed]:
        res.notes.append(f"the model has a fixed batch of {fixed}: only that batch size is measured")
        sizes = [fixed]
    decoded = [read_image(b, min_size=min_size) for b in data]
    for bs in sizes:
        batch_imgs = [decoded[i % len(decoded)] for i in range(bs)]
        xb, _ = run_preprocess(batch_imgs, cfg, threads=clf.threads)
        # what one CPU worker runs: at most 2.5 MiB of input per batch (ModelTask._run_batches)
        wbs = clf.worker_batch_size(bs) if workers > 1 else bs
        xw = xb[:wbs]
        say(f"batch size {bs}: warm-up")
        for _ in range(warmup):
            clf.session.run(xb)
            if workers > 1:
                one.run(xw)
            if not model_only:
                list(clf.predict_iter([data[i % len(data)] for i in range(bs)], batch_size=bs, top_k=5,
                                      fast_decode=fast_decode))
        say(f"batch size {bs}: latency, stages one after the other")
        lat, st = [], {"decode": 0.0, "preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        n_img = 0
        t_end = time.perf_counter() + duration / 2
        k = 0
        while time.perf_counter() < t_end or k < iterations:
            a = time.perf_counter()
            if model_only:
                b_ = c = a
                logits = clf.session.run(xb)[0]
            else:
                batch = [data[(k * bs + i) % len(data)] for i in range(bs)]
                ims = [read_image(b, min_size=min_size) for b in batch]
                b_ = time.perf_counter()
                xk, _ = run_preprocess(ims, cfg, threads=clf.threads)
                c = time.perf_counter()
                logits = clf.session.run(xk)[0]
            d = time.perf_counter()
            for row in logits:
                clf.classify_logits(row, top_k=5)
            e = time.perf_counter()
            lat.append((e - a) * 1e3)
            st["decode"] += b_ - a
            st["preprocess"] += c - b_
            st["inference"] += d - c
            st["postprocess"] += e - d
            n_img += bs
            k += 1
        note = ""
        if time.perf_counter() - t_end > duration / 4:
            note = f"batch size {bs}: {iterations} latency samples took longer than --duration {duration:g} s"
        say(f"batch size {bs}: throughput, stages overlapped")
        t0 = time.perf_counter()
        seen = 0
        t_stop = t0 + duration / 2
        t_last = None
        if model_only and workers > 1:  # as the batch path runs it: one single-threaded run per core
            one = clf.session.single_threaded()
            lock = threading.Lock()
            counted = [0]
            failed: list[BaseException] = []

            def run_model():
                while True:
                    with lock:
                        if failed or (counted[0] >= bs * 4 and time.perf_counter() >= t_stop):
                            return
                        counted[0] += wbs
                    try:
                        one.run(xw)
                    except BaseException as e:  # noqa: BLE001 - raised on the calling thread
                        with lock:
                            failed.append(e)
                        return

            ts = [threading.Thread(target=run_model) for _ in range(workers)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if failed:
                raise failed[0]
            seen = counted[0]
        elif model_only:
            while seen < bs * 4 or time.perf_counter() < t_stop:
                clf.session.run(xb)
                seen += bs
        else:
            count = max(bs * 4, int(len(data) * 2))

            def stream():
                i = 0
                while True:
                    yield data[i % len(data)]
                    i += 1

            run = clf.predict_iter(itertools.islice(stream(), 10**9), batch_size=bs, top_k=5,
                                   fast_decode=fast_decode)
            for _ in run:
                seen += 1
                if seen >= count and time.perf_counter() > t_stop:
                    break
            # timed up to the last image counted: closing the run waits for the batches still under
            # way, which are not counted
            t_last = time.perf_counter()
            run.close()
        thr = seen / ((time.perf_counter() if t_last is None else t_last) - t0)
        res.batches.append(asdict(BatchStats(
            batch_size=bs, throughput=thr, latency_ms=_latency(lat),
            stage_ms_per_image={k2: v * 1e3 / n_img for k2, v in st.items()}, batches=k, note=note)))
    res.precision = clf.precision
    if precision == "int8" and clf.precision != "int8":
        res.notes.append("int8 was asked for but this CPU has no VNNI: the fp32 model ran (see Classifier)")
    if precision == "int8" and clf.precision == "int8" and model is None:
        say("the fp32 model, for the ratios")
        ref = run_bench(None, batch_sizes=sizes, threads=threads, duration=duration, images=images,
                        providers=providers, fast_decode=fast_decode, device=device, model_only=model_only,
                        warmup=warmup, iterations=iterations, preprocess=preprocess, status=status)
        res.reference = ref.to_dict()
    elif precision == "int8" and model is not None:
        res.notes.append("your own int8 model: no fp32 model to compare with here (pyimgcls quantize reports it)")
    res.peak_rss_mb = _peak_rss_mb()
    return res
