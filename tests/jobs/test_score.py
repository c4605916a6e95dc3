import json
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

from pyimgcls import Classifier, score
from pyimgcls.jobs.bench import run_bench
from pyimgcls.cli.main import main as cli_main
from pyimgcls.jobs.score import OutputExistsError
from _helpers.models import tiny_classifier


@pytest.fixture(scope="module")
def clf():
    return Classifier(threads=2)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("imgs")
    names = []
    for i, (name, img) in enumerate(sorted(photos.items())):
        sub = d / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        p = sub / f"{name}.jpg"
        Image.fromarray(img).save(p, quality=90)
        names.append(str(p))
    (d / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    os.symlink(d / "nowhere.jpg", d / "a" / "dangling.jpg")  # unreadable
    return d


def _read(out):
    if out.endswith(".parquet"):
        return pq.read_table(out).to_pandas()
    if out.endswith(".jsonl"):
        return pd.read_json(out, lines=True)
    return pd.read_csv(out, keep_default_na=False)


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_rows_equal_predict_in_every_format(clf, image_dir, tmp_path, ext):
    out = str(tmp_path / f"scores{ext}")
    s = score([str(image_dir)], out=out, classifier=clf, batch_size=3, progress=False, top_k=3)
    want = clf.predict([str(image_dir)], top_k=3)
    df = _read(out)
    assert s.images == len(want) == len(df) == 8 and s.errors == 2
    assert list(df["path"]) == [w.source for w in want]
    for (_, row), w in zip(df.iterrows(), want):
        if w.error:
            assert row["error"] and row["error"] == w.error
            continue
        assert int(row["label"]) == w.label and row["label_name"] == w.label_name
        assert float(row["score"]) == pytest.approx(w.score, rel=1e-12)
        ids = json.loads(row["top_k_ids"]) if ext == ".csv" else list(row["top_k_ids"])
        assert ids == [i for i, _, _ in w.top_k]
        assert row["error"] == ""


def test_embeddings(clf, image_dir, tmp_path):
    ref = clf.embed([str(image_dir)], errors="record")
    out = str(tmp_path / "e.parquet")
    score([str(image_dir)], out=out, classifier=clf, embeddings=True, progress=False)
    df = _read(out)
    for i, e in enumerate(df["embedding"]):
        if e is None:
            assert np.isnan(ref[i]).all()
        else:
            np.testing.assert_allclose(np.asarray(e), ref[i], rtol=1e-6)
    out = str(tmp_path / "e.csv")
    score([str(image_dir)], out=out, classifier=clf, embeddings=True, progress=False)
    emb = np.load(out + ".embeddings.npy")
    np.testing.assert_allclose(emb, ref, rtol=1e-6)  # NaN rows where the file was bad
    out = str(tmp_path / "e.jsonl")
    score([str(image_dir)], out=out, classifier=clf, embeddings=True, progress=False)
    assert len(_read(out)["embedding"][0]) == ref.shape[1]


def test_empty_dir_glob_and_list_inputs(clf, image_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "empty.csv")
    s = score([str(empty)], out=out, classifier=clf, progress=False)
    assert s.images == 0 and len(_read(out)) == 0
    out2 = str(tmp_path / "glob.jsonl")
    s = score([str(image_dir / "*" / "c*.jpg")], out=out2, classifier=clf, progress=False)
    assert sorted(os.path.basename(p) for p in _read(out2)["path"]) == ["chelsea.jpg", "china.jpg", "coffee.jpg", "corrupt.jpg"]
    lst = tmp_path / "list.txt"
    lst.write_text(f"{image_dir / 'a' / 'chelsea.jpg'}\n# comment\n\n{image_dir / 'b' / 'astronaut.jpg'}\n")
    out3 = str(tmp_path / "list.csv")
    assert score([str(lst)], out=out3, classifier=clf, progress=False).images == 2


def test_resume_skips_done_and_refuses_other_models(clf, image_dir, tmp_path):
    out = str(tmp_path / "r.csv")
    score([str(image_dir / "a")], out=out, classifier=clf, progress=False)
    s = score([str(image_dir)], out=out, classifier=clf, progress=False)
    df = _read(out)
    assert s.skipped == 4 and s.images == 4 and len(df) == 8 and df["path"].is_unique
    # another model: refused with a clear message unless overwrite

    other = tiny_classifier(str(tmp_path / "other.onnx"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oc = Classifier(other)
    with pytest.raises(OutputExistsError, match="other settings.*model"):
        score([str(image_dir)], out=out, classifier=oc, progress=False)
    s = score([str(image_dir)], out=out, classifier=oc, progress=False, overwrite=True)
    assert s.images == 8 and s.skipped == 0
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(OutputExistsError, match="not written by pyimgcls"):
        score([str(image_dir)], out=str(foreign), classifier=clf, progress=False)
    with pytest.raises(ValueError, match="out must end with"):
        score([str(image_dir)], out=str(tmp_path / "x.xlsx"), classifier=clf)


@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".csv"])
def test_resume_after_sigkill(tmp_path, photos, ext):
    src = tmp_path / "many"
    src.mkdir()
    base = [photos[k] for k in ("chelsea", "coffee", "astronaut", "rocket")]
    n = 160
    for i in range(n):
        Image.fromarray(base[i % 4][:: 1 + i % 3, :: 1 + i % 2]).save(src / f"img{i:04d}.jpg", quality=80)
    out = str(tmp_path / f"killed{ext}")
    cmd = [sys.executable, "-m", "pyimgcls", "score", str(src), "--out", out, "--batch-size", "4", "--quiet",
           "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)  # not the source tree: the installed package
    probe = out if ext != ".parquet" else out + ".parts"
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(probe) and (os.path.isdir(probe) and len(os.listdir(probe)) >= 1 or
                                      os.path.isfile(probe) and os.path.getsize(probe) > 2000):
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial_rows = len(pq.read_table(out + ".parts").to_pandas()) if ext == ".parquet" else None
    assert not os.path.exists(out) or ext != ".parquet"  # the final parquet appears only at the end
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    df = _read(out)
    assert len(df) == n and df["path"].is_unique
    assert sorted(os.path.basename(p) for p in df["path"]) == [f"img{i:04d}.jpg" for i in range(n)]
    assert (df["error"] == "").all()
    if partial_rows is not None:
        assert partial_rows > 0


def test_cli_score_refuses_and_overwrites(image_dir, tmp_path, capsys):
    out = str(tmp_path / "c.jsonl")
    assert cli_main(["score", str(image_dir / "a"), "--out", out, "--quiet"]) == 0
    assert cli_main(["score", str(image_dir / "a"), "--out", out, "--no-resume"]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli_main(["score", str(image_dir / "a"), "--out", out, "--no-resume", "--overwrite"]) == 0
    assert "scored 4 images" in capsys.readouterr().err


def test_bench(tmp_path, photos, capsys):
    res = run_bench(batch_sizes=(1, 4), duration=0.2)
    d = res.to_dict()
    assert d["cold_start_ms"]["session"] > 0 and d["cold_start_ms"]["first_inference"] > 0
    assert [b["batch_size"] for b in d["batches"]] == [1, 4]
    for b in d["batches"]:
        assert b["throughput"] > 0 and b["latency_ms"]["p50"] <= b["latency_ms"]["p99"]
        assert set(b["stage_ms_per_image"]) == {"decode", "preprocess", "inference", "postprocess"}
    assert d["peak_rss_mb"] > 0 and d["providers"][-1] == "CPUExecutionProvider"
    Image.fromarray(photos["coffee"]).save(tmp_path / "c.jpg")
    assert cli_main(["bench", "--images", str(tmp_path), "--batch-size", "2", "--duration", "0.1", "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["images"].startswith("1 files") and j["batches"][0]["batch_size"] == 2
    assert cli_main(["bench", "--batch-size", "1", "--duration", "0.1"]) == 0
    assert "img/s" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_cuts_a_row_cut_short(tmp_path, fmt):
    from pyimgcls.jobs.score import _AppendWriter

    p = str(tmp_path / f"x.{fmt}")
    w = _AppendWriter(p, fmt, False)
    row = {"path": "a.jpg", "label": 1, "label_name": "x", "score": 0.5, "top_k_ids": [1], "top_k_names": ["x"],
           "top_k_scores": [0.5], "error": ""}
    w.write([row, dict(row, path="b.jpg")])
    with open(p, "a") as f:
        f.write('{"path": "c.jp' if fmt == "jsonl" else "c.jpg,3,y,0.2")  # killed mid-row
    assert w.done_paths() == {"a.jpg", "b.jpg"}
    assert open(p).read().endswith("\n")
    w.write([dict(row, path="c.jpg")])
    assert w.done_paths() == {"a.jpg", "b.jpg", "c.jpg"}
