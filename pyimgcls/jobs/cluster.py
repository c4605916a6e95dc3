"""Clustering of image embeddings: K-Means, BIRCH and agglomerative clustering (scikit-learn) on
L2-normalised embeddings, with an optional PCA, ``k="auto"`` by silhouette, quality against known
labels, and contact sheets.

Scale: the embeddings are read in chunks of ``CHUNK`` rows (a ``.npy`` file is memory-mapped),
so memory is bounded by the chunk, the PCA output (``N x pca`` float32) and the model:

* ``kmeans``: scikit-learn's ``KMeans`` when the normalised features fit in ``IN_MEMORY_BYTES``,
  else ``MiniBatchKMeans.partial_fit`` over the chunks (``EPOCHS`` passes).
* ``birch``: ``Birch(n_clusters=None).partial_fit`` over the chunks builds the CF-tree's
  subclusters; their centroids are then grouped into ``k`` clusters by Ward agglomerative
  clustering (K-Means above ``MAX_GROUPED`` subclusters), and each point takes the group of its
  nearest subcluster.
* ``agglomerative``: needs the ``n (n - 1) / 2`` pairwise distances as float64; more than
  ``max_memory`` bytes is refused with the size and a pointer to ``birch``.

Thread safety: ``cluster`` keeps no state between calls; calls may run in several threads.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ._embeddings import EmbeddingSet, l2_normalize, load_embeddings, require_sklearn

__all__ = ["Clustering", "cluster", "cluster_quality", "METHODS", "LINKAGES"]

log = logging.getLogger("pyimgcls")

METHODS = ("kmeans", "birch", "agglomerative")
LINKAGES = ("ward", "average", "complete", "single")
CHUNK = 16384
IN_MEMORY_BYTES = 1 << 30
EPOCHS = 3
MAX_GROUPED = 20000
DEFAULT_MAX_MEMORY = 4 << 30
AUTO_K_RANGE = (2, 20)
AUTO_K_SAMPLE = 5000


@dataclass
class Clustering:
    """The result of ``cluster``: one entry per embedded input.

    Attributes:
        paths: each row's input (an image's absolute path, or ``row i``).
        cluster: ``(N,)`` int64 cluster of each row, ``0 .. k-1``.
        distance: ``(N,)`` float32 Euclidean distance of each row to its cluster's centre, in the
            clustered feature space (L2-normalised, then PCA when asked).
        centers: ``(k, D')`` float32 cluster centres in that space.
        k: the number of clusters.
        method: ``"kmeans"``, ``"birch"`` or ``"agglomerative"``.
        sizes: ``(k,)`` int64 rows per cluster.
        silhouette: with ``k="auto"``, ``{k: silhouette on the sample}`` (the curve), else ``None``.
        quality: with ``labels``: ``ari``, ``nmi``, ``homogeneity``, ``completeness``, ``purity``
            and ``labelled`` (rows with a known label), else ``None``.
        majority: with ``labels``: per cluster ``(label, fraction of its labelled rows)``.
        errors: ``{input: reason}`` for inputs without an embedding (they have no row).
        settings: what was run (method, linkage, pca, seed, birch threshold, ...).
    """

    paths: list[str]
    cluster: np.ndarray
    distance: np.ndarray
    centers: np.ndarray
    k: int
    method: str
    sizes: np.ndarray
    silhouette: dict[int, float] | None = None
    quality: dict[str, float] | None = None
    majority: list[tuple[str, float]] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        q = f", ARI {self.quality['ari']:.3f}" if self.quality else ""
        return f"Clustering({self.method}, k={self.k}, {len(self.paths)} rows{q})"

    def members(self, c: int) -> np.ndarray:
        """Rows of cluster ``c``, nearest its centre first. ``(n_c,)`` int64."""
        idx = np.flatnonzero(self.cluster == c)
        return idx[np.argsort(self.distance[idx], kind="stable")]

    def write(self, path: str | os.PathLike) -> str:
        """Writes one row per input (``path``, ``cluster``, ``distance``; inputs without an
        embedding with an empty cluster and their ``error``) as ``.csv``, ``.jsonl`` or ``.parquet``."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext not in (".csv", ".jsonl", ".parquet"):
            raise ValueError(f"out must end with .csv, .jsonl or .parquet, got {path!r}")
        paths = list(self.paths) + list(self.errors)
        clusters = [int(c) for c in self.cluster] + [None] * len(self.errors)
        dists = [float(d) for d in self.distance] + [None] * len(self.errors)
        errs = [None] * len(self.paths) + list(self.errors.values())
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        if ext == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            t = pa.table({"path": pa.array(paths, pa.string()), "cluster": pa.array(clusters, pa.int64()),
                          "distance": pa.array(dists, pa.float32()), "error": pa.array(errs, pa.string())})
            pq.write_table(t, tmp)
        elif ext == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in zip(paths, clusters, dists, errs):
                    f.write(json.dumps(dict(zip(("path", "cluster", "distance", "error"), row))) + "\n")
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["path", "cluster", "distance", "error"])
                for p, c, d, e in zip(paths, clusters, dists, errs):
                    w.writerow([p, "" if c is None else c, "" if d is None else f"{d:.6g}", e or ""])
        os.replace(tmp, path)
        return path

    def summary(self) -> str:
        """A few lines for a terminal: sizes, the silhouette curve, the quality figures."""
        lines = [f"{self.method}: {len(self.paths)} images in {self.k} clusters "
                 f"(sizes {', '.join(str(int(s)) for s in self.sizes)})"]
        if self.silhouette:
            best = max(self.silhouette, key=self.silhouette.get)
            lines.append("silhouette by k (sample): " + "  ".join(
                f"{k}:{v:.3f}{'*' if k == best else ''}" for k, v in sorted(self.silhouette.items())))
        if self.quality:
            q = self.quality
            lines.append(f"against labels ({q['labelled']} labelled): ARI {q['ari']:.3f}  NMI {q['nmi']:.3f}  "
                         f"homogeneity {q['homogeneity']:.3f}  completeness {q['completeness']:.3f}  "
                         f"purity {q['purity']:.3f}")
        if self.majority:
            lines.append("majority label per cluster: " + "; ".join(
                f"{c}: {lab} ({frac:.0%})" for c, (lab, frac) in enumerate(self.majority)))
        if self.errors:
            lines.append(f"{len(self.errors)} inputs without an embedding (first: {next(iter(self.errors))})")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- features
