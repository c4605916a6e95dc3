"""``pyimgcls eval`` / ``pyimgcls.evaluate`` against scikit-learn and a plain ONNX Runtime + NumPy
pipeline, on the real Fashion-MNIST CNN and real Fashion-MNIST test images (a subset here; the full
10,000 run in benchmarks/test_bench_eval.py), plus the report files and the error paths."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

import pyimgcls
from pyimgcls.jobs import _plots
from pyimgcls.jobs._report import HtmlPage, Thumb, encode_png, png_data_uri
from pyimgcls.jobs.eval import CalibrationHistogram, match_classes, read_class_map
from _helpers import fashion

needs_fashion = pytest.mark.skipif(not fashion.available() or not os.path.isfile(fashion.MODEL),
                                   reason=fashion.SKIP_REASON)
N_SUBSET = 1500  # the default run; the whole 10,000 in the benchmark


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    """A Fashion-MNIST test subset as an ImageFolder, with the peer's logits for it."""
    if not fashion.available() or not os.path.isfile(fashion.MODEL):
        pytest.skip(fashion.SKIP_REASON)
    root = tmp_path_factory.mktemp("fmnist")
    paths, y, cmap = fashion.write_image_folder(root, N_SUBSET)
    logits = fashion.plain_logits(paths)
    return {"root": str(root), "data": os.path.join(str(root), "images"), "paths": paths, "y": y, "cmap": cmap,
            "logits": logits, "probs": fashion.softmax(logits)}


@pytest.fixture(scope="module")
def fm_report(fm, tmp_path_factory):
    out = tmp_path_factory.mktemp("fm_out")
    rep = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, class_map=fm["cmap"], out=str(out), threads=2,
                            bootstrap=200)
    return rep, str(out)


# ---------------------------------------------------------------------------- the real model
@needs_fashion
def test_accuracy_equals_plain_onnxruntime_numpy(fm, fm_report):
    rep, _ = fm_report
    pred = fm["logits"].argmax(1)
    expected = float(np.mean(pred == fm["y"]))
    assert rep.metrics["accuracy"] == expected  # exactly: the same pixels give the same answers
    assert rep.metrics["accuracy"] >= 0.87  # a subset; >= 0.89 on the full 10,000 (benchmark)
    assert rep.counts["evaluated"] == N_SUBSET and not rep.problems


@needs_fashion
def test_per_class_report_equals_scikit_learn(fm, fm_report):
    rep, _ = fm_report
    pred = fm["logits"].argmax(1)
    sk = skm.classification_report(fm["y"], pred, output_dict=True, zero_division=0)
    assert [r["name"] for r in rep.per_class] == fashion.CLASSES
    for k, r in enumerate(rep.per_class):
        s = sk[str(k)]
        assert r["precision"] == pytest.approx(s["precision"], abs=1e-12)
        assert r["recall"] == pytest.approx(s["recall"], abs=1e-12)
        assert r["f1"] == pytest.approx(s["f1-score"], abs=1e-12)
        assert r["support"] == s["support"]
    m = rep.metrics
    assert m["macro_f1"] == pytest.approx(sk["macro avg"]["f1-score"], abs=1e-12)
    assert m["weighted_precision"] == pytest.approx(sk["weighted avg"]["precision"], abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(fm["y"], pred), abs=1e-12)
    np.testing.assert_array_equal(rep.confusion, skm.confusion_matrix(fm["y"], pred))


