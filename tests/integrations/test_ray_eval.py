"""``evaluate(engine="ray")`` / ``pyimgcls eval --engine ray`` on a real local Ray (one
``ray.init(num_cpus=2)`` for the module): the model runs on Ray actors, the metric states are built per
block on the workers and merged on the driver, and report.json holds the numbers of the local run,
bit for bit (per-class report, confusion matrix, calibration, AP, bootstrap intervals; COCO 12 stats,
per-label AP), on real Fashion-MNIST images with the committed CNN and on real faces."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import ray

import pyimgcls
from pyimgcls.cli.main import main as cli_main
from pyimgcls.jobs.eval import CalibrationHistogram
from _helpers import fashion
from _helpers.ray_local import init_local_ray

N_IMAGES = 300
# two actors of one thread each, beside the read tasks: the blocks of several workers are merged
RAY_OPTS = {"num_cpus": 0.75}


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory):
    init_local_ray(2, tmp_path_factory.mktemp("ray-cwd"))
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    """300 Fashion-MNIST test images as an ImageFolder, plus one corrupt PNG (a problem to list)."""
    if not fashion.available() or not os.path.isfile(fashion.MODEL):
        pytest.skip(fashion.SKIP_REASON)
    root = tmp_path_factory.mktemp("fm-ray")
    _, _, cmap = fashion.write_image_folder(root, N_IMAGES)
    data = os.path.join(str(root), "images")
    with open(os.path.join(data, fashion.FOLDERS[3], "zz-broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    return {"data": data, "cmap": cmap}


def _numbers(report_json: str) -> dict:
    """report.json without what legitimately differs between two runs: timings, file paths, the engine."""
    with open(report_json, encoding="utf-8") as f:
        d = json.load(f)
    d.pop("seconds")
    d.pop("files")
    assert d["settings"].pop("engine") in ("local", "ray")
    return d


KW = dict(class_map=None, batch_size=16, bootstrap=200, seed=3, plots=False)


@pytest.fixture(scope="module")
def local_classify(fm, tmp_path_factory):
    out = tmp_path_factory.mktemp("fm-local")
    rep = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, out=str(out), threads=1,
                            **dict(KW, class_map=fm["cmap"]))
    return rep, str(out)


def test_classification_report_equals_the_local_run(fm, local_classify, tmp_path):
    rep_local, out_local = local_classify
    rep = pyimgcls.evaluate(fm["data"], model=fashion.MODEL, out=str(tmp_path), engine="ray", ray_options=RAY_OPTS,
                            **dict(KW, class_map=fm["cmap"]))
    assert rep.settings["engine"] == "ray" and rep_local.settings["engine"] == "local"
    assert rep.counts == {"labelled": N_IMAGES + 1, "evaluated": N_IMAGES, "failed": 1,
                          "problems": {"unreadable_image": 1}}
    assert rep.problems == rep_local.problems and "zz-broken.png" in rep.problems[0][1]
    got, want = _numbers(os.path.join(str(tmp_path), "report.json")), _numbers(os.path.join(out_local, "report.json"))
    assert got == want  # every number: per-class report, confusion, calibration, AP, intervals, worst confusions
    assert set(got["intervals_95"]) == {"accuracy", "macro_f1", "top_k_accuracy", "map"}
    assert got["metrics"]["accuracy"] >= 0.85 and got["worst_confusions"]
    np.testing.assert_array_equal(rep.calibration.conf_sum, rep_local.calibration.conf_sum)
    for name, c in rep_local.curves.items():  # the PR curves the plot draws
        np.testing.assert_array_equal(rep.curves[name]["precision"], c["precision"])


def test_cli_engine_ray(fm, local_classify, tmp_path, capsys):
    _, out_local = local_classify
    out = tmp_path / "cli"
    rc = cli_main(["eval", fashion.MODEL, fm["data"], "--class-map", fm["cmap"], "--engine", "ray", "--actor-cpus",
                   "0.75", "--batch-size", "16", "--bootstrap", "200", "--seed", "3", "--no-plots", "--out", str(out)])
    assert rc == 0
    assert "accuracy" in capsys.readouterr().out and (out / "report.html").is_file()
    assert _numbers(str(out / "report.json")) == _numbers(os.path.join(out_local, "report.json"))
    for args, msg in ((["--threads", "2"], "--threads does not apply with --engine ray"),
                      (["--predictions", fashion.MODEL], "--predictions does not apply")):
        assert cli_main(["eval", fashion.MODEL, fm["data"], "--engine", "ray", *args]) == 2
        assert msg in capsys.readouterr().err
    assert cli_main(["eval", fashion.MODEL, fm["data"], "--address", "auto"]) == 2
    assert "--address applies to --engine ray" in capsys.readouterr().err


def test_detection_report_equals_the_local_run(tmp_path):
    pytest.importorskip("pyimgcls.tasks.faces")
    from _helpers.face_coco import face_dataset

    coco = face_dataset(str(tmp_path / "coco"))
    kw = dict(task="detect", model="faces", bootstrap=20, seed=1, plots=False, batch_size=2)
    local = pyimgcls.evaluate(coco, out=str(tmp_path / "local"), **kw)
    rep = pyimgcls.evaluate(coco, out=str(tmp_path / "ray"), engine="ray", ray_options=RAY_OPTS, **kw)
    got, want = _numbers(str(tmp_path / "ray" / "report.json")), _numbers(str(tmp_path / "local" / "report.json"))
    assert got == want  # the 12 COCO stats, per-label AP and AP50, the mAP interval, the drawn images
    assert rep.metrics["AP50"] > 0.9 and rep.counts["evaluated"] == 5 and "map" in rep.intervals
    np.testing.assert_array_equal(rep.coco.precision, local.coco.precision)


def test_ray_engine_refuses_what_it_cannot_do(fm, tmp_path):
    with pytest.raises(ValueError, match="give model"):
        pyimgcls.evaluate(fm["data"], classifier=pyimgcls.Classifier(fashion.MODEL, threads=1), engine="ray")
    with pytest.raises(ValueError, match="threads does not apply"):
        pyimgcls.evaluate(fm["data"], model=fashion.MODEL, engine="ray", threads=2)
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'"):
        pyimgcls.evaluate(fm["data"], model=fashion.MODEL, engine="spark")
    with pytest.raises(ValueError, match="apply to engine='ray'"):
        pyimgcls.evaluate(fm["data"], model=fashion.MODEL, address="auto")
    table = tmp_path / "ml.csv"
    table.write_text("path,a,b\n" + os.path.join(fm["data"], fashion.FOLDERS[0], os.listdir(
        os.path.join(fm["data"], fashion.FOLDERS[0]))[0]) + ",1,0\n")
    with pytest.raises(ValueError, match="single-label"):
        pyimgcls.evaluate(str(table), model=fashion.MODEL, engine="ray",
                          class_map={"a": "T-shirt/top", "b": "Trouser"})


def test_calibration_histogram_sums_are_exact_under_any_split():
    """The per-bin confidence sums are exact (rounded once): any split into blocks, merged in any
    order and pickled between processes, gives the same bits (a float running sum would not)."""
    rng = np.random.default_rng(5)
    c = np.concatenate([rng.random(5000) ** 4, [0.0, 1.0, 1e-300, 5e-324, 0.5]])
    h = rng.random(len(c)) < c
    whole = CalibrationHistogram(15).update(c, h)
    cuts = np.sort(rng.choice(len(c), 7, replace=False))
    parts = [CalibrationHistogram(15).update(c[a:b], h[a:b]) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(c)])]
    merged = CalibrationHistogram(15)
    for k in rng.permutation(len(parts)):
        merged.merge(pickle.loads(pickle.dumps(parts[k])))
    np.testing.assert_array_equal(merged.conf_sum, whole.conf_sum)
    np.testing.assert_array_equal(merged.count, whole.count)
    assert merged.ece() == whole.ece() and merged.mce() == whole.mce()
    import math

    b = np.searchsorted(whole.edges[1:-1], c, side="left")
    assert [math.fsum(c[b == k]) for k in range(15)] == whole.conf_sum.tolist()  # correctly rounded


def test_single_label_states_merge_in_any_order_to_the_one_block_numbers():
    """The workers' states, cut into blocks of any size and merged in any order, give the arrays,
    the confusion matrix, the calibration sums, the AP and the kept mistakes of one block."""
    from pyimgcls.jobs.eval import SingleLabelStates

    rng = np.random.default_rng(2)
    n, C = 700, 12
    logits = rng.normal(size=(n, C)) * 2
    P = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    P[5] = P[6]  # ties between images
    truth = rng.integers(0, C, n)
    ok = rng.random(n) > 0.03
    errors = [None if o else f"bad {i}" for i, o in enumerate(ok)]
    cols = np.array([0, 2, 3, 5, 7, 8, 9, 11])

    def run(cuts, order):
        blocks = []
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, n]):
            s = SingleLabelStates(C, len(cols), 15, True)
            s.add_block(np.arange(a, b), ok[a:b], P[a:b], errors[a:b], truth[a:b], cols, 5)
            blocks.append(pickle.loads(pickle.dumps(s)))
        m = blocks[order[0]]
        for k in order[1:]:
            m.merge(blocks[k])
        arrays = [np.zeros(n, np.int64), np.zeros(n), np.zeros(n, bool), np.zeros((n, len(cols)), np.float32),
                  np.zeros(n, bool)]
        m.fill(*arrays)
        return m, arrays

    one, a1 = run(np.array([], int), [0])
    cuts = np.sort(rng.choice(np.arange(1, n), 9, replace=False))
    many, a2 = run(cuts, list(rng.permutation(10)))
    for x, y in zip(a1, a2):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(one.cm.matrix, many.cm.matrix)
    np.testing.assert_array_equal(one.cal.conf_sum, many.cal.conf_sum)
    assert one.cal.ece() == many.cal.ece()
    np.testing.assert_array_equal(one.ranking.average_precision(average=None),
                                  many.ranking.average_precision(average=None))
    assert one.mistakes == many.mistakes and one.errors == many.errors
    assert sorted(one.indices().tolist()) == list(range(n)) and sorted(many.indices().tolist()) == list(range(n))
