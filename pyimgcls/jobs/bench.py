"""``pyimgcls bench``: honest throughput and latency of a model on this machine.

Per batch size it reports end-to-end throughput through the overlapped pipeline, latency
percentiles of a batch (decode -> preprocess -> inference -> post-process, one after the other),
the time of each stage per image (so the bottleneck is visible), plus cold start (session
creation and first inference), peak memory, providers and threads. Warm-up is excluded.
"""

from __future__ import annotations

import resource
import sys
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
    throughput: float            # images/s through the overlapped pipeline
    latency_ms: dict             # p50 / p90 / p99 of one batch, stages in sequence
    stage_ms_per_image: dict     # decode / preprocess / inference / postprocess
    batches: int


@dataclass
class BenchResult:
    model: str
    providers: list
    threads: int
    allow_spinning: bool
    images: str
    cold_start_ms: dict
    decode: str = "exact"
    batches: list = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"model      {self.model}", f"providers  {', '.join(self.providers)} (threads {self.threads}, "
                 f"spinning {'on' if self.allow_spinning else 'off'})", f"images     {self.images} ({self.decode} decode)",
                 f"cold start session {self.cold_start_ms['session']:.1f} ms, first inference "
                 f"{self.cold_start_ms['first_inference']:.1f} ms", ""]
        lines.append(f"{'batch':>5}  {'img/s':>8}  {'p50 ms':>8}  {'p90 ms':>8}  {'p99 ms':>8}  "
                     f"{'decode':>7}  {'prep':>7}  {'infer':>7}  {'post':>7}  (ms per image)")
        for b in self.batches:
            s = b["stage_ms_per_image"]
            lat = b["latency_ms"]
            lines.append(f"{b['batch_size']:>5}  {b['throughput']:8.1f}  {lat['p50']:8.2f}  {lat['p90']:8.2f}  "
                         f"{lat['p99']:8.2f}  {s['decode']:7.2f}  {s['preprocess']:7.2f}  {s['inference']:7.2f}  "
                         f"{s['postprocess']:7.3f}")
        lines.append("")
        lines.append(f"peak memory {self.peak_rss_mb:.0f} MB")
        return "\n".join(lines)


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 1e6


def run_bench(model=None, *, batch_sizes=(1, 8, 32), threads: int = 0, duration: float = 3.0,
              images: str | None = None, providers="auto", fast_decode: bool = False) -> BenchResult:
    """Measures cold start, then per batch size throughput, latency and per-stage cost.

    ``fast_decode`` measures the DCT-scaled JPEG decode (answers differ a little; see
    ``Classifier.predict``) instead of the exact full decode.
    """
    import math

    from ..io.images import read_image
    from ..io.sources import iter_items
    from ..preprocessing import preprocess
    from ..runtime.pipeline import decode_min_size
    from ..tasks.classifier import Classifier

    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise ValueError(f"duration must be a finite number of seconds > 0, got {duration!r}")
    t0 = time.perf_counter()
    clf = Classifier(model, threads=threads, providers=providers)
    t_session = time.perf_counter() - t0
    cfg = clf.config
    if images:
        data = []
        for it in iter_items(images):
            with open(it.payload, "rb") as f:
                data.append(f.read())
        if not data:
            raise ValueError(f"no images found in {images}")
        desc = f"{len(data)} files from {images}"
    else:
        data = synthetic_jpegs(16)
        desc = "16 synthetic photo-like JPEGs (640x480 .. 1920x1080, quality 90)"
    min_size = decode_min_size(cfg) if fast_decode else None
    x, _ = preprocess([read_image(data[0], min_size=min_size)], cfg, threads=1)
    t0 = time.perf_counter()
    clf.session.run(x)
    t_first = time.perf_counter() - t0
    res = BenchResult(model=str(clf.model_path), providers=list(clf.session.providers), threads=clf.threads,
                      allow_spinning=clf.session.allow_spinning, images=desc,
                      decode="fast (DCT-scaled JPEG)" if fast_decode else "exact",
                      cold_start_ms={"session": t_session * 1e3, "first_inference": t_first * 1e3})
    for bs in batch_sizes:
        bs = int(bs)
        # warm-up
        batch = [data[i % len(data)] for i in range(bs)]
        list(clf.predict_iter(batch, batch_size=bs, top_k=5, fast_decode=fast_decode))
        # staged latency: one batch, stages in sequence
        lat, st = [], {"decode": 0.0, "preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        n_img = 0
        t_end = time.perf_counter() + duration / 2
        k = 0
        while time.perf_counter() < t_end or k < 3:
            batch = [data[(k * bs + i) % len(data)] for i in range(bs)]
            a = time.perf_counter()
            ims = [read_image(b, min_size=min_size) for b in batch]
            b_ = time.perf_counter()
            x, _ = preprocess(ims, cfg, threads=clf.threads)
            c = time.perf_counter()
            logits = clf.session.run(x)[0]
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
        # overlapped throughput
        count = max(bs * 4, int(len(data) * 2))

        def stream():
            i = 0
            while True:
                yield data[i % len(data)]
                i += 1

        import itertools

        t0 = time.perf_counter()
        seen = 0
        t_stop = t0 + duration / 2
        for _ in clf.predict_iter(itertools.islice(stream(), 10**9), batch_size=bs, top_k=5,
                                  fast_decode=fast_decode):
            seen += 1
            if seen >= count and time.perf_counter() > t_stop:
                break
        thr = seen / (time.perf_counter() - t0)
        res.batches.append(asdict(BatchStats(
            batch_size=bs, throughput=thr,
            latency_ms={"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                        "p99": float(np.percentile(lat, 99))},
            stage_ms_per_image={k2: v * 1e3 / n_img for k2, v in st.items()}, batches=k)))
    res.peak_rss_mb = _peak_rss_mb()
    return res
