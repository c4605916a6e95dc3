"""Review-queue strategies compared on Fashion-MNIST (issue 16): which 100 images, labelled and
added to 100 starting labels (10 a class from the train split), raise test accuracy most.

Used to choose ``AutoLabeler.review_queue``'s method on seeds other than the five that
``tools/measure_autolabel.py`` reports (default here: 100-109), so the reported figure is not
tuned to its own seeds. Each strategy picks from the rest of the train embeddings; the gain is
the test accuracy after the round minus the mean over ``--random`` random picks (plus the draw
``measure_autolabel.py`` makes). Strategies (own implementations of the published rules):

- ``shipped``: ``AutoLabeler.review_queue`` as installed.
- ``kmeans_min_margin``: K-Means into 100 clusters, each cluster's smallest-margin image (the queue
  before the weighted K-Means).
- ``weighted_kmeans``: K-Means weighted by 1 - margin, each cluster's image nearest its centre
  (Zhdanov 2019, arXiv:1901.05954).
- ``margin``: the 100 smallest margins.
- ``kmeans_centre``: unweighted K-Means, the image nearest each centre.
- ``typiclust`` / ``typiclust_unc``: K-Means into |labelled| + 100 clusters; the largest clusters
  without a label each give their most typical image (1 / mean distance to its 20 nearest
  neighbours in the cluster; Hacohen et al. 2022), ``_unc`` multiplies typicality by 1 - margin.
- ``badge``: k-means++ seeding on the gradient embeddings (p - onehot(argmax p)) x [x, 1]
  (Ash et al. 2020).
- ``probcover``: ball radius = the largest whose balls are 95% pure under K-Means into 10
  clusters, then greedy maximum coverage of the points the labels leave uncovered (Yehuda et al. 2022).

    OMP_NUM_THREADS=1 python tools/compare_review_queues.py --cache /tmp/fm-emb --seeds 100 110

(``OMP_NUM_THREADS=1``: scikit-learn's K-Means sums in chunks per thread, so its clusters, and the
picks, can change with the thread count.)

Embeddings: ``train_emb.npy`` / ``train_y.npy`` / ``t10k_emb.npy`` / ``t10k_y.npy`` in ``--cache``
(written by ``tools/measure_autolabel.py``). Runs single-threaded where it can (about 2 minutes
a seed on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np

B = 100


def knn_mean_dist(f: np.ndarray, k: int = 20) -> np.ndarray:
    """Mean Euclidean distance of each row of ``f`` (L2-normalised) to its ``k`` nearest others."""
    k = min(k, len(f) - 1)
    out = np.empty(len(f))
    for s in range(0, len(f), 2000):
        d2 = np.maximum(2 - 2 * f[s:s + 2000] @ f.T, 0)
        d2[np.arange(len(d2)), np.arange(s, s + len(d2))] = np.inf
        out[s:s + 2000] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k]).mean(1)
    return out


def typiclust(fl, fu, seed, uncert=None):
    from sklearn.cluster import KMeans

    f = np.concatenate([fl, fu])
    k = len(fl) + B
    lab = KMeans(k, n_init=1, random_state=seed).fit_predict(f)
    ll, lu = lab[:len(fl)], lab[len(fl):]
    labelled = np.bincount(ll, minlength=k).astype(float)
    size = np.bincount(lu, minlength=k)
    picks: list[int] = []
    while len(picks) < B:
        c = np.lexsort((-size, labelled))[0]  # fewest labels first, then the largest
        m = np.flatnonzero(lu == c)
        m = m[~np.isin(m, picks)]
        if len(m) == 0:
            labelled[c] = np.inf
            continue
        t = np.ones(1) if len(m) == 1 else 1 / (knn_mean_dist(fu[m]) + 1e-12)
        picks.append(int(m[np.argmax(t if uncert is None else t * uncert[m])]))
        labelled[c] += 1
    return np.array(picks)


def badge(fu, p, seed):
    rng = np.random.default_rng(seed)
    a = p.copy()
    a[np.arange(len(p)), p.argmax(1)] -= 1
    x = np.concatenate([fu, np.ones((len(fu), 1), fu.dtype)], 1)
    gn = (a * a).sum(1) * (x * x).sum(1)  # |a (x) x|^2 = |a|^2 |x|^2

    def d2_to(c):
        return np.maximum(gn + gn[c] - 2 * (a @ a[c]) * (x @ x[c]), 0)

    picks = [int(np.argmax(gn))]
    d2 = d2_to(picks[0])
    while len(picks) < B:
        c = int(rng.choice(len(d2), p=d2 / d2.sum()))
        picks.append(c)
        d2 = np.minimum(d2, d2_to(c))
    return np.array(picks)


def nearest_centres(fu, seed, weight=None):
    from sklearn.cluster import KMeans

    km = KMeans(B, n_init=1, random_state=seed).fit(fu, sample_weight=weight)
    picks = []
    for c in range(B):
        m = np.flatnonzero(km.labels_ == c)
        if len(m):
            picks.append(m[np.argmin(((fu[m] - km.cluster_centers_[c]) ** 2).sum(1))])
    return np.array(picks)


def kmeans_min_margin(fu, margin, seed):
    """The queue before the weighted K-Means, as it ran: the rows in order of margin, K-Means, each
    cluster's smallest margin."""
    from sklearn.cluster import KMeans

    order = np.argsort(margin, kind="stable")
    lab = KMeans(B, n_init=1, random_state=seed).fit_predict(fu[order])
    return np.array([order[np.flatnonzero(lab == c)[np.argmin(margin[order[lab == c]])]]
                     for c in range(B) if (lab == c).any()])


