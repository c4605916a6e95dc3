"""Shared pieces of the end-to-end benchmarks: a photo set and the single-thread stage costs."""

from __future__ import annotations

import time

import numpy as np


def make_photo_jpegs(d, size, n, seed=None):
    """``n`` quality-90 JPEGs of ``size`` (w, h) in folder ``d``, made from the example photos with
    crops, flips and rescales; returns their paths."""
    import cv2
    from skimage import data
    from sklearn.datasets import load_sample_images

    base = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), *load_sample_images().images]
    rng = np.random.default_rng(size[0] if seed is None else seed)
    files = []
    for i in range(n):
        img = base[i % len(base)]
        h, w = img.shape[:2]
        y0, x0 = rng.integers(0, h // 6), rng.integers(0, w // 6)
        img = img[y0: h - rng.integers(0, h // 6), x0: w - rng.integers(0, w // 6)]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_CUBIC)
        f = str(d / f"photo{i:05d}.jpg")
        cv2.imwrite(f, img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        files.append(f)
    return files


def stage_costs(clf, files, fast_decode):
    """Single-thread seconds per image of decode, preprocess and inference, each measured alone,
    the best of two passes. Images are decoded and preprocessed 8 at a time and then dropped, as
    the batch path does (keeping all of them would charge page faults of fresh memory to the
    decode); inference: the better of the worker batch, 8, and 32."""
    import numpy as np

    from pyimgcls import Classifier, preprocess, read_image
    from pyimgcls.runtime.pipeline import decode_min_size

    cfg = clf.config
    ms = decode_min_size(cfg) if fast_decode else None
    sample = files[: min(len(files), 48)]
    dec = pre = inf = float("inf")
    for _ in range(2):
        d = p = 0.0
        parts = []
        for i in range(0, len(sample), 8):
            t0 = time.thread_time()
            imgs = [read_image(f, min_size=ms) for f in sample[i:i + 8]]
            d += time.thread_time() - t0
            t0 = time.perf_counter()
            x, _ = preprocess(imgs, cfg, threads=1)
            p += time.perf_counter() - t0
            parts.append(x)
            del imgs
        dec, pre = min(dec, d / len(sample)), min(pre, p / len(sample))
    batch = np.concatenate(parts)
    one = Classifier(threads=1)
    for bs in (8, 32):
        chunks = [batch[i:i + bs] for i in range(0, len(sample), bs)]
        for c in chunks:  # warm up every batch shape (ORT plans memory per shape)
            one.session.run(c)
        for _ in range(2):
            t0 = time.perf_counter()
            for c in chunks:
                one.session.run(c)
            inf = min(inf, (time.perf_counter() - t0) / len(sample))
    return dec, pre, inf