@needs_fashion
def test_scores_equal_scikit_learn(fm, fm_report):
    """Top-k, per-class AP and ROC AUC, and the calibration bins, from the peer's probabilities."""
    rep, _ = fm_report
    p, y = fm["probs"], fm["y"]
    assert rep.metrics["top_k_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=5), abs=1e-12)
    onehot = np.eye(10, dtype=np.uint8)[y]
    # the probabilities differ from the peer's by float rounding only (softmax in float64 vs float32
    # outputs): AP and AUC within 1e-4 (a reordering of near-tied scores moves them by ~1/N)
    for k, r in enumerate(rep.per_class):
        assert r["ap"] == pytest.approx(skm.average_precision_score(onehot[:, k], p[:, k]), abs=1e-4)
        assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(onehot[:, k], p[:, k]), abs=1e-4)
    from sklearn.calibration import calibration_curve

    conf, correct = p.max(1), (p.argmax(1) == y)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=15, strategy="uniform")
    c, a, n = rep.calibration.curve()
    np.testing.assert_allclose(a[n > 0], prob_true, atol=1e-6)
    np.testing.assert_allclose(c[n > 0], prob_pred, atol=1e-6)
    ece = sum(abs(t - q) * m for t, q, m in zip(prob_true, prob_pred, n[n > 0])) / len(y)
    assert rep.metrics["ece"] == pytest.approx(ece, abs=1e-6)


@needs_fashion
def test_report_files(fm_report):
    rep, out = fm_report
    names = sorted(os.listdir(out))
    for f in ("report.json", "report.html", "confusion_matrix.png", "pr_curves.png", "f1_threshold.png",
              "calibration.png"):
        assert f in names
    d = json.load(open(os.path.join(out, "report.json")))
    assert d["metrics"]["accuracy"] == rep.metrics["accuracy"]
    assert len(d["per_class"]) == 10 and {"precision", "recall", "f1", "support", "ap"} <= set(d["per_class"][0])
    lo, hi = d["intervals_95"]["accuracy"]
    assert lo < rep.metrics["accuracy"] < hi
    assert d["thresholds"]["best_f1"]["f1"] > 0.8
    assert d["worst_confusions"][0]["count"] > 0 and d["worst_confusions"][0]["examples"]
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert html.count("data:image/png;base64,") >= 4 + 6  # plots + thumbnails
    assert "src=\"http" not in html and "src=\"file" not in html  # nothing outside the file
    assert "T-shirt/top" in html


@needs_fashion
def test_bootstrap_is_seeded(fm):
    a = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, class_map=fm["cmap"], bootstrap=50, seed=3, threads=2)
    b = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, class_map=fm["cmap"], bootstrap=50, seed=3, threads=2)
    c = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, class_map=fm["cmap"], bootstrap=50, seed=4, threads=2)
    assert a.intervals == b.intervals
    assert a.intervals != c.intervals