class _Features:
    """L2-normalised (and PCA-projected) rows of the embeddings, in memory or chunk by chunk."""

    def __init__(self, vectors: np.ndarray, pca: int | None, seed: int) -> None:
        self.raw = vectors
        self.n = int(vectors.shape[0])
        self.pca = None
        if pca is not None:
            from sklearn.decomposition import PCA

            d = int(vectors.shape[1])
            if not 1 <= pca <= min(d, self.n):
                raise ValueError(f"pca must be between 1 and min(dimension {d}, rows {self.n}), got {pca}")
            rng = np.random.default_rng(seed)
            take = np.sort(rng.choice(self.n, min(self.n, 50000), replace=False))
            self.pca = PCA(pca, random_state=seed).fit(l2_normalize(vectors[take]))
        self.dim = pca if pca is not None else int(vectors.shape[1])
        self.data: np.ndarray | None = None
        if self.n * self.dim * 4 <= IN_MEMORY_BYTES:
            self.data = np.empty((self.n, self.dim), np.float32)
            for s, x in self._compute():
                self.data[s:s + len(x)] = x

    def _compute(self) -> Iterator[tuple[int, np.ndarray]]:
        for s in range(0, self.n, CHUNK):
            x = l2_normalize(self.raw[s:s + CHUNK])
            if self.pca is not None:
                x = self.pca.transform(x).astype(np.float32)
            yield s, x

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.data is not None:
            for s in range(0, self.n, CHUNK):
                yield s, self.data[s:s + CHUNK]
        else:
            yield from self._compute()

    def rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if self.data is not None:
            return self.data[idx]
        x = l2_normalize(self.raw[np.sort(idx)])
        x = x[np.argsort(np.argsort(idx))]
        return self.pca.transform(x).astype(np.float32) if self.pca is not None else x