def probcover(fl, fu, seed, purity=0.95, k=10):
    from sklearn.cluster import KMeans

    f = np.concatenate([fl, fu])
    n, nl = len(f), len(fl)
    km = KMeans(k, n_init=1, random_state=seed).fit_predict(f)
    rng = np.random.default_rng(seed)
    samp = rng.choice(n, 1000, replace=False)
    d = np.sqrt(np.maximum(2 - 2 * f[samp] @ f.T, 0))
    delta = 0.2
    for r in np.arange(0.2, 1.2, 0.05):
        if np.mean([np.all(km[d[i] < r] == km[samp[i]]) for i in range(len(samp))]) < purity:
            break
        delta = r
    nbrs = [np.flatnonzero(row < delta * delta) for s in range(0, n, 2000) for row in 2 - 2 * f[s:s + 2000] @ f.T]
    covered = np.zeros(n, bool)
    for i in range(nl):
        covered[nbrs[i]] = True
    deg = np.array([np.count_nonzero(~covered[v]) for v in nbrs])
    chosen = np.zeros(n, bool)
    chosen[:nl] = True
    picks = []
    for _ in range(B):
        deg[chosen] = -1
        c = int(np.argmax(deg))
        if deg[c] <= 0:
            c = int(rng.choice(np.flatnonzero(~chosen)))
        picks.append(c - nl)
        chosen[c] = True
        newly = nbrs[c][~covered[nbrs[c]]]
        covered[newly] = True
        for v in newly:  # the graph is symmetric: v's neighbours lose one uncovered neighbour
            deg[nbrs[v]] -= 1
    return np.array(picks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/tmp/pyimgcls-fashion-emb")
    ap.add_argument("--seeds", type=int, nargs=2, default=(100, 110), metavar=("FIRST", "END"))
    ap.add_argument("--random", type=int, default=3, help="extra random picks per seed for the baseline")
    a = ap.parse_args()
    logging.getLogger("pyimgcls").setLevel(logging.ERROR)  # the no-threshold warnings of 100-200 labels
    from threadpoolctl import threadpool_limits

    from pyimgcls import AutoLabeler
    from pyimgcls.jobs._embeddings import l2_normalize

    ld = lambda n: np.load(os.path.join(a.cache, n))  # noqa: E731
    xp, yp, xt, yt = ld("train_emb.npy"), ld("train_y.npy"), ld("t10k_emb.npy"), ld("t10k_y.npy")
    names = np.array([str(v) for v in yp])
    tn = [str(v) for v in yt]
    fp = l2_normalize(xp).astype(np.float32)

    def accuracy(idx, seed):
        al = AutoLabeler(seed=seed).fit((xp[idx], list(names[idx])))
        return al.label(xt, truth=tn).measured["accuracy"]

    res: dict[str, list[float]] = {}
    with threadpool_limits(1):
        for seed in range(*a.seeds):
            t0 = time.perf_counter()
            rng = np.random.default_rng(seed)  # the draws of measure_autolabel.py
            lab = np.concatenate([rng.choice(np.flatnonzero(yp == c), 10, replace=False) for c in range(10)])
            rest = np.setdiff1d(np.arange(len(yp)), lab)
            al = AutoLabeler(seed=seed).fit((xp[lab], list(names[lab])))
            pool = al.label(xp[rest])
            p, m = pool.probabilities.astype(np.float64), pool.margin
            fu, fl = fp[rest], fp[lab]
            picks = {"random_measure": rng.choice(len(rest), B, replace=False)}
            r2 = np.random.default_rng(10_000 + seed)
            for j in range(a.random):
                picks[f"random{j}"] = r2.choice(len(rest), B, replace=False)
            picks.update(shipped=al.review_queue(B, pool).rows, kmeans_min_margin=kmeans_min_margin(fu, m, seed),
                         weighted_kmeans=nearest_centres(fu, seed, 1 - m), margin=np.argsort(m)[:B],
                         kmeans_centre=nearest_centres(fu, seed), typiclust=typiclust(fl, fu, seed),
                         typiclust_unc=typiclust(fl, fu, seed, 1 - m), badge=badge(fu, p, seed),
                         probcover=probcover(fl, fu, seed))
            out = {}
            for k, v in picks.items():
                assert len(np.unique(v)) == B, k
                out[k] = accuracy(np.concatenate([lab, rest[v]]), seed)
            base = np.mean([v for k, v in out.items() if k.startswith("random")])
            for k, v in out.items():
                res.setdefault(k, []).append(100 * (v - base))
            print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): gain over the random mean, points: "
                  + " ".join(f"{k} {100 * (v - base):+.2f}" for k, v in out.items()), flush=True)
    print(f"mean over seeds {a.seeds[0]}-{a.seeds[1] - 1}:")
    for k, v in sorted(res.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"  {k:18s} {np.mean(v):+.2f}" + (f"  (sd {np.std(v, ddof=1):.2f})" if len(v) > 1 else ""))


if __name__ == "__main__":
    main()