@needs_fashion
def test_predictions_from_score_file(fm, fm_report, tmp_path):
    rep, _ = fm_report
    out = str(tmp_path / "scores.parquet")
    pyimgcls.score(fm["data"], model=fashion.MODEL, out=out, probabilities=True, threads=2, progress=False)
    r2 = pyimgcls.evaluate(fm["data"], predictions=out, class_map=fm["cmap"], bootstrap=0)
    for k in ("accuracy", "macro_f1", "top_k_accuracy", "map", "ece"):
        assert r2.metrics[k] == pytest.approx(rep.metrics[k], abs=1e-6), k
    assert not r2.notes or all("probabilities" not in n for n in r2.notes)
    out_csv = str(tmp_path / "scores.csv")  # lists as JSON text, nullable labels: read back the same
    pyimgcls.score(fm["data"], model=fashion.MODEL, out=out_csv, probabilities=True, threads=2, progress=False)
    rc = pyimgcls.evaluate(fm["data"], predictions=out_csv, model=fashion.MODEL, class_map=fm["cmap"], bootstrap=0)
    for k in ("accuracy", "macro_f1", "top_k_accuracy", "map", "ece"):
        assert rc.metrics[k] == pytest.approx(rep.metrics[k], abs=1e-6), k
    # top-3 only and no probabilities: what top-k allows, and a note saying what is missing
    out3 = str(tmp_path / "scores3.jsonl")
    pyimgcls.score(fm["data"], model=fashion.MODEL, out=out3, top_k=3, threads=2, progress=False)
    r3 = pyimgcls.evaluate(fm["data"], predictions=out3, class_map=fm["cmap"], bootstrap=0, top_k=3,
                           out=str(tmp_path / "r3"), plots=False)
    assert "no probabilities" in (tmp_path / "r3" / "report.html").read_text(encoding="utf-8")
    assert r3.metrics["accuracy"] == rep.metrics["accuracy"]
    assert r3.metrics["top_k_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(fm["y"], fm["probs"], k=3), abs=1e-12)
    assert "map" not in r3.metrics and not r3.curves
    assert any("no probabilities" in n for n in r3.notes)
    r5 = pyimgcls.evaluate(fm["data"], predictions=out3, class_map=fm["cmap"], bootstrap=0, top_k=5)
    assert r5.metrics["top_k_accuracy"] is None and any("top-3" in n for n in r5.notes)
    # a score file from another model: refused, naming the file
    bad = tmp_path / "other_model.jsonl"
    bad.write_text(json.dumps({"path": os.path.abspath(fm["paths"][0]), "label": 2, "top_k_ids": [2],
                               "top_k_scores": [0.9], "error": None, "probabilities": [0.1] * 5}) + "\n")
    with pytest.raises(ValueError, match=r"other_model.jsonl: the row of .* has 5 probabilities, the model has 10"):
        pyimgcls.evaluate(fm["data"], predictions=str(bad), model=fashion.MODEL, class_map=fm["cmap"])
    # rows for images that are not in the dataset, and dataset images without a row
    sub = str(tmp_path / "sub.csv")
    with open(sub, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for p, y in list(zip(fm["paths"], fm["y"]))[:20]:
            w.writerow([p, fashion.CLASSES[y]])
        w.writerow([str(tmp_path / "gone.png"), "Bag"])
    r4 = pyimgcls.evaluate(sub, predictions=out, bootstrap=0)
    assert r4.counts["evaluated"] == 20
    assert r4.counts["problems"] == {"missing_file": 1, "prediction_without_label": N_SUBSET - 20}


@needs_fashion
def test_multilabel_equals_scikit_learn(fm, tmp_path):
    """Multi-label labels (';'-separated): shirts and T-shirts carry both labels; the model's
    sigmoid scores at the thresholds against scikit-learn's multilabel metrics."""
    n = 600
    pick = np.sort(np.random.default_rng(0).permutation(N_SUBSET)[:n])  # every class, in path order
    table = str(tmp_path / "ml.csv")
    T = np.zeros((n, 10), np.uint8)
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels"])
        for j, i in enumerate(pick):
            y = int(fm["y"][i])
            labs = {y} | ({0, 6} if y in (0, 6) else set())
            T[j, sorted(labs)] = 1
            w.writerow([fm["paths"][i], ";".join(fashion.CLASSES[k] for k in sorted(labs))])
    thr = [0.5] * 9 + [0.3]
    out = tmp_path / "out"
    rep = pyimgcls.evaluate(table, model=fashion.MODEL, threshold=thr, bootstrap=20, threads=2, out=str(out))
    assert rep.multi_label
    files = set(os.listdir(out))
    assert {"report.json", "report.html"} <= files and "confusion_matrix.png" not in files
    if _plots.have_matplotlib():
        assert {"pr_curves.png", "f1_threshold.png", "calibration.png"} <= files
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Hamming loss" in html and "images with the most wrong labels" in html
    S = 1 / (1 + np.exp(-fm["logits"][pick].astype(np.float64)))
    # the dataset's labels are sorted names; reorder the truth and scores to them
    order = [fashion.CLASSES.index(c) for c in sorted(fashion.CLASSES)]
    T, S = T[:, order], S[:, order]
    P = S >= np.asarray(thr)  # thresholds are given in the dataset's label order
    assert [r["name"] for r in rep.per_class] == sorted(fashion.CLASSES)
    assert rep.metrics["subset_accuracy"] == pytest.approx(skm.accuracy_score(T, P), abs=1e-12)
    assert rep.metrics["hamming_loss"] == pytest.approx(skm.hamming_loss(T, P), abs=1e-12)
    sk = skm.classification_report(T, P, output_dict=True, zero_division=0)
    assert rep.metrics["micro_f1"] == pytest.approx(sk["micro avg"]["f1-score"], abs=1e-12)
    assert rep.metrics["macro_f1"] == pytest.approx(sk["macro avg"]["f1-score"], abs=1e-12)
    for k, r in enumerate(rep.per_class):
        assert r["f1"] == pytest.approx(sk[str(k)]["f1-score"], abs=1e-12)
        assert r["ap"] == pytest.approx(skm.average_precision_score(T[:, k], S[:, k]), abs=1e-4)
        assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(T[:, k], S[:, k]), abs=1e-4)
    assert rep.metrics["map"] == pytest.approx(skm.average_precision_score(T, S, average="macro"), abs=1e-4)
    assert {"subset_accuracy", "macro_f1", "map"} <= set(rep.intervals)


# ---------------------------------------------------------------------------- datasets and class matching
def test_class_matching_by_name_id_and_map(tmp_path):
    labels = ["tench", "goldfish", "great white shark", "T-shirt/top"]
    ids = ["n01440764", "n01443537", "n01484850", "x"]
    assert match_classes(["goldfish", "n01440764", "Great_White-Shark"], labels, class_ids=ids) == [1, 0, 2]
    assert match_classes(["tee"], labels, class_map={"tee": "T-shirt/top"}) == [3]
    with pytest.raises(ValueError, match=r"2 of 3 dataset classes match no model class.*'cat', 'dog'"):
        match_classes(["tench", "cat", "dog"], labels, class_ids=ids)
    m = tmp_path / "map.tsv"
    m.write_text("# comment\nT-shirt_top\tT-shirt/top\n\"a,b\"\tc\n", encoding="utf-8")
    assert read_class_map(m) == {"T-shirt_top": "T-shirt/top", "a,b": "c"}
    (tmp_path / "map.json").write_text('{"x": "y"}')
    assert read_class_map(tmp_path / "map.json") == {"x": "y"}
    (tmp_path / "bad.csv").write_text("a,b,c\n")
    with pytest.raises(ValueError, match="line 1 has 3 fields"):
        read_class_map(tmp_path / "bad.csv")


@needs_fashion
def test_unmatched_classes_are_a_clear_error(fm):
    with pytest.raises(ValueError, match=r"match no model class.*'T-shirt_top'.*--class-map"):
        pyimgcls.evaluate(fm["data"], model=fashion.MODEL, bootstrap=0)


@needs_fashion
def test_problems_are_counted_and_listed(fm, tmp_path):
    from PIL import Image

    root = tmp_path / "ds"
    for c in ("Bag", "Sandal"):
        (root / c).mkdir(parents=True)
    for i in range(6):
        k = fashion.CLASSES.index("Bag" if i % 2 else "Sandal")
        src = fm["paths"][int(np.flatnonzero(fm["y"] == k)[i])]
        Image.open(src).save(root / fashion.CLASSES[k] / f"{i}.png")
    (root / "Sandal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.open(fm["paths"][0]).save(root / "stray.png")  # an image without a class folder
    (root / "Unicorn").mkdir()
    Image.open(fm["paths"][1]).save(root / "Unicorn" / "u.png")
    # the unknown class folder is listed, not an error: only the dataset's known classes are read
    from pyimgcls.io.datasets import read_image_folder

    ds = read_image_folder(root, classes=["Bag", "Sandal"])
    out = tmp_path / "out"
    rep = pyimgcls.evaluate(ds, model=fashion.MODEL, out=str(out), bootstrap=0, plots=False)
    assert rep.counts["evaluated"] == 6
    assert rep.counts["problems"] == {"unknown_class": 1, "unlabelled_image": 1, "unreadable_image": 1}
    d = json.load(open(out / "report.json"))
    kinds = {(p["kind"], os.path.basename(p["detail"].split(":")[0])) for p in d["problems"]}
    assert ("unreadable_image", "broken.png") in kinds and ("unlabelled_image", "stray.png") in kinds
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "broken.png" in html and "Unicorn" in html
    assert not (out / "confusion_matrix.png").exists()  # plots=False


@needs_fashion
def test_without_matplotlib_the_numbers_still_come(fm, tmp_path, monkeypatch):
    monkeypatch.setattr(_plots, "have_matplotlib", lambda: False)
    rep = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, class_map=fm["cmap"], out=str(tmp_path), bootstrap=0,
                            threads=2)
    assert sorted(os.listdir(tmp_path)) == ["report.html", "report.json"]
    assert any("pip install 'pyimgcls[plots]'" in n for n in rep.notes)
    assert rep.metrics["accuracy"] > 0.8
    assert "pyimgcls[plots]" in str(rep)


@needs_fashion
def test_cli(fm, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "eval", os.path.abspath(fashion.MODEL), fm["data"],
                        "--class-map", fm["cmap"], "--out", str(out), "--bootstrap", "50", "--threads", "2",
                        "--no-plots"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout and "95% CI" in r.stdout and "report.html" in r.stdout
    assert (out / "report.json").exists() and (out / "report.html").exists()
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "eval", os.path.abspath(fashion.MODEL), fm["data"]],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "T-shirt_top" in r.stderr and "--class-map" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "eval", "a", "b", "c"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "[MODEL] DATA" in r.stderr


# ---------------------------------------------------------------------------- the reusable pieces
def test_calibration_histogram_merges_and_equals_scikit_learn():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.random(5000), [0.0, 1.0, 1 / 15, 2 / 15]])  # edges land in the lower bin
    hit = (rng.random(len(conf)) < conf).astype(np.uint8)
    whole = CalibrationHistogram(15).update(conf, hit)
    parts = CalibrationHistogram(15).update(conf[:1000], hit[:1000])
    parts.merge(CalibrationHistogram(15).update(conf[1000:], hit[1000:]))
    np.testing.assert_array_equal(whole.count, parts.count)
    np.testing.assert_allclose(whole.conf_sum, parts.conf_sum)
    pt, pp = calibration_curve(hit, conf, n_bins=15, strategy="uniform")
    c, a, n = whole.curve()
    np.testing.assert_allclose(a[n > 0], pt, atol=1e-12)
    np.testing.assert_allclose(c[n > 0], pp, atol=1e-12)
    with pytest.raises(ValueError, match="confidence must be finite and in"):
        whole.update([1.5], [1])
    with pytest.raises(ValueError, match="same bins"):
        whole.merge(CalibrationHistogram(10))


