"""pyimgcls.cluster: scikit-learn's clustering on L2-normalised embeddings, the embedding cache,
quality figures against scikit-learn's metrics, contact sheets, and the limits."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import pyimgcls
from pyimgcls.jobs import cluster as cl
from pyimgcls.jobs._embeddings import EmbeddingCache, l2_normalize, load_embeddings

sklearn = pytest.importorskip("sklearn")
from sklearn import metrics as skm  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)  # 1,797 real 8x8 digits: their pixels stand in for embeddings
    return x.astype(np.float32), y


def test_kmeans_equals_scikit_learn_on_normalised_rows(digits):
    x, y = digits
    r = pyimgcls.cluster(x, k=10, seed=3)
    ref = KMeans(10, n_init=3, random_state=3).fit(l2_normalize(x))
    assert skm.adjusted_rand_score(ref.labels_, r.cluster) == 1.0
    np.testing.assert_allclose(r.distance, np.linalg.norm(l2_normalize(x) - ref.cluster_centers_[ref.labels_], axis=1),
                               rtol=1e-5, atol=1e-6)
    assert r.sizes.sum() == len(x) and r.k == 10 and r.paths[0] == "row 0"
    # real data: clusters agree with the digit classes
    q, maj = cl.cluster_quality(r.cluster, list(y))
    assert q["ari"] > 0.5


def test_quality_matches_scikit_learn_and_purity_by_hand():
    c = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    t = ["a", "a", "b", "b", "b", "c", "c", None]
    q, maj = cl.cluster_quality(c, t, 3)
    known = [i for i, v in enumerate(t) if v is not None]
    tt = [t[i] for i in known]
    assert q["ari"] == pytest.approx(skm.adjusted_rand_score(tt, c[known]))
    assert q["nmi"] == pytest.approx(skm.normalized_mutual_info_score(tt, c[known]))
    assert q["homogeneity"] == pytest.approx(skm.homogeneity_score(tt, c[known]))
    assert q["completeness"] == pytest.approx(skm.completeness_score(tt, c[known]))
    assert q["purity"] == pytest.approx((2 + 2 + 2) / 7)
    assert q["labelled"] == 7
    assert maj == [("a", pytest.approx(2 / 3)), ("b", 1.0), ("c", 1.0)]


@pytest.mark.parametrize("method", ["birch", "agglomerative"])
def test_birch_and_agglomerative_on_real_digits(digits, method):
    x, y = digits
    r = pyimgcls.cluster(x, method=method, k=10, labels=list(y))
    assert r.quality["ari"] > 0.5, r.quality
    assert r.centers.shape == (10, 64) and np.all(r.distance >= 0)
    if method == "birch":
        assert r.settings["subclusters"] >= 10


def test_agglomerative_ward_equals_scikit_learn(digits):
    from sklearn.cluster import AgglomerativeClustering

    x, _ = digits
    r = pyimgcls.cluster(x[:500], method="agglomerative", k=6, linkage="average")
    ref = AgglomerativeClustering(6, linkage="average", metric="cosine").fit_predict(l2_normalize(x[:500]))
    assert skm.adjusted_rand_score(ref, r.cluster) == 1.0


def test_agglomerative_too_large_is_refused_with_the_size(digits):
    x, _ = digits
    with pytest.raises(MemoryError, match=r"1,797 points needs .* GiB .*birch"):
        pyimgcls.cluster(x, method="agglomerative", k=5, max_memory=1 << 20)


def test_chunked_path_bounded_memory(digits, tmp_path, monkeypatch):
    """Above IN_MEMORY_BYTES nothing is held whole: MiniBatchKMeans / BIRCH over memory-mapped chunks."""
    x, y = digits
    np.save(tmp_path / "e.npy", x)
    monkeypatch.setattr(cl, "IN_MEMORY_BYTES", 1000)
    monkeypatch.setattr(cl, "CHUNK", 256)
    seen = []
    orig = cl._Features.__init__

    def spy(self, *a, **kw):
        orig(self, *a, **kw)
        seen.append(self.data)

    monkeypatch.setattr(cl._Features, "__init__", spy)
    for method in ("kmeans", "birch"):
        r = pyimgcls.cluster(str(tmp_path / "e.npy"), method=method, k=10, labels=list(y))
        assert seen[-1] is None  # the chunked path ran
        assert r.quality["ari"] > 0.4, (method, r.quality)
    with pytest.raises(MemoryError, match="birch"):
        pyimgcls.cluster(str(tmp_path / "e.npy"), method="agglomerative", k=10)


def test_pca_and_auto_k(digits):
    x, y = digits
    r = pyimgcls.cluster(x, k="auto", pca=20, k_range=(2, 14), auto_k_sample=800, labels=list(y))
    assert sorted(r.silhouette) == list(range(2, 15))
    assert r.k == max(r.silhouette, key=r.silhouette.get)
    assert r.centers.shape[1] == 20
    assert "silhouette by k" in r.summary()


@pytest.mark.parametrize("bad, msg", [({"method": "dbscan"}, "method must be"), ({"k": 0}, "k must be"),
                                      ({"k": "many"}, "k must be"), ({"linkage": "median"}, "linkage must be"),
                                      ({"pca": 1000}, "pca must be"), ({"k_range": (1, 5)}, "k_range")])
def test_bad_arguments(digits, bad, msg):
    with pytest.raises(ValueError, match=msg):
        pyimgcls.cluster(digits[0][:100], **bad)


def test_nan_and_empty_inputs_are_named(tmp_path):
    x = np.ones((5, 4), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3 has NaN"):
        pyimgcls.cluster(x, k=2)
    with pytest.raises(ValueError, match="no embeddings"):
        pyimgcls.cluster(np.zeros((0, 4), np.float32), k=2)
    os.mkdir(tmp_path / "empty")
    with pytest.raises(ValueError, match="no images found"):
        pyimgcls.cluster(str(tmp_path / "empty"), k=2)
    with pytest.raises(FileNotFoundError, match="nothere"):
        pyimgcls.cluster(str(tmp_path / "nothere"), k=2)


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_output_rows(digits, tmp_path, ext):
    import pandas as pd

    x, _ = digits
    r = pyimgcls.cluster(x[:200], k=4, out=str(tmp_path / f"c{ext}"))
    df = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
          ".jsonl": lambda p: pd.read_json(p, lines=True)}[ext](tmp_path / f"c{ext}")
    assert list(df.columns[:3]) == ["path", "cluster", "distance"]
    assert (df["cluster"].to_numpy() == r.cluster).all()
    np.testing.assert_allclose(df["distance"].to_numpy(), r.distance, rtol=1e-5)


# ----------------------------------------------------------------------------- real images
@pytest.fixture(scope="module")
def fashion_pngs(tmp_path_factory):
    from _helpers import fashion

    if not fashion.available():
        pytest.skip("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
    x, y = fashion.load("t10k", 400)
    keep = np.concatenate([np.flatnonzero(y == c)[:8] for c in (1, 5, 8)])  # trousers, sandals, bags
    folder = tmp_path_factory.mktemp("fm")
    paths = fashion.write_pngs(str(folder / "img"), x[keep], y[keep])
    with open(folder / "labels.csv", "w") as f:
        f.write("path,label\n" + "".join(f"{p},{fashion.CLASSES[int(v)]}\n" for p, v in zip(paths, y[keep])))
    return folder, paths, y[keep]


def test_images_cluster_cache_and_sheets(fashion_pngs, tmp_path, caplog):
    folder, paths, y = fashion_pngs
    out = tmp_path / "c.csv"
    r = pyimgcls.cluster(str(folder / "img"), k=3, out=str(out), labels=str(folder / "labels.csv"),
                         sheets=str(tmp_path / "sheets"))
    assert sorted(r.paths) == sorted(paths)
    assert r.quality["ari"] > 0.8  # trousers, sandals and bags are far apart
    assert sorted(os.listdir(tmp_path / "sheets")) == ["cluster_000.png", "cluster_001.png", "cluster_002.png",
                                                        "index.html"]
    html = (tmp_path / "sheets" / "index.html").read_text()
    assert 'src="cluster_001.png"' in html
    # the embeddings equal Classifier.embed, and a second run (another method) takes them from the cache
    clf = pyimgcls.Classifier()
    es = load_embeddings(str(folder / "img"), classifier=clf, cache=str(out) + ".embcache")
    assert es.from_cache == len(paths) and es.embedded == 0
    ref = clf.embed(es.paths)
    np.testing.assert_allclose(es.vectors, ref, rtol=1e-5, atol=1e-5)
    r2 = pyimgcls.cluster(str(folder / "img"), method="birch", k=3, out=str(out), classifier=clf)
    assert r2.method == "birch"
    # an edited image is embedded again; the rest still come from the cache
    os.utime(paths[0], ns=(1, 1))
    es = load_embeddings(str(folder / "img"), classifier=clf, cache=str(out) + ".embcache")
    assert es.embedded == 1 and es.from_cache == len(paths) - 1


def test_cache_survives_partial_and_stale_files(fashion_pngs, tmp_path, caplog, monkeypatch):
    import logging

    # the command line's logging setup (run in-process by other tests) stops propagation to caplog's root handler
    # (and may have set its level to ERROR with -q): both are put back for this test
    monkeypatch.setattr(logging.getLogger("pyimgcls"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="pyimgcls")
    folder, paths, _ = fashion_pngs
    clf = pyimgcls.Classifier()
    cache = str(tmp_path / "cache")
    a = load_embeddings(paths[:5], classifier=clf, cache=cache)
    # rows written after the last index (a killed run) are cut off
    with open(os.path.join(cache, "vectors.f32"), "ab") as f:
        f.write(b"\0" * 1000)
    b = load_embeddings(paths[:5], classifier=clf, cache=cache)
    assert b.embedded == 0 and os.path.getsize(os.path.join(cache, "vectors.f32")) == 5 * 1280 * 4
    np.testing.assert_array_equal(a.vectors, b.vectors)
    # a vector file shorter than its index, an index that does not parse, another model: start afresh
    with open(os.path.join(cache, "vectors.f32"), "r+b") as f:
        f.truncate(100)
    c = load_embeddings(paths[:5], classifier=clf, cache=cache)
    assert c.embedded == 5 and "starting it afresh" in caplog.text
    with open(os.path.join(cache, "index.json"), "w") as f:
        f.write("{not json")
    assert load_embeddings(paths[:5], classifier=clf, cache=cache).embedded == 5
    with open(os.path.join(cache, "index.json")) as f:
        idx = json.load(f)
    assert EmbeddingCache(cache, "another", idx["output"]).entries == []


def test_score_embeddings_output_as_input(fashion_pngs, tmp_path):
    folder, paths, y = fashion_pngs
    clf = pyimgcls.Classifier()
    ref = dict(zip(paths, clf.embed(paths)))
    for ext in (".parquet", ".csv", ".jsonl"):
        out = str(tmp_path / f"s{ext}")
        pyimgcls.score(paths + [str(folder / "labels.csv")], out=out, embeddings=True, classifier=clf,
                       progress=False)
        es = load_embeddings(out)
        assert sorted(es.paths) == sorted(paths)
        assert list(es.errors) == [str(folder / "labels.csv")]  # not an image: an error row, no embedding
        for p, v in zip(es.paths, es.vectors):
            np.testing.assert_allclose(v, ref[p], rtol=1e-5, atol=1e-5)
        r = pyimgcls.cluster(out, k=3)
        assert len(r) == len(paths) and list(r.errors) == [str(folder / "labels.csv")]