# ----------------------------------------------------------------------------- methods
def _kmeans(f: _Features, k: int, seed: int):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if f.data is not None and f.n <= 200_000:
        km = KMeans(k, n_init=3, random_state=seed).fit(f.data)
        return km.cluster_centers_.astype(np.float32), None
    mb = MiniBatchKMeans(k, batch_size=4096, random_state=seed, n_init=3)
    for _ in range(EPOCHS):
        for _, x in f.chunks():
            if len(x) >= k:
                mb.partial_fit(x)
    return mb.cluster_centers_.astype(np.float32), None


def _auto_threshold(f: _Features, seed: int) -> float:
    """BIRCH radius from the data: the median nearest-neighbour distance in a sample."""
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(seed)
    take = rng.choice(f.n, min(f.n, 2000), replace=False)
    x = f.rows(take)
    d = pairwise_distances(x)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def _birch(f: _Features, k: int, seed: int, threshold: float | None):
    from sklearn.cluster import AgglomerativeClustering, Birch, KMeans

    t = _auto_threshold(f, seed) if threshold is None else float(threshold)
    b = Birch(threshold=t, n_clusters=None, branching_factor=50)
    for _, x in f.chunks():
        b.partial_fit(x)
    sub = b.subcluster_centers_.astype(np.float32)
    if len(sub) < k:
        raise ValueError(f"BIRCH found only {len(sub)} subclusters for k={k}: lower birch_threshold (now {t:.4g})")
    if len(sub) <= MAX_GROUPED:
        group = AgglomerativeClustering(k, linkage="ward").fit_predict(sub)
    else:
        group = KMeans(k, n_init=2, random_state=seed).fit_predict(sub)
    return sub, group.astype(np.int64), t


def _pair_bytes(n: int) -> int:
    return 8 * n * (n - 1) // 2


def _gib(b: float) -> str:
    return f"{b / (1 << 30):,.1f} GiB"


