"""Scoring on Ray Data against local ``score`` on the same images, on this one machine.

Dataset: PYIMGCLS_BENCH_IMAGES 640x480 JPEG photos (default 2000; CI uses a handful), made from the
example photos. Both sides decode in full and use the default model on all usable cores: local
``score`` with ``threads=cores``; Ray with ``ray.init(num_cpus=cores)`` and one actor sized to
the machine less the read tasks' share (``num_cpus=cores - 0.25``, so ``threads=cores``). The Ray
cluster's start is timed apart and a warm-up job runs first (worker processes started and
imports cached); the timed Ray job includes its actor's start (model load), as every job has one.

The equality check comes first: the same rows as local ``score`` (labels, scores to 1e-6).
Printed: both throughputs, the ratio (target >= 0.7x at 2,000 images or more), where Ray's time
goes (cluster start, actor start to the first row, steady state), and the default sizing
(``num_cpus=1``: one single-thread actor on a 2-CPU machine).
"""

import os
import time

import pyarrow.parquet as pq
import pytest
import ray

from _helpers.bench import make_photo_jpegs
from pyimgcls import Classifier, score
from pyimgcls.integrations.ray import score_dataset, score_to_dir
from pyimgcls.runtime.threads import usable_cores
from _helpers.ray_local import init_local_ray

N_IMAGES = int(os.environ.get("PYIMGCLS_BENCH_IMAGES", "2000"))
READ_CPUS = 0.25


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray-photos")
    make_photo_jpegs(d, (640, 480), N_IMAGES, seed=3)
    warm = tmp_path_factory.mktemp("ray-warm")
    make_photo_jpegs(warm, (640, 480), 32, seed=4)
    return d, warm


def _first_row_seconds(source, **kw):
    """Seconds from asking Ray for rows to the first row (actor start + first batch), and the total."""
    t0 = time.perf_counter()
    first = None
    n = 0
    for b in score_dataset(source, **kw).iter_batches(batch_size=None, batch_format="pyarrow"):
        if first is None and b.num_rows:
            first = time.perf_counter() - t0
            n -= b.num_rows  # rows after the first batch: the steady state
        n += b.num_rows
    return first, time.perf_counter() - t0, n


def test_ray_vs_local_score(benchmark, photo_dir, tmp_path):
    d, warm = photo_dir
    cores = usable_cores()
    t0 = time.perf_counter()
    init_local_ray(cores, tmp_path)
    t_cluster = time.perf_counter() - t0
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        actor_cpus = cores - READ_CPUS
        # warm-up: worker processes up, imports cached
        score_to_dir(str(warm), out=str(tmp_path / "warm"), num_cpus=actor_cpus, progress=False)

        clf = Classifier(threads=cores)
        local_out = str(tmp_path / "local.parquet")
        t0 = time.perf_counter()
        score([str(d)], out=local_out, classifier=clf, batch_size=64, progress=False)
        t_local = time.perf_counter() - t0

        ray_out = str(tmp_path / "ray")

        def run():
            return score_to_dir(str(d), out=ray_out, num_cpus=actor_cpus, batch_size=64, progress=False,
                                overwrite=True)

        t0 = time.perf_counter()
        summary = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
        t_ray = time.perf_counter() - t0

        # equality first: the same rows as local score
        local = pq.read_table(local_out).to_pandas().set_index("path")
        got = pq.read_table(ray_out).to_pandas().set_index("path")
        assert summary.images == N_IMAGES and len(got) == N_IMAGES and got.index.is_unique
        got = got.loc[local.index]
        assert (got["label"].to_numpy() == local["label"].to_numpy()).all()
        assert abs(got["score"].to_numpy() - local["score"].to_numpy()).max() <= 1e-6

        # where Ray's time goes: actor start + first batch, then the steady state
        first, total, n = _first_row_seconds(str(d), num_cpus=actor_cpus, batch_size=64)
        # the default sizing: num_cpus=1, one single-thread actor beside the reads
        t0 = time.perf_counter()
        score_to_dir(str(d), out=str(tmp_path / "ray-default"), batch_size=64, progress=False)
        t_default = time.perf_counter() - t0
    finally:
        ray.shutdown()

    ratio = t_local / t_ray
    benchmark.extra_info.update({
        "images": N_IMAGES, "cores": cores, "cluster_start_s": t_cluster,
        "local_img_s": N_IMAGES / t_local, "ray_img_s": N_IMAGES / t_ray, "ray_vs_local": ratio,
        "ray_first_row_s": first, "ray_steady_img_s": n / max(total - first, 1e-9),
        "ray_steady_vs_local": n / max(total - first, 1e-9) / (N_IMAGES / t_local),
        "ray_default_num_cpus_1_vs_local": t_local / t_default,
    })
    print("\n" + "\n".join(f"{k:>32}: {v:.3f}" if isinstance(v, float) else f"{k:>32}: {v}"
                           for k, v in benchmark.extra_info.items()))
    if N_IMAGES >= 2000:  # the stated protocol; a handful of images (CI) measures only the start
        assert ratio >= 0.7, benchmark.extra_info
