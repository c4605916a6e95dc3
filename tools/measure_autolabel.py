"""Fashion-MNIST measurements of ``pyimgcls.AutoLabeler`` and ``pyimgcls.cluster`` (issue 16).

Labelled images and the unlabelled pool come from the first ``--pool`` images of the train split;
every measurement is on the test split. Embeddings (default model) are cached in ``--cache``.

    python tools/measure_autolabel.py --cache /tmp/fm-emb            # all measurements
    python tools/measure_autolabel.py --cache /tmp/fm-emb --only autolabel

Needs ``apt-get install -y dataset-fashion-mnist``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from _helpers import fashion  # noqa: E402


def embeddings(cache: str, split: str, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    import pyimgcls

    os.makedirs(cache, exist_ok=True)
    p, py = os.path.join(cache, f"{split}_emb.npy"), os.path.join(cache, f"{split}_y.npy")
    if os.path.exists(p) and np.load(p, mmap_mode="r").shape[0] >= n:
        return np.load(p)[:n], np.load(py)[:n], float("nan")
    x, y = fashion.load(split, n)
    t = time.perf_counter()
    e = pyimgcls.Classifier(threads=0).embed(list(x), batch_size=64)
    dt = time.perf_counter() - t
    np.save(p, e)
    np.save(py, y)
    return e, y, dt


def autolabel(xp, yp, xt, yt, seeds, per_class, review, target):
    from pyimgcls import AutoLabeler

    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        lab = np.concatenate([rng.choice(np.flatnonzero(yp == c), per_class, replace=False) for c in range(10)])
        rest = np.setdiff1d(np.arange(len(yp)), lab)
        names = [fashion.CLASSES[i] for i in yp]
        al = AutoLabeler(target_precision=target, seed=seed).fit((xp[lab], [names[i] for i in lab]))
        r = al.label(xt, truth=[fashion.CLASSES[i] for i in yt])
        base_acc = r.measured["accuracy"]
        pool = al.label(xp[rest])
        q = al.review_queue(review, pool)
        picked = rest[q.rows]
        randm = rng.choice(rest, review, replace=False)
        accs = {}
        for what, add in (("queue", picked), ("random", randm)):
            idx = np.concatenate([lab, add])
            a2 = AutoLabeler(target_precision=target, seed=seed).fit((xp[idx], [names[i] for i in idx]))
            accs[what] = a2.label(xt, truth=[fashion.CLASSES[i] for i in yt]).measured["accuracy"]
        rows.append(dict(seed=seed, precision=r.measured["precision"], coverage=r.measured["coverage"],
                         accuracy=base_acc, threshold=r.classes_report[0]["threshold"],
                         source=r.classes_report[0]["threshold_from"], C=al.C_, T=al.temperature_,
                         ece_before=al.ece_before_, ece_after=al.ece_after_, suspects=len(al.suspects_),
                         queue=accs["queue"], random=accs["random"]))
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
              flush=True)
    gain = np.mean([r["queue"] - r["random"] for r in rows])
    print(f"min precision {min(r['precision'] for r in rows):.4f}  min coverage {min(r['coverage'] for r in rows):.4f}  "
          f"mean accuracy gain of the queue over random {100 * gain:+.2f} points")
    return rows


def clustering(xt, yt, pca):
    import pyimgcls

    for m in ("kmeans", "birch", "agglomerative"):
        t = time.perf_counter()
        r = pyimgcls.cluster(xt, method=m, k=10, pca=pca, labels=list(yt))
        q = r.quality
        print(f"{m:14s} k=10 pca={pca}: ARI {q['ari']:.3f} NMI {q['nmi']:.3f} purity {q['purity']:.3f} "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
    r = pyimgcls.cluster(xt, method="kmeans", k="auto", pca=pca, labels=list(yt))
    print(r.summary())
    # for reference: the silhouette of the true classes on the sample `k="auto"` scores (same rows, same PCA)
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    from pyimgcls.jobs._embeddings import l2_normalize
    from pyimgcls.jobs.cluster import AUTO_K_SAMPLE

    f = l2_normalize(xt)
    if pca:
        f = PCA(pca, random_state=0).fit(f).transform(f).astype(np.float32)
    take = np.sort(np.random.default_rng(0).choice(len(f), min(len(f), AUTO_K_SAMPLE), replace=False))
    print(f"silhouette of the true classes on that sample: {silhouette_score(f[take], yt[take]):.3f}")


def speed(cache, n):
    """Head fit + calibration on n x 1280 embeddings against embedding those n images, one run."""
    import pyimgcls
    from pyimgcls import AutoLabeler

    x, y = fashion.load("train", n)
    clf = pyimgcls.Classifier(threads=0)
    clf.embed(list(x[:64]))  # warm-up
    t = time.perf_counter()
    e = clf.embed(list(x), batch_size=64)
    t_embed = time.perf_counter() - t
    t = time.perf_counter()
    AutoLabeler().fit((e, [fashion.CLASSES[i] for i in y]))
    t_fit = time.perf_counter() - t
    print(f"{n} images: embedding {t_embed:.1f} s, head fit + calibration {t_fit:.1f} s, ratio {t_fit / t_embed:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/tmp/pyimgcls-fashion-emb")
    ap.add_argument("--pool", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.90)
    ap.add_argument("--review", type=int, default=100)
    ap.add_argument("--pca", type=int, default=64)
    ap.add_argument("--speed-images", type=int, default=10000)
    ap.add_argument("--only", choices=["autolabel", "cluster", "speed"], default=None)
    a = ap.parse_args()
    if not fashion.available():
        sys.exit("Fashion-MNIST is not installed: apt-get install -y dataset-fashion-mnist")
    xt, yt, _ = embeddings(a.cache, "t10k", 10000)
    if a.only in (None, "autolabel"):
        xp, yp, _ = embeddings(a.cache, "train", a.pool)
        autolabel(xp, yp, xt, yt, range(a.seeds), 10, a.review, a.target)
    if a.only in (None, "cluster"):
        clustering(xt, yt, a.pca)
    if a.only in (None, "speed"):
        speed(a.cache, a.speed_images)


if __name__ == "__main__":
    main()