def test_html_page_is_self_contained_and_escaped(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :15] = 255
    png = encode_png(img)
    assert png_data_uri(png).startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="bytes of a PNG"):
        png_data_uri(b"GIF89a")
    page = HtmlPage("a <b> & c")
    page.key_values({"x<": 1.5, "n": 3})
    page.table(["name", "v"], [["<script>", float("nan")], ["ok", 2]], caption="t")
    page.image(png, alt="plot")
    page.gallery([Thumb(png, ["line <1>"]), Thumb(None, ["unreadable"])], title="g")
    path = page.write(tmp_path / "p.html")
    text = open(path, encoding="utf-8").read()
    assert "<script>" not in text and "&lt;script&gt;" in text and "line &lt;1&gt;" in text
    assert text.count("data:image/png;base64,") == 2 and page.image_count == 2


@pytest.mark.skipif(not _plots.have_matplotlib(), reason="matplotlib not installed (pip install 'pyimgcls[plots]')")
def test_plots_return_png_and_pick_the_most_confused(tmp_path):
    m = np.diag(np.full(50, 100))
    m[3, 7] = 40
    m[7, 3] = 30
    m[10, 11] = 5
    idx = _plots.most_confused_classes(m, 3)
    assert sorted(idx.tolist()) == [3, 7, 10] or sorted(idx.tolist()) == [3, 7, 11]
    png = _plots.confusion_matrix_plot(m, [f"c{i}" for i in range(50)], path=tmp_path / "cm.png", max_classes=10)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "cm.png").read_bytes() == png
    png = _plots.scatter_plot(np.random.default_rng(0).normal(size=(100, 2)), np.arange(100) % 4 - 1)
    assert png[:4] == b"\x89PNG"
