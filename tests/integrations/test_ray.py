"""pyimgcls.integrations.ray on a real local Ray (one ``ray.init(num_cpus=2)`` for the module)."""

import collections
import glob
import os
import signal
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from PIL import Image

import pyimgcls
from pyimgcls import score
from pyimgcls.cli.main import main as cli_main
from pyimgcls.integrations.ray import done_paths, score_dataset, score_to_dir
from pyimgcls.jobs.score import OutputExistsError
from _helpers.ray_local import init_local_ray

N_IMAGES = 300
SCORER_TITLE = "ray::MapWorker(MapBatches(_Scorer))"


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory):
    init_local_ray(2, tmp_path_factory.mktemp("ray-cwd"))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clf():
    return pyimgcls.Classifier(threads=2)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, photos):
    """300 inputs: small JPEGs and PNGs cut from real photos, one EXIF-rotated JPEG, and broken files
    (garbage, a truncated JPEG, an empty file, a dangling link)."""
    d = tmp_path_factory.mktemp("ray-imgs")
    rng = np.random.default_rng(7)
    base = [np.ascontiguousarray(p) for _, p in sorted(photos.items())]
    broken = {17: "garbage", 101: "truncated", 202: "empty", 250: "dangling"}
    for i in range(N_IMAGES):
        sub = d / f"s{i % 3}"
        sub.mkdir(exist_ok=True)
        if i in broken:
            p = sub / f"{i:04d}.jpg"
            kind = broken[i]
            if kind == "garbage":
                p.write_bytes(b"\xff\xd8\xff\xe0" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
            elif kind == "truncated":
                full = sub / "tmp.jpg"
                Image.fromarray(base[0]).save(full, quality=90)
                p.write_bytes(full.read_bytes()[:600])
                full.unlink()
            elif kind == "empty":
                p.write_bytes(b"")
            else:
                os.symlink(d / "nowhere.jpg", p)
            continue
        img = base[i % len(base)]
        h, w = img.shape[:2]
        ch, cw = int(rng.integers(h // 3, h)), int(rng.integers(w // 3, w))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = Image.fromarray(img[y:y + ch, x:x + cw]).resize((int(rng.integers(120, 260)), int(rng.integers(100, 220))))
        if i % 10 == 3:
            crop.save(sub / f"{i:04d}.png")
        elif i == 5:
            exif = Image.Exif()
            exif[0x0112] = 6  # rotated: width and height swap
            crop.save(sub / f"{i:04d}.jpg", quality=88, exif=exif)
        else:
            crop.save(sub / f"{i:04d}.jpg", quality=int(rng.integers(70, 95)))
    return d


def _parts(out):
    return pq.read_table(str(out)).to_pandas() if os.path.isdir(out) else pq.read_table(out).to_pandas()


@pytest.fixture(scope="module")
def local(clf, image_dir, tmp_path_factory):
    """Local ``score``'s Parquet output for the 300 inputs, indexed by path."""
    out = str(tmp_path_factory.mktemp("local") / "local.parquet")
    score([str(image_dir)], out=out, classifier=clf, progress=False)
    return out, pq.read_table(out).to_pandas().set_index("path")


def _assert_same_rows(ray_df, local_df):
    """Labels, top-k ids and sizes equal, scores to 1e-6, errors (with their text) on the same files."""
    assert sorted(ray_df["path"]) == sorted(local_df.index)
    assert ray_df["path"].is_unique
    for _, row in ray_df.iterrows():
        want = local_df.loc[row["path"]]
        if isinstance(want["error"], str):
            assert row["error"] == want["error"]
            assert row["label"] is None or np.isnan(row["label"])
            continue
        assert not isinstance(row["error"], str)
        assert int(row["label"]) == int(want["label"]) and row["label_name"] == want["label_name"]
        assert abs(row["score"] - want["score"]) <= 1e-6
        assert list(row["top_k_ids"]) == list(want["top_k_ids"])
        np.testing.assert_allclose(row["top_k_scores"], want["top_k_scores"], rtol=0, atol=1e-6)
        assert (row["width"], row["height"], row["stored_width"], row["stored_height"]) == \
            (want["width"], want["height"], want["stored_width"], want["stored_height"])


def test_rows_equal_local_score_with_corrupt_files(image_dir, local, tmp_path):
    local_out, local = local
    assert len(local) == N_IMAGES and local["error"].notna().sum() == 4
    out = tmp_path / "ray-out"
    s = score_to_dir(str(image_dir), out=str(out), batch_size=16, progress=False)
    assert (s.images, s.errors, s.skipped) == (N_IMAGES, 4, 0)
    df = _parts(out)
    _assert_same_rows(df, local)
    # the schema is score's, and so is the manifest in the key-value metadata
    local_schema = pq.read_schema(local_out)
    part = pq.read_schema(glob.glob(str(out / "part-*.parquet"))[0])
    assert part.remove_metadata() == local_schema.remove_metadata()
    assert b"pyimgcls" in part.metadata
    # the EXIF-rotated file: width and height as read_image returns them
    rot = df[df["path"].str.endswith("0005.jpg")].iloc[0]
    assert (rot["width"], rot["height"]) == (rot["stored_height"], rot["stored_width"])


def test_dataset_sources_and_embed(clf, image_dir, tmp_path):
    files = sorted(glob.glob(str(image_dir / "s1" / "*.png")))[:6] + sorted(glob.glob(str(image_dir / "s1" / "*.jpg")))[:6]
    want = {r.source: r for r in clf.predict(files)}
    # (a Dataset from read_binary_files(include_paths=True) is what folder sources become: tested above)
    # read_images output: decoded arrays + path (compared with the same arrays classified locally)
    ds = ray.data.read_images(files, include_paths=True, mode="RGB")
    got = {r["path"]: r for r in score_dataset(ds, batch_size=4).take_all()}
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    for f, w in zip(files, clf.predict(arrays)):
        assert got[f]["label"] == w.label and abs(got[f]["score"] - w.score) <= 1e-6
    # a Parquet and a CSV table of paths, relative to the table's folder
    rel = [os.path.relpath(f, image_dir) for f in files]
    pq.write_table(pa.table({"path": rel}), image_dir / "list.parquet")
    (image_dir / "list.csv").write_text("path\n" + "\n".join(rel) + "\n")
    for table in ("list.parquet", "list.csv"):
        got = {r["path"]: r for r in score_dataset(str(image_dir / table), batch_size=4).take_all()}
        assert sorted(got) == sorted(want)
        assert all(got[p]["label"] == want[p].label for p in want)
    # task="embed": score's rows plus the embedding, equal to Classifier.embed
    emb = clf.embed(files)
    got = {r["path"]: r for r in score_dataset(files, task="embed", batch_size=4).take_all()}
    for f, e in zip(files, emb):
        np.testing.assert_allclose(got[f]["embedding"], e, rtol=0, atol=1e-5)


def test_bad_arguments_are_refused(image_dir):
    ds = ray.data.from_items([{"bytes": b"x"}])
    with pytest.raises(ValueError, match="needs a 'path' column"):
        score_dataset(ds)
    with pytest.raises(ValueError, match="would hang"):
        score_dataset(str(image_dir), concurrency=2, num_cpus=1)
    with pytest.raises(ValueError, match="does not fit"):
        score_dataset(str(image_dir), num_cpus=2)
    with pytest.raises(ValueError, match="threads follows num_cpus"):
        score_dataset(str(image_dir), threads=4)
    with pytest.raises(ValueError, match="task must be one of"):
        score_dataset(str(image_dir), task="segment")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        score_dataset(str(image_dir), batch_size=0)


def _scorer_pids():
    pids = set()
    for p in __import__("psutil").Process().children(recursive=True):
        try:
            if " ".join(p.cmdline()).startswith(SCORER_TITLE):
                pids.add(p.pid)
        except Exception:  # noqa: BLE001 - a process that ended meanwhile
            pass
    return pids


def test_an_actor_killed_mid_run_is_restarted_and_every_input_appears_once(image_dir, tmp_path):
    out = tmp_path / "killed"
    result = {}

    def job():
        result["summary"] = score_to_dir(str(image_dir), out=str(out), batch_size=4, chunk_size=4, progress=False)

    t = threading.Thread(target=job)
    t.start()
    seen, killed, parts_at_kill = set(), None, None
    deadline = time.monotonic() + 240
    while t.is_alive() and time.monotonic() < deadline:
        pids = _scorer_pids()
        seen |= pids
        if killed is None and pids and os.path.isdir(out) and glob.glob(str(out / "part-*.parquet")):
            killed = sorted(pids)[0]
            parts_at_kill = len(glob.glob(str(out / "part-*.parquet")))
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    t.join(timeout=60)
    assert not t.is_alive()
    assert killed is not None and parts_at_kill * 4 < N_IMAGES  # killed mid-run
    assert seen - {killed}, "no actor took over after the kill"
    df = _parts(out)
    counts = collections.Counter(df["path"])
    assert len(counts) == N_IMAGES and max(counts.values()) == 1
    assert result["summary"].images == N_IMAGES


def test_rerun_scores_only_the_missing_inputs(image_dir, local, tmp_path):
    out = tmp_path / "partial"
    score_to_dir(str(image_dir / "s0"), out=str(out), chunk_size=32, progress=False)
    first = len(done_paths(str(out)))
    assert first == 100
    # one part lost, and a half-written temporary of a killed run left behind
    parts = sorted(glob.glob(str(out / "part-*.parquet")))
    lost = len(pq.read_table(parts[0], columns=["path"]))
    os.remove(parts[0])
    stale = out / ".part-x-000099.parquet.tmp-999999999"
    stale.write_bytes(b"PAR1 half written")
    both = [str(image_dir / "s0"), str(image_dir / "s1")]
    s = score_to_dir(both, out=str(out), chunk_size=32, progress=False)
    assert s.images == 100 + lost and s.skipped == first - lost
    assert not stale.exists()
    df = _parts(out)
    assert df["path"].is_unique and len(df) == 200
    _assert_same_rows(df, local[1][local[1].index.str.contains("/s[01]/")])
    # nothing left: a third run scores nothing
    assert score_to_dir(both, out=str(out), progress=False).images == 0
    # other settings are refused
    with pytest.raises(OutputExistsError, match="top_k"):
        score_to_dir(both, out=str(out), top_k=3, progress=False)


def test_cli_engine_ray(image_dir, tmp_path, capsys):
    out = tmp_path / "cli-out"
    rc = cli_main(["score", str(image_dir / "s2"), "--out", str(out), "--engine", "ray", "--batch-size", "8"])
    err = capsys.readouterr().err
    assert rc == 1 and "scored 100 images (2 errors" in err  # the empty file and the dangling link
    assert len(_parts(out)) == 100
    rc = cli_main(["score", str(image_dir / "s2"), "--out", str(out), "--engine", "ray"])
    assert rc == 0 and "scored 0 images (0 errors, 100 skipped)" in capsys.readouterr().err
    rc = cli_main(["score", str(image_dir / "s2"), "--out", str(out), "--engine", "ray", "--top-k", "2"])
    assert rc == 2 and "other settings" in capsys.readouterr().err
    rc = cli_main(["score", str(image_dir / "s2"), "--out", str(out), "--engine", "ray", "--shard", "0/2"])
    assert rc == 2 and "--shard" in capsys.readouterr().err


@pytest.fixture(scope="module")
def box_dir(tmp_path_factory, photos):
    """Photos with a white rectangle pasted in (what ``bright_box_detector`` finds), the astronaut
    (a face for ``"faces"``), and a corrupt file."""
    d = tmp_path_factory.mktemp("ray-boxes")
    rng = np.random.default_rng(11)
    base = [np.ascontiguousarray(p) for _, p in sorted(photos.items())]
    for i in range(12):
        img = (base[i % len(base)][::2, ::2] // 2).copy()
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        img[y:y + h // 4, x:x + w // 3] = 255
        Image.fromarray(img).save(d / f"b{i:02d}.png")
    Image.fromarray(photos["astronaut"]).save(d / "astronaut.jpg", quality=92)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x01" * 64)
    return d


@pytest.mark.parametrize("model", ["yolo", "faces"])
def test_detect_rows_equal_local_score(box_dir, tmp_path, model):
    from _helpers.models import bright_box_detector

    spec = bright_box_detector(str(tmp_path / "box.onnx")) if model == "yolo" else "faces"
    local_out = str(tmp_path / "local.parquet")
    score([str(box_dir)], out=local_out, task="detect", model=spec, progress=False)
    local = pq.read_table(local_out).to_pandas().set_index("path")
    out = tmp_path / "ray"
    s = score_to_dir(str(box_dir), out=str(out), task="detect", model=spec, batch_size=4, progress=False)
    assert (s.images, s.errors) == (14, 1)
    got = _parts(out)
    assert sorted(got["path"]) == sorted(local.index) and got["path"].is_unique
    assert pq.read_schema(glob.glob(str(out / "part-*.parquet"))[0]).remove_metadata() == \
        pq.read_schema(local_out).remove_metadata()
    found = 0
    for _, row in got.iterrows():
        want = local.loc[row["path"]]
        if isinstance(want["error"], str):
            assert row["error"] == want["error"] and row["path"].endswith("broken.jpg")
            continue
        assert row["count"] == want["count"] and list(row["class_ids"]) == list(want["class_ids"])
        found += row["count"]
        if row["count"]:
            np.testing.assert_allclose(np.stack(row["boxes"]), np.stack(want["boxes"]), rtol=0, atol=1e-4)
            np.testing.assert_allclose(row["scores"], want["scores"], rtol=0, atol=1e-6)
    assert found >= (12 if model == "yolo" else 1)  # the boxes (or the astronaut's face) were found
    # a rerun scores nothing; detection settings are recorded and checked
    assert score_to_dir(str(box_dir), out=str(out), task="detect", model=spec, progress=False).images == 0
    with pytest.raises(OutputExistsError, match="other settings"):
        score_to_dir(str(box_dir), out=str(out), task="detect", model=spec, conf=0.5, progress=False)


def _eval_data(seed=5):
    """Imbalanced single-label predictions, multi-label scores with ties, and detections around
    clustered ground truth (3 classes, some crowd boxes) on 120 images."""
    rng = np.random.default_rng(seed)
    n, c = 4000, 10
    y_true = rng.choice(c, n, p=np.r_[0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01])
    y_pred = np.where(rng.random(n) < 0.3, rng.integers(0, c, n), y_true)
    Y = (rng.random((n, 6)) < [0.5, 0.2, 0.1, 0.05, 0.02, 0.3]).astype(np.uint8)
    S = np.round(np.clip(Y * 0.3 + rng.random((n, 6)) * 0.8, 0, 1), 2)  # rounded: many tied scores
    images = []
    for i in range(120):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (g, 2))
        wh = rng.uniform(10, 150, (g, 2))
        gt = np.c_[xy, xy + wh].astype(np.float64)
        gcls = rng.integers(0, 3, g)
        crowd = (rng.random(g) < 0.05).astype(np.uint8)
        keep = rng.random(g) < 0.8
        det = gt[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        fp_xy = rng.uniform(0, 400, (int(rng.integers(0, 4)), 2))
        det = np.r_[det, np.c_[fp_xy, fp_xy + rng.uniform(10, 100, (len(fp_xy), 2))]]
        dcls = np.r_[gcls[keep], rng.integers(0, 3, len(fp_xy))]
        dsc = np.round(rng.random(len(det)), 1)  # ties across images
        images.append((i, (det, dsc, dcls), gt, gcls, crowd))
    return y_true, y_pred, Y, S, images


# Ray workers import the installed pyimgcls, never this checkout (see _helpers/ray_local.py), so
# they cannot import this test module either: the task below travels by value, not by reference.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _states(rows, images, data):
    from pyimgcls import metrics

    y_true, y_pred, Y, S, all_images = data
    cm = metrics.ConfusionMatrix(10).update(y_true[rows], y_pred[rows])
    rs = metrics.RankingState().update(Y[rows], S[rows])
    ev = metrics.COCOEvaluator()
    for i in images:
        image_id, det, gt, gcls, crowd = all_images[i]
        ev.update(image_id, det, gt, gcls, gt_iscrowd=crowd)
    return cm, rs, ev


def test_metric_states_from_4_shards_merge_to_the_single_machine_numbers():
    """Each shard's states are computed in a Ray task (pickled back), merged on the driver in
    another order, and give exactly the numbers of one machine."""
    data = _eval_data()
    n, n_img = len(data[0]), len(data[4])
    rng = np.random.default_rng(1)
    rows, imgs = np.array_split(rng.permutation(n), 4), np.array_split(rng.permutation(n_img), 4)
    remote = ray.remote(_states)
    data_ref = ray.put(data)
    shards = ray.get([remote.remote(r, i, data_ref) for r, i in zip(rows, imgs)])
    cm, rs, ev = shards[2]
    for k in (0, 3, 1):
        cm.merge(shards[k][0])
        rs.merge(shards[k][1])
        ev.merge(shards[k][2])
    one_cm, one_rs, one_ev = _states(np.arange(n), np.arange(n_img), data)
    # classification report
    assert cm.report(zero_division=0).to_dict() == one_cm.report(zero_division=0).to_dict()
    # per-label AP and AUC
    y_true, _, Y, S, _ = data
    from pyimgcls import metrics

    single_ap = metrics.average_precision(Y, S, average=None)
    assert np.array_equal(rs.average_precision(average=None), single_ap)
    assert np.array_equal(rs.average_precision(average=None), one_rs.average_precision(average=None))
    assert rs.average_precision(average="micro") == metrics.average_precision(Y, S, average="micro")
    assert np.array_equal(rs.roc_auc(average=None), metrics.roc_auc(Y, S, average=None))
    # COCO: the 12 stats, per-class AP and the precision array
    got, want = ev.compute(), one_ev.compute()
    assert np.array_equal(got.stats, want.stats) and got.per_class_ap == want.per_class_ap
    assert np.array_equal(got.precision, want.precision)
    assert want.stats[0] > 0.1  # a real evaluation, not an empty one


def test_ranking_state_checks_its_inputs():
    from pyimgcls import metrics

    rs = metrics.RankingState(3)
    with pytest.raises(ValueError, match="must have 3 labels"):
        rs.update(np.zeros((4, 2), np.uint8), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="no rows"):
        rs.arrays()
    with pytest.raises(TypeError, match="can only merge a RankingState"):
        rs.merge(metrics.ConfusionMatrix(3))
    b = metrics.RankingState().update([0, 1, 1], [0.1, 0.9, 0.4])
    with pytest.raises(ValueError, match=r"must be \(N,\)"):
        b.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2)))
    assert b.average_precision() == metrics.average_precision([0, 1, 1], [0.1, 0.9, 0.4])
