"""The command line as users of Ultralytics, timm and batch-scoring tools expect it."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

import pyimgcls
from _helpers.models import tiny_classifier
from pyimgcls.cli.main import main

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "images")


@pytest.fixture(scope="module")
def images(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("imgs")
    for name in ("chelsea", "coffee", "astronaut"):
        Image.fromarray(photos[name]).save(d / f"{name}.jpg", quality=90)
    (d / ".hidden").mkdir()
    Image.fromarray(photos["rocket"]).save(d / ".hidden" / "rocket.jpg")
    Image.fromarray(photos["rocket"]).save(d / ".secret.jpg")
    return d


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    cfg = pyimgcls.PreprocessConfig(size=(32, 32), resize="stretch").to_json()
    return tiny_classifier(str(d / "tiny.onnx"), classes=4, meta={"pyimgcls.preprocess": cfg})


def test_version_and_python_dash_m(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"pyimgcls {pyimgcls.__version__}"


def test_help_shows_defaults_and_describes_every_option(capsys):
    for cmd in ("classify", "score", "bench", "info"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "--device" in out and "-v, --verbose" in out and "-q, --quiet" in out
        if cmd in ("classify", "score"):
            assert "(default: 5)" in out  # --top-k
            assert "--include-hidden" in out and "--list FILE" in out
        # every option has a help text: no bare option lines
        lines = [ln for ln in out.splitlines() if ln.strip().startswith("--")]
        assert all(len(ln.split(None, 1)) > 1 or "  " in ln for ln in lines), lines


def test_bad_option_values_name_no_internals(capsys):
    with pytest.raises(SystemExit) as e:
        main(["classify", EXAMPLES, "--top-k", "zero"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "must be a positive integer" in err and "_positive_int" not in err


def test_missing_input_stops_before_any_work(capsys, tmp_path):
    assert main(["classify", EXAMPLES, str(tmp_path / "nope.jpg")]) == 2
    err = capsys.readouterr()
    assert err.out == "" and "no such file or folder" in err.err and "nope.jpg" in err.err
    assert main(["score", str(tmp_path / "nope"), "--out", str(tmp_path / "o.csv")]) == 2
    assert not os.path.exists(tmp_path / "o.csv")
    assert main(["classify", str(tmp_path / "*.png")]) == 2
    assert "no file matches" in capsys.readouterr().err


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_empty_folder_is_the_same_error_with_or_without_json(capsys, tmp_path, json_flag):
    (tmp_path / "empty").mkdir()
    assert main(["classify", str(tmp_path / "empty"), *json_flag]) == 2
    assert "no images found" in capsys.readouterr().err


def test_hidden_files_are_skipped_unless_asked(capsys, images, tiny):
    assert main(["classify", str(images), "--model", tiny, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(os.path.basename(r["source"]) for r in rows) == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    assert main(["classify", str(images), "--model", tiny, "--json", "--include-hidden"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5


def test_list_files_only_with_list_or_at(capsys, images, tiny, tmp_path):
    lst = tmp_path / "files.txt"
    lst.write_text(f"{images / 'coffee.jpg'}\n# a comment\n{images / 'chelsea.jpg'}\n")
    for args in (["--list", str(lst)], [f"@{lst}"]):
        assert main(["classify", *args, "--model", tiny, "--json"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["classify", str(lst), "--model", tiny, "--json"]) == 1  # a .txt path is one input: not an image
    row = json.loads(capsys.readouterr().out)
    assert row["error"] and "files.txt" in row["source"]


def test_paths_from_standard_input(images, tiny, tmp_path):
    # cwd: not the source checkout, whose unbuilt pyimgcls/ would shadow the installed one
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "classify", "-", "--model", tiny, "--json"],
                       input=f"{images / 'coffee.jpg'}\n{images / 'chelsea.jpg'}\n", capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


def test_exit_status_one_when_an_input_fails(capsys, images, tiny, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    assert main(["classify", str(images / "coffee.jpg"), str(bad), "--model", tiny]) == 1
    out = capsys.readouterr()
    assert "ERROR" in out.out and "1 of 2 inputs failed" in out.err
    assert main(["score", str(images / "coffee.jpg"), str(bad), "--model", tiny, "--out", str(tmp_path / "o.csv"),
                 "-q"]) == 1


def test_top_k_above_the_class_count_is_clamped_with_a_note(capsys, images, tiny):
    assert main(["classify", str(images / "coffee.jpg"), "--model", tiny, "--top-k", "10"]) == 0
    out = capsys.readouterr()
    assert "top-4 (probability)" in out.out and "more than the model's 4 classes" in out.err
    assert out.out.splitlines()[1].count("%") == 4


def test_classify_streams_rows_as_they_come(images, tmp_path, photos):
    """The first row is printed long before the last image is done (a slow input at the end)."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(40):
        Image.fromarray(photos["coffee"]).save(d / f"img{i:03d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "pyimgcls", "classify", str(d), "--batch-size", "4", "--threads",
                             "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    first = proc.stdout.readline()  # the header comes with the first row
    t_first = time.monotonic()
    second = proc.stdout.readline()
    rest = proc.stdout.read()
    t_end = time.monotonic()
    proc.wait(timeout=300)
    assert proc.returncode == 0 and first.startswith("file") and "img000.png" in second
    assert len(rest.splitlines()) == 39
    assert t_end - t_first > 0.2  # the remaining rows took time: the first ones did not wait for them


def test_device_option_and_explicit_device_errors(capsys, images, tiny):
    assert main(["classify", str(images / "coffee.jpg"), "--model", tiny, "--device", "cpu"]) == 0
    capsys.readouterr()
    if "CUDAExecutionProvider" in pyimgcls.runtime.session.available_providers():
        pytest.skip("a GPU is here: the refusal is tested where there is none")
    assert main(["classify", str(images / "coffee.jpg"), "--model", tiny, "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "device 'cuda' was asked for" in err
    with pytest.raises(pyimgcls.runtime.session.DeviceUnavailableError, match="cannot run here"):
        pyimgcls.Classifier(tiny, device="cuda:0")
    with pytest.raises(ValueError, match="device must be one of"):
        pyimgcls.Classifier(tiny, device="gpu")
    assert main(["classify", str(images), "--model", tiny, "--device", "cpu", "--providers", "CPUExecutionProvider"]) \
        == 2


def test_preprocessing_overrides_from_the_command_line(capsys, images, tiny):
    assert main(["info", tiny, "--imgsz", "32", "--interpolation", "AREA", "--mean", "0.5", "--std", "0.25",
                 "--resize", "Letterbox", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)["preprocess"]
    assert p["size"] == [32, 32] and p["interpolation"] == "area" and p["resize"] == "letterbox"
    assert p["mean"] == [0.5] * 3 and p["std"] == [0.25] * 3
    assert main(["info", tiny, "--imgsz", "64"]) == 2  # the model takes 32x32 only
    assert "disagrees with the model input size" in capsys.readouterr().err


def test_ctrl_c_during_score_is_one_line_and_resumable(tmp_path, photos):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(300):
        Image.fromarray(photos["coffee"][::2, ::2]).save(d / f"img{i:03d}.jpg")
    out = str(tmp_path / "o.parquet")
    cmd = [sys.executable, "-m", "pyimgcls", "score", str(d), "--out", out, "--batch-size", "8", "--threads", "1",
           "--chunk-size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.isdir(out + ".parts") and len(os.listdir(out + ".parts")) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("pyimgcls: interrupted: ") and "rows saved in" in lines[-1]
    assert "run the same command to resume" in lines[-1] and "Traceback" not in err
    saved = int(lines[-1].split("interrupted: ")[1].split()[0])
    assert saved >= 8 and len(pq.read_table(out + ".parts").to_pandas()) == saved
    r = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(pq.read_table(out).to_pandas()) == 300


def test_progress_goes_to_the_log_without_a_terminal(tmp_path, photos, tiny, caplog, monkeypatch):
    import pyimgcls.jobs.score as job

    d = tmp_path / "d"
    d.mkdir()
    for i in range(30):
        Image.fromarray(photos["coffee"][::4, ::4]).save(d / f"i{i}.png")
    clock = [0.0]

    def fake_monotonic():  # 4 s per call: a log line every few rows
        clock[0] += 4.0
        return clock[0]

    monkeypatch.setattr(job.time, "monotonic", fake_monotonic)
    progress_log = logging.getLogger("pyimgcls.progress")
    monkeypatch.setattr(progress_log, "level", logging.INFO)
    progress_log.addHandler(caplog.handler)
    try:
        pyimgcls.score([str(d)], out=str(tmp_path / "o.csv"), classifier=pyimgcls.Classifier(tiny), batch_size=4)
    finally:
        progress_log.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "pyimgcls.progress"]
    assert lines and all("rows done" in ln and "rows/s" in ln and "errors" in ln for ln in lines)


# ----------------------------------------------------------------------------- the scoring output
@pytest.mark.parametrize("ext", [".parquet", ".jsonl", ".csv"])
def test_output_schema(tmp_path, images, tiny, ext, photos):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photos["coffee"]).save(tmp_path / "turned.jpg", exif=exif.tobytes())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = str(tmp_path / f"o{ext}")
    clf = pyimgcls.Classifier(tiny)
    s = pyimgcls.score([str(tmp_path / "turned.jpg"), str(bad)], out=out, classifier=clf, probabilities=True,
                       embeddings=True, top_k=2)
    assert s.images == 2 and s.errors == 1
    if ext == ".parquet":
        t = pq.read_table(out)
        meta = json.loads(t.schema.metadata[b"pyimgcls"])
        assert meta["settings"]["model"] and meta["info"]["pyimgcls_version"] == pyimgcls.__version__
        import pyarrow as pa

        typ = t.schema.field("embedding").type
        assert isinstance(typ, pa.FixedSizeListType) and typ.list_size == 3 and typ.value_type == pa.float32()
        assert str(t.schema.field("label").type) == "int64"
        rows = t.to_pylist()
        assert len(pq.ParquetFile(out).metadata.row_group(0).to_dict()["columns"]) == len(t.schema)
    elif ext == ".jsonl":
        rows = [json.loads(x) for x in open(out)]
    else:
        df = pd.read_csv(out, keep_default_na=False)
        rows = df.to_dict("records")
        emb = np.load(out + ".embeddings.npy")
        assert emb.shape == (2, 3) and np.isnan(emb[1]).all() and not os.path.exists(out + ".embeddings.f32")
    good, err = rows
    assert good["error"] in (None, "") and err["error"] and "bad.png" in err["error"]
    sizes = tuple(int(good[k]) for k in ("width", "height", "stored_width", "stored_height"))
    assert sizes == (400, 600, 600, 400)  # shown turned (EXIF 6), stored 600 wide
    assert err["label"] in (None, "")
    probs = json.loads(good["probabilities"]) if ext == ".csv" else good["probabilities"]
    assert len(probs) == 4 and abs(sum(probs) - 1) < 1e-5
    manifest = json.load(open(out + ".pyimgcls.json"))
    assert manifest["settings"]["probabilities"] and manifest["settings"]["decode"] == "exact"
    assert not os.path.exists(out + ".parts")


def test_parquet_row_groups_are_large(tmp_path, photos, tiny, monkeypatch):
    import pyimgcls.jobs._writers as writers

    monkeypatch.setattr(writers, "ROW_GROUP_ROWS", 25)  # the rule, at a size a test can reach
    d = tmp_path / "d"
    d.mkdir()
    for i in range(60):
        Image.fromarray(photos["coffee"][::8, ::8]).save(d / f"i{i:02d}.png")
    out = str(tmp_path / "o.parquet")
    pyimgcls.score([str(d)], out=out, classifier=pyimgcls.Classifier(tiny), chunk_size=4, progress=False)
    f = pq.ParquetFile(out)
    assert [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)] == [25, 25, 10]


def test_shards_split_the_inputs_the_same_way_wherever_the_data_is_mounted(tmp_path, photos, tiny):
    import shutil

    a = tmp_path / "mnt1" / "data"
    a.mkdir(parents=True)
    for i in range(40):
        Image.fromarray(photos["coffee"][::8, ::8]).save(a / f"i{i:02d}.png")
    b = tmp_path / "elsewhere" / "copy"
    shutil.copytree(a, b)
    clf = pyimgcls.Classifier(tiny)
    got = {}
    for root in (a, b):
        names = []
        for i in range(3):
            out = str(tmp_path / f"{root.name}-{i}.jsonl")
            pyimgcls.score([str(root)], out=out, classifier=clf, shard=(i, 3), progress=False)
            names.append(sorted(os.path.basename(json.loads(x)["path"]) for x in open(out)))
        got[root.name] = names
        assert sorted(sum(names, [])) == sorted(os.listdir(a))  # every input in exactly one shard
        assert all(6 <= len(n) <= 20 for n in names)
    assert got["data"] == got["copy"]


def test_in_memory_inputs_need_ids_to_be_resumable(tmp_path, photos, tiny):
    clf = pyimgcls.Classifier(tiny)
    arrays = [photos["coffee"], photos["chelsea"]]
    with pytest.raises(ValueError, match="needs an id"):
        pyimgcls.score(arrays, out=str(tmp_path / "a.csv"), classifier=clf, progress=False)
    out = str(tmp_path / "b.csv")
    s = pyimgcls.score(arrays, out=out, classifier=clf, ids=["coffee", "cat"], progress=False)
    assert s.images == 2
    s = pyimgcls.score(arrays[::-1], out=out, classifier=clf, ids=["cat", "coffee"], progress=False)
    assert s.images == 0 and s.skipped == 2
    assert list(pd.read_csv(out)["path"]) == ["coffee", "cat"]
    s = pyimgcls.score(arrays, out=str(tmp_path / "c.csv"), classifier=clf, resume=False, progress=False)
    assert s.images == 2


# ----------------------------------------------------------------------------- bench
def test_bench_report(capsys, tiny):
    assert main(["bench", "--model", tiny, "--batch-size", "1,2", "--duration", "0.05", "--iterations", "5",
                 "--warmup", "1", "--json"]) == 0
    out = capsys.readouterr()
    rep = json.loads(out.out)
    assert rep["cpu"] and rep["onnxruntime"] and rep["providers"] == ["CPUExecutionProvider"]
    for b in rep["batches"]:
        lat = b["latency_ms"]
        assert lat["samples"] >= 5 and lat["min"] <= lat["p50"] <= lat["max"] and lat["min"] <= lat["mean"]
    assert "batch size 2: latency, stages one after the other" in out.err
    assert main(["bench", "--model", tiny, "--batch-size", "2", "--duration", "0.05", "--model-only"]) == 0
    text = capsys.readouterr().out
    assert "model only" in text and "stages one after the other" in text


@pytest.mark.parametrize("threads, workers", [(1, 1), (2, 2)])
def test_bench_says_which_batch_path_it_timed(capsys, tiny, threads, workers):
    """The throughput column is the path predict takes (the CPU workers on 2 threads) and the
    model-only ceiling runs the model the same way, so end to end never reads above a ceiling
    measured another way."""
    for extra, want in (([], "CPU workers" if workers > 1 else "stages overlapped"),
                        (["--model-only"], "threads each running the model on one core" if workers > 1
                         else "stages overlapped")):
        assert main(["bench", "--model", tiny, "--threads", str(threads), "--batch-size", "2", "--duration", "0.05",
                     "--iterations", "3", "--json", *extra]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert want in rep["batch_path"] and rep["batches"][0]["throughput"] > 0


def test_bench_model_only_runs_the_workers_batch(capsys, tmp_path, monkeypatch):
    """With CPU workers, the model-only ceiling runs the batches the workers run: for a large
    input that is fewer images than --batch-size (at most 2.5 MiB of input per worker batch), so a
    ceiling timed on the whole batch would be another measurement."""
    from pyimgcls.runtime.session import Session

    cfg = pyimgcls.PreprocessConfig(size=(512, 512), resize="stretch").to_json()  # 3 MiB per image
    p = tiny_classifier(str(tmp_path / "big.onnx"), size=512, meta={"pyimgcls.preprocess": cfg})
    seen = []
    run = Session.run

    def recorded(self, x, *a, **k):
        if self.threads == 1:  # the workers' single-threaded session
            seen.append(len(x))
        return run(self, x, *a, **k)

    monkeypatch.setattr(Session, "run", recorded)
    clf = pyimgcls.Classifier(p, threads=2)
    clf.predict([np.zeros((64, 64, 3), np.uint8)] * 16, batch_size=4)
    workers_batches = set(seen)
    assert workers_batches == {1}
    seen.clear()
    assert main(["bench", "--model", p, "--threads", "2", "--batch-size", "4", "--duration", "0.05",
                 "--iterations", "3", "--warmup", "1", "--json", "--model-only"]) == 0
    assert "on one core" in json.loads(capsys.readouterr().out)["batch_path"]
    assert seen and set(seen) == workers_batches


def test_bench_model_only_on_workers_raises_what_the_model_raises(tiny, monkeypatch):
    """A model run that fails on a worker thread of the model-only timing is raised, not left on
    that thread with a throughput reported from the images it counted before running them."""
    from pyimgcls.jobs.bench import run_bench
    from pyimgcls.runtime.session import Session

    run = Session.run

    def fails_on_one_core(self, x, *a, **k):
        if self.threads == 1:
            raise RuntimeError("out of memory on one core")
        return run(self, x, *a, **k)

    monkeypatch.setattr(Session, "run", fails_on_one_core)
    with pytest.raises(RuntimeError, match="out of memory on one core"):
        run_bench(tiny, threads=2, batch_sizes=(2,), duration=0.05, iterations=3, warmup=0, model_only=True)


def test_bench_throughput_is_timed_to_the_last_image_counted(capsys, tmp_path, tiny, monkeypatch):
    """Closing the run after the last image counted waits for the batches still under way (not
    counted): that wait is not in the throughput's time (here it takes 2 s)."""
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    predict_iter = pyimgcls.Classifier.predict_iter
    given = [0]

    def slow_to_close(self, *a, **k):
        try:
            for r in predict_iter(self, *a, **k):
                given[0] += 1
                yield r
        except GeneratorExit:
            time.sleep(2.0)
            raise

    monkeypatch.setattr(pyimgcls.Classifier, "predict_iter", slow_to_close)
    assert main(["bench", "--model", tiny, "--images", str(d), "--threads", "2", "--batch-size", "2",
                 "--duration", "0.05", "--iterations", "3", "--warmup", "0", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    # the images counted came within 1 s (a few ms each): above `given` img/s; with the close
    # timed, below given / 2
    assert given[0] >= 8 and rep["batches"][0]["throughput"] > given[0] / 1.0


def test_bench_fixed_batch_model_and_bad_images(capsys, tmp_path):
    cfg = pyimgcls.PreprocessConfig(size=(32, 32), resize="stretch").to_json()
    p = tiny_classifier(str(tmp_path / "b4.onnx"), batch=4, meta={"pyimgcls.preprocess": cfg})
    assert main(["bench", "--model", p, "--batch-size", "1,8", "--duration", "0.05", "--iterations", "3",
                 "-q", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [b["batch_size"] for b in rep["batches"]] == [4] and "fixed batch of 4" in rep["notes"][0]
    d = tmp_path / "imgs"
    d.mkdir()
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    assert main(["bench", "--model", p, "--images", str(d), "--duration", "0.05"]) == 2
    assert "broken.jpg" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Python API
def test_classifier_pickles_and_reprs_fit_on_one_line(tiny, photos):
    import pickle

    clf = pyimgcls.Classifier(tiny, threads=1, preprocess={"interpolation": "area"})
    back = pickle.loads(pickle.dumps(clf))
    assert back.config == clf.config and back.threads == 1
    r1, r2 = clf.predict_one(photos["coffee"]), back.predict_one(photos["coffee"])
    assert r1.top_k == r2.top_k
    default = pickle.loads(pickle.dumps(pyimgcls.Classifier(threads=1)))
    assert default.model_path == pyimgcls.default_model_path()
    for obj in (clf, r1, pyimgcls.Classification("x.jpg", error="broken"),
                pyimgcls.Detections(xyxy=np.zeros((5, 4)), confidence=np.ones(5), class_id=np.zeros(5, int))):
        assert "\n" not in repr(obj) and len(repr(obj)) < 200, repr(obj)


def test_predict_gives_one_result_per_item_in_order(tiny, images, photos):
    clf = pyimgcls.Classifier(tiny)
    inputs = [str(images / "coffee.jpg"), photos["chelsea"], str(images)]
    r = clf.predict(inputs)
    assert [x.source for x in r] == [str(images / "coffee.jpg"), "<array #0>",
                                     *sorted(str(p) for p in images.glob("*.jpg") if not p.name.startswith("."))]
    emb, src = clf.embed(inputs, return_sources=True)
    assert src == [x.source for x in r] and emb.shape[0] == len(r)


def test_read_image_accepts_pil_and_imagenet_ids():
    img = Image.open(os.path.join(EXAMPLES, "coffee.jpg"))
    a = pyimgcls.read_image(img)
    assert a.shape == (400, 600, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(pyimgcls.read_image(img, color="bgr"), a[:, :, ::-1])
    clf = pyimgcls.Classifier()
    assert clf.class_ids[0] == "n01440764" and clf.labels[0] == "tench"
    assert len(set(clf.labels)) == 1000 and "crane (bird)" in clf.labels and "maillot (tank suit)" in clf.labels
    assert clf.class_ids[clf.labels.index("espresso")] == "n07920052"


def test_preprocess_config_conveniences():
    P = pyimgcls.PreprocessConfig
    assert P(size=224).size == (224, 224)
    c = P(resize="LETTERBOX", interpolation="Area", layout="nhwc", channel_order="bgr")
    assert (c.resize, c.interpolation, c.layout, c.channel_order) == ("letterbox", "area", "NHWC", "BGR")
    assert c.replace(size=64).size == (64, 64)
    with pytest.raises(TypeError, match="unknown PreprocessConfig fields"):
        c.replace(sise=64)
    t = P.from_timm({"input_size": (3, 240, 240), "interpolation": "bilinear", "mean": (0.5,) * 3,
                     "std": (0.5,) * 3, "crop_pct": 0.9, "crop_mode": "center"})
    assert t.size == (240, 240) and t.interpolation == "bilinear_aa" and t.crop_pct == 0.9
    assert P.from_timm({"input_size": (3, 224, 224), "interpolation": "bicubic"}).interpolation == "bicubic_aa"
    with pytest.raises(ValueError, match="crop_mode 'border'"):
        P.from_timm({"input_size": (3, 224, 224), "crop_mode": "border"})


# ----------------------------------------------------------------------------- found by an outside review
def test_ctrl_c_right_after_a_chunk_is_written_does_not_write_it_twice(tmp_path, photos, tiny, monkeypatch):
    from pyimgcls.jobs import _writers

    d = tmp_path / "d"
    d.mkdir()
    for i in range(40):
        Image.fromarray(photos["coffee"][::8, ::8]).save(d / f"i{i:02d}.png")
    real = _writers.AppendWriter.write
    calls = [0]

    def write(self, rows):
        real(self, rows)
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt  # after the rows are on disk, before the loop moves on

    monkeypatch.setattr(_writers.AppendWriter, "write", write)
    out = str(tmp_path / "o.jsonl")
    clf = pyimgcls.Classifier(tiny)
    with pytest.raises(KeyboardInterrupt, match="16 rows saved"):
        pyimgcls.score([str(d)], out=out, classifier=clf, chunk_size=8, progress=False)
    monkeypatch.setattr(_writers.AppendWriter, "write", real)
    pyimgcls.score([str(d)], out=out, classifier=clf, progress=False)
    paths = [json.loads(x)["path"] for x in open(out)]
    assert len(paths) == 40 == len(set(paths))


def test_csv_embeddings_run_again_after_a_finished_run(tmp_path, photos, tiny):
    d = tmp_path / "d"
    d.mkdir()
    for i in range(3):
        Image.fromarray(photos["coffee"][::8, ::8]).save(d / f"i{i}.png")
    out = str(tmp_path / "o.csv")
    clf = pyimgcls.Classifier(tiny)
    pyimgcls.score([str(d)], out=out, classifier=clf, embeddings=True, progress=False)
    first = np.load(out + ".embeddings.npy")
    Image.fromarray(photos["chelsea"][::8, ::8]).save(d / "new.png")
    s = pyimgcls.score([str(d)], out=out, classifier=clf, embeddings=True, progress=False)
    assert s.images == 1 and s.skipped == 3
    emb = np.load(out + ".embeddings.npy")
    df = pd.read_csv(out)
    assert emb.shape == (4, 3) and len(df) == 4 and not os.path.exists(out + ".embeddings.f32")
    np.testing.assert_array_equal(emb[:3], first)
    want = clf.embed([str(d / "new.png")])
    np.testing.assert_allclose(emb[list(df["path"]).index(str(d / "new.png"))], want[0], rtol=1e-6)


def test_carriage_returns_and_backslashes_in_names_keep_rows_apart(tmp_path, photos, tiny):
    d = tmp_path / "d"
    d.mkdir()
    names = [b"cr\rname.png", b"caf\xe9.png", b"caf\\xe9.png", b"plain.png"]
    for n in names:
        Image.fromarray(photos["coffee"][::8, ::8]).save(os.fsdecode(os.path.join(os.fsencode(d), n)), format="PNG")
    clf = pyimgcls.Classifier(tiny)
    for ext in (".csv", ".jsonl"):
        out = str(tmp_path / f"o{ext}")
        for _ in range(2):  # the second run resumes: every row found, none cut, none re-scored
            s = pyimgcls.score([str(d)], out=out, classifier=clf, embeddings=True, progress=False)
        assert s.images == 0 and s.skipped == 4
        if ext == ".csv":
            import csv as csv_mod

            with open(out, newline="", encoding="utf-8") as f:
                rows = list(csv_mod.DictReader(f))  # a standard reader sees exactly the rows
        else:
            rows = [json.loads(x) for x in open(out, encoding="utf-8")]
        got = sorted(os.path.basename(r["path"]) for r in rows)
        assert got == sorted(["cr\rname.png", "caf\\xe9.png", "caf\\\\xe9.png", "plain.png"]), got


def test_overlapping_arguments_land_in_one_shard(tmp_path, photos, tiny):
    a = tmp_path / "big" / "a"
    a.mkdir(parents=True)
    for i in range(30):
        Image.fromarray(photos["coffee"][::8, ::8]).save(a / f"i{i:02d}.png")
    clf = pyimgcls.Classifier(tiny)
    seen = []
    for i in range(3):
        out = str(tmp_path / f"s{i}.jsonl")
        pyimgcls.score([str(tmp_path / "big"), str(a)], out=out, classifier=clf, shard=(i, 3), progress=False)
        seen += [json.loads(x)["path"] for x in open(out)]
    assert len(seen) == 30 == len(set(seen))


def test_ids_must_be_unique_and_exactly_one_per_in_memory_input(tmp_path, photos, tiny):
    clf = pyimgcls.Classifier(tiny)
    arrays = [photos["coffee"], photos["chelsea"], photos["rocket"]]
    with pytest.raises(ValueError, match="must be unique: 'a' appears twice"):
        pyimgcls.score(arrays, out=str(tmp_path / "a.jsonl"), classifier=clf, ids=["a", "a", "c"], progress=False)
    with pytest.raises(ValueError, match="more entries than the in-memory inputs"):
        pyimgcls.score(arrays, out=str(tmp_path / "b.jsonl"), classifier=clf, ids=["a", "b", "c", "d"],
                       progress=False)


def test_explicit_gpu_providers_never_fall_back_silently(tiny):
    if "CUDAExecutionProvider" in pyimgcls.runtime.session.available_providers():
        pytest.skip("a GPU is here")
    with pytest.raises(pyimgcls.runtime.session.DeviceUnavailableError, match="CUDAExecutionProvider was asked for"):
        pyimgcls.Classifier(tiny, providers="CUDAExecutionProvider,CPUExecutionProvider")
    assert pyimgcls.Classifier(tiny, providers="CPUExecutionProvider").session.providers == ["CPUExecutionProvider"]


def test_settings_change_message_names_the_field(tmp_path, photos, tiny):
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(photos["coffee"][::8, ::8]).save(d / "a.png")
    out = str(tmp_path / "o.csv")
    pyimgcls.score([str(d)], out=out, classifier=pyimgcls.Classifier(tiny), progress=False)
    with pytest.raises(pyimgcls.jobs.score.OutputExistsError, match=r'preprocess.interpolation: "bilinear" -> "area"'):
        pyimgcls.score([str(d)], out=out, classifier=pyimgcls.Classifier(tiny, preprocess={"interpolation": "area"}),
                       progress=False)