def _agglomerative(f: _Features, k: int, linkage: str, max_memory: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    need = _pair_bytes(f.n)
    if need > max_memory or f.data is None:
        raise MemoryError(f"agglomerative clustering of {f.n:,} points needs their {f.n * (f.n - 1) // 2:,} pairwise "
                          f"distances, {_gib(need)} as float64, more than the {_gib(max_memory)} allowed "
                          f"(max_memory / --max-memory); use method='birch' (--method birch), which groups BIRCH "
                          f"subclusters agglomeratively in bounded memory")
    metric = "euclidean" if linkage == "ward" else "cosine"
    return AgglomerativeClustering(k, linkage=linkage, metric=metric).fit_predict(f.data).astype(np.int64)


def _assign(f: _Features, centers: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    """Nearest centre (or nearest subcluster's group) of every row, chunk by chunk."""
    from sklearn.metrics import pairwise_distances_argmin

    out = np.empty(f.n, np.int64)
    for s, x in f.chunks():
        j = pairwise_distances_argmin(x, centers)
        out[s:s + len(x)] = j if group is None else group[j]
    return out


def _means_and_distances(f: _Features, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sums = np.zeros((k, f.dim), np.float64)
    for s, x in f.chunks():
        np.add.at(sums, labels[s:s + len(x)], x)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    centers = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return centers, _distances(f, labels, centers)


def _distances(f: _Features, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d = np.empty(f.n, np.float32)
    for s, x in f.chunks():
        d[s:s + len(x)] = np.linalg.norm(x - centers[labels[s:s + len(x)]], axis=1)
    return d


def _auto_k(f: _Features, k_range: tuple[int, int], seed: int, sample: int) -> dict[int, float]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    lo, hi = k_range
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(f.n, min(f.n, sample), replace=False))
    x = f.rows(take)
    hi = min(hi, len(x) - 1)
    if hi < lo:
        raise ValueError(f"k='auto' needs more than {lo} rows, got {f.n}")
    curve = {}
    for k in range(lo, hi + 1):
        lab = KMeans(k, n_init=2, random_state=seed).fit_predict(x)
        curve[k] = float(silhouette_score(x, lab)) if len(np.unique(lab)) > 1 else -1.0
    return curve


# ----------------------------------------------------------------------------- quality
def cluster_quality(clusters: np.ndarray, truth: Sequence, k: int | None = None) -> tuple[dict, list]:
    """Agreement of a clustering with known labels (rows whose label is ``None`` are left out).

    Args:
        clusters: ``(N,)`` int cluster ids.
        truth: ``(N,)`` labels (any hashable values; ``None`` = unknown).
        k: number of clusters (default ``clusters.max() + 1``).

    Returns:
        ``(quality, majority)``: scikit-learn's ``adjusted_rand_score`` (``ari``),
        ``normalized_mutual_info_score`` (``nmi``), ``homogeneity_score``, ``completeness_score``,
        the purity (the fraction of rows in their cluster's majority label) and ``labelled``;
        and per cluster ``(majority label, its fraction)`` (``("", nan)`` for a cluster without
        labelled rows).
    """
    from sklearn import metrics as skm

    clusters = np.asarray(clusters, np.int64)
    if len(truth) != len(clusters):
        raise ValueError(f"truth has {len(truth)} labels for {len(clusters)} rows")
    known = np.asarray([t is not None for t in truth], bool)
    if not known.any():
        raise ValueError("no row has a known label")
    t = [str(x) for x, ok in zip(truth, known) if ok]
    c = clusters[known]
    names, tid = np.unique(np.asarray(t, dtype=object).astype(str), return_inverse=True)
    k = int(clusters.max()) + 1 if k is None else k
    table = np.zeros((k, len(names)), np.int64)
    np.add.at(table, (c, tid), 1)
    q = {"ari": float(skm.adjusted_rand_score(tid, c)), "nmi": float(skm.normalized_mutual_info_score(tid, c)),
         "homogeneity": float(skm.homogeneity_score(tid, c)), "completeness": float(skm.completeness_score(tid, c)),
         "purity": float(table.max(axis=1).sum() / table.sum()), "labelled": int(known.sum())}
    majority = [(str(names[r.argmax()]), float(r.max() / r.sum())) if r.sum() else ("", float("nan")) for r in table]
    return q, majority


def _read_truth(labels: Any, paths: list[str]) -> list:
    """Labels for ``paths`` from a label table (path, label) or a sequence / mapping."""
    if isinstance(labels, dict):
        return [labels.get(p) for p in paths]
    if isinstance(labels, (str, os.PathLike)):
        from ..io.datasets import read_label_table

        ds = read_label_table(labels)
        if ds.multi_label:
            raise ValueError(f"{labels}: cluster quality needs one label per image; the table is multi-label")
        if ds.problems:
            log.warning("%s: %d rows not used (first: %s %s)", labels, len(ds.problems), *ds.problems[0])
        m = {os.path.abspath(p): ds.classes[int(y)] for p, y in zip(ds.paths, ds.labels)}
        out = [m.get(p) for p in paths]
        if not any(x is not None for x in out):
            raise ValueError(f"{labels}: none of its paths is among the clustered images")
        return out
    seq = list(labels)
    if len(seq) != len(paths):
        raise ValueError(f"labels has {len(seq)} entries for {len(paths)} rows")
    return seq


# ----------------------------------------------------------------------------- the job
def cluster(data: Any, *, method: str = "kmeans", k: int | str = 10, pca: int | None = None,
            linkage: str = "ward", labels: Any = None, out: str | os.PathLike | None = None,
            sheets: str | os.PathLike | None = None, model=None, classifier=None, cache: str | None = None,
            seed: int = 0, k_range: tuple[int, int] = AUTO_K_RANGE, auto_k_sample: int = AUTO_K_SAMPLE,
            birch_threshold: float | None = None, max_memory: int = DEFAULT_MAX_MEMORY, batch_size: int = 32,
            threads: int = 0) -> Clustering:
    """Clusters images by their embeddings.

    Args:
        data: images (folders, files, ``@LIST``), an embeddings file (``.npy``, or a ``score
            --embeddings`` output), an ``(N, D)`` array, or an ``EmbeddingSet``.
        method: ``"kmeans"``, ``"birch"`` or ``"agglomerative"``.
        k: number of clusters, or ``"auto"``: the ``k`` in ``k_range`` with the best silhouette
            of K-Means on a sample of ``auto_k_sample`` rows (the curve is in ``silhouette``).
        pca: project the normalised embeddings to this many dimensions first (fitted on up to
            50,000 rows); ``None``: no projection.
        linkage: agglomerative only: ``ward`` (Euclidean) or ``average`` / ``complete`` /
            ``single`` (cosine distance).
        labels: known labels for the quality figures: a label table (``path,label``), a
            ``{path: label}`` mapping, or one label per row.
        out: also write one row per input here (``.csv``, ``.jsonl``, ``.parquet``); the image
            embeddings are cached beside it (``OUT.embcache/``) unless ``cache`` is given.
        sheets: also write one contact-sheet PNG per cluster and ``index.html`` into this folder.
        model / classifier: what embeds images (default: the embedded EfficientNet-Lite0).
        cache: folder of the embedding cache (default: beside ``out``; none without ``out``).
        seed: seed of every random choice (samples, K-Means initialisation).
        birch_threshold: BIRCH subcluster radius in the normalised space (default: the
            median nearest-neighbour distance in a 2,000-row sample).
        max_memory: bytes the agglomerative distance matrix may take.

    Returns:
        ``Clustering``.

    Raises:
        ValueError: an unknown method / linkage, bad ``k``, an empty set.
        MemoryError: agglomerative clustering that would need more than ``max_memory``.
    """
    require_sklearn("pyimgcls.cluster")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if not (k == "auto" or (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1)):
        raise ValueError(f"k must be a positive int or 'auto', got {k!r}")
    lo, hi = (int(v) for v in k_range)
    if not 2 <= lo <= hi:
        raise ValueError(f"k_range must be (lo, hi) with 2 <= lo <= hi, got {k_range!r}")
    if cache is None and out is not None:
        cache = os.fspath(out) + ".embcache"
    es: EmbeddingSet = load_embeddings(data, classifier=classifier, model=model, cache=cache,
                                       batch_size=batch_size, threads=threads, progress=True)
    n = len(es)
    if n == 0:
        raise ValueError("no embeddings to cluster" + (f" ({len(es.errors)} inputs failed, first: "
                                                       f"{next(iter(es.errors.items()))})" if es.errors else ""))
    bad = None
    for s in range(0, n, CHUNK):
        ok = np.isfinite(es.vectors[s:s + CHUNK]).all(axis=1)
        if not ok.all():
            bad = s + int(np.flatnonzero(~ok)[0])
            break
    if bad is not None:
        raise ValueError(f"embedding of {es.paths[bad]} has NaN or infinite values")
    f = _Features(es.vectors, pca, seed)
    curve = None
    if k == "auto":
        curve = _auto_k(f, (lo, hi), seed, auto_k_sample)
        k = max(curve, key=curve.get)
    k = int(k)
    if k > n:
        raise ValueError(f"k={k} is more than the {n} rows")
    settings: dict[str, Any] = {"method": method, "k": k, "pca": pca, "seed": seed, "rows": n}
    if method == "kmeans":
        centers, _ = _kmeans(f, k, seed)
        lab = _assign(f, centers, None)
        dist = _distances(f, lab, centers)
    elif method == "birch":
        sub, group, t = _birch(f, k, seed, birch_threshold)
        settings.update(birch_threshold=t, subclusters=len(sub))
        lab = _assign(f, sub, group)
        centers, dist = _means_and_distances(f, lab, k)
    else:
        settings["linkage"] = linkage
        lab = _agglomerative(f, k, linkage, max_memory)
        centers, dist = _means_and_distances(f, lab, k)
    res = Clustering(paths=es.paths, cluster=lab, distance=dist, centers=centers, k=k, method=method,
                     sizes=np.bincount(lab, minlength=k).astype(np.int64), silhouette=curve, errors=dict(es.errors),
                     settings=settings)
    if labels is not None:
        res.quality, res.majority = cluster_quality(lab, _read_truth(labels, es.paths), k)
    if out is not None:
        res.write(out)
    if sheets is not None:
        write_sheets(res, sheets)
    return res


# ----------------------------------------------------------------------------- contact sheets
def _tile(path: str, side: int) -> np.ndarray:
    import cv2

    from ..io.images import read_image

    tile = np.full((side, side, 3), 255, np.uint8)
    try:
        img = read_image(path)
    except Exception:  # noqa: BLE001 - an unreadable image shows as a grey tile
        tile[:] = 200
        return tile
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    s = side / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
    r = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    y, x = (side - r.shape[0]) // 2, (side - r.shape[1]) // 2
    tile[y:y + r.shape[0], x:x + r.shape[1]] = r
    return tile


def _sheet(paths: list[str], outliers: list[str], title: str, side: int, cols: int) -> np.ndarray:
    import cv2

    gap, head = 4, 28

    def grid(ps: list[str]) -> np.ndarray:
        rows = max(1, -(-len(ps) // cols))
        g = np.full((rows * (side + gap) + gap, cols * (side + gap) + gap, 3), 255, np.uint8)
        for i, p in enumerate(ps):
            r, c = divmod(i, cols)
            g[gap + r * (side + gap):gap + r * (side + gap) + side, gap + c * (side + gap):gap + c * (side + gap) + side] \
                = _tile(p, side)
        return g

    def label(text: str, width: int) -> np.ndarray:
        b = np.full((head, width, 3), 255, np.uint8)
        cv2.putText(b, text, (gap, head - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        return b

    parts = [grid(paths)]
    width = parts[0].shape[1]
    out = [label(title, width), parts[0]]
    if outliers:
        out += [label("outliers (farthest from the centre)", width), grid(outliers)]
    return np.concatenate(out, axis=0)


def write_sheets(res: Clustering, folder: str | os.PathLike, *, per_cluster: int = 32, outliers: int = 8,
                 side: int = 96, cols: int = 8) -> list[str]:
    """One contact sheet per cluster (``cluster_000.png``: the ``per_cluster`` images nearest its
    centre, then its ``outliers`` farthest) and ``index.html`` linking them; returns the PNG paths.

    Rows that are not image files (``row i`` of an array) show as grey tiles.
    """
    from ._report import HtmlPage, encode_png

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    page = HtmlPage(f"pyimgcls cluster: {res.method}, k={res.k}, {len(res.paths):,} images")
    page.key_values({"method": res.method, "clusters": res.k, "images": len(res.paths),
                     **({q: v for q, v in res.quality.items()} if res.quality else {})})
    written = []
    for c in range(res.k):
        m = res.members(c)
        near = [res.paths[i] for i in m[:per_cluster]]
        far = [res.paths[i] for i in m[per_cluster:][::-1][:outliers]][::-1] if len(m) > per_cluster else []
        title = f"cluster {c}: {len(m)} images"
        if res.majority:
            lab, frac = res.majority[c]
            title += f", majority {lab} ({frac:.0%})" if lab else ""
        png = encode_png(_sheet(near, far, title, side, cols))
        name = f"cluster_{c:03d}.png"
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(png)
        written.append(os.path.join(folder, name))
        page.heading(title, 3, anchor=f"c{c}")
        page.raw(f'<figure><img src="{html.escape(name)}" alt="{html.escape(title)}"></figure>')
    page.write(os.path.join(folder, "index.html"))
    return written
