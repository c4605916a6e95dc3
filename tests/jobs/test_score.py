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
from pyimgcls.jobs.score import OutputExistsError, OutputLockedError
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
    """The output as a DataFrame whose ``error`` column is "" where there is none (null in the file)."""
    if out.endswith(".parquet"):
        df = pq.read_table(out).to_pandas()
    elif out.endswith(".jsonl"):
        df = pd.read_json(out, lines=True, dtype=False)
    else:
        df = pd.read_csv(out, keep_default_na=False)
    if "error" in df:
        df["error"] = [e if isinstance(e, str) else "" for e in df["error"]]
    return df


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
    assert score([f"@{lst}"], out=out3, classifier=clf, progress=False).images == 2
    out4 = str(tmp_path / "notalist.csv")  # without @ a .txt file is one input, which is not an image
    s = score([str(lst)], out=out4, classifier=clf, progress=False)
    assert s.images == 1 and s.errors == 1


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
    # folder a holds a dangling link: that input fails, so the exit status is 1 (some inputs failed)
    assert cli_main(["score", str(image_dir / "a"), "--out", out, "--quiet"]) == 1
    assert cli_main(["score", str(image_dir / "a"), "--out", out, "--no-resume"]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli_main(["score", str(image_dir / "a"), "--out", out, "--no-resume", "--overwrite"]) == 1
    assert "scored 4 images" in capsys.readouterr().err
    good = tmp_path / "good"
    good.mkdir()
    os.symlink(image_dir / "a" / "chelsea.jpg", good / "chelsea.jpg")
    assert cli_main(["score", str(good), "--out", str(tmp_path / "g.csv"), "--quiet"]) == 0


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
    from pyimgcls.jobs._writers import AppendWriter

    p = str(tmp_path / f"x.{fmt}")
    w = AppendWriter(p, fmt, False, False)
    row = {"path": "a.jpg", "label": 1, "label_name": "x", "score": 0.5, "top_k_ids": [1], "top_k_names": ["x"],
           "top_k_scores": [0.5], "width": 4, "height": 3, "stored_width": 4, "stored_height": 3, "error": None}
    w.write([row, dict(row, path="b.jpg")])
    with open(p, "a") as f:
        f.write('{"path": "c.jp' if fmt == "jsonl" else "c.jpg,3,y,0.2")  # killed mid-row
    assert w.done_paths() == {"a.jpg", "b.jpg"}
    assert open(p).read().endswith("\n")
    w.write([dict(row, path="c.jpg")])
    assert w.done_paths() == {"a.jpg", "b.jpg", "c.jpg"}


# ----------------------------------------------------------------------------- no row lost or doubled
@pytest.fixture
def tiny(tmp_path_factory):
    """A fast classifier (the pipeline is under test, not the CNN)."""
    from pyimgcls import PreprocessConfig

    d = tmp_path_factory.mktemp("tiny")
    cfg = PreprocessConfig(size=(32, 32), resize="stretch").to_json()
    return Classifier(tiny_classifier(str(d / "tiny.onnx"), meta={"pyimgcls.preprocess": cfg}), threads=1)


def _jpegs(folder, photos, n, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    base = [photos[k] for k in ("chelsea", "coffee", "astronaut", "rocket")]
    paths = []
    for i in range(n):
        name = names[i] if names else f"img{i:03d}.jpg"
        p = os.path.join(os.fsencode(folder) if isinstance(name, bytes) else str(folder), name)
        Image.fromarray(base[i % 4][::4, ::4]).save(p if isinstance(p, str) else os.fsdecode(p), format="JPEG")
        paths.append(p)
    return paths


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_relative_absolute_and_overlapping_inputs_give_one_row_each(tiny, tmp_path, photos, monkeypatch, ext):
    _jpegs(tmp_path / "d", photos, 5)
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / f"o{ext}")
    s1 = score(["d", "d/img001.jpg", "./d/img001.jpg"], out=out, classifier=tiny, progress=False)
    assert s1.images == 5 and s1.skipped == 2
    s2 = score([str(tmp_path / "d"), str(tmp_path / "d" / ".." / "d")], out=out, classifier=tiny, progress=False)
    assert s2.images == 0 and s2.skipped == 10
    df = _read(out)
    assert len(df) == 5 and df["path"].is_unique
    assert sorted(df["path"]) == [str(tmp_path / "d" / f"img{i:03d}.jpg") for i in range(5)]


def test_a_second_run_on_the_same_output_is_refused(tiny, tmp_path, photos):
    _jpegs(tmp_path / "d", photos, 3)
    out = str(tmp_path / "o.parquet")
    code = (f"import fcntl, os, sys, time; fd = os.open({out + '.lock'!r}, os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid 4242 on testhost since now'); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match="pid 4242 on testhost"):
            score([str(tmp_path / "d")], out=out, classifier=tiny, progress=False)
        assert not os.path.exists(out)
    finally:
        holder.kill()
        holder.wait()
    assert score([str(tmp_path / "d")], out=out, classifier=tiny, progress=False).images == 3  # the lock died
    assert not os.path.exists(out + ".lock")


def test_two_concurrent_runs_never_double_rows(tmp_path, photos):
    _jpegs(tmp_path / "d", photos, 60)
    out = str(tmp_path / "o.jsonl")
    cmd = [sys.executable, "-m", "pyimgcls", "score", str(tmp_path / "d"), "--out", out, "--quiet", "--threads", "1",
           "--batch-size", "4"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes in ([0, 0], [0, 2]), results  # the second either waited its turn (resumed) or was refused
    if codes == [0, 2]:
        assert "is being written by another pyimgcls score run" in next(e for c, e in results if c == 2)
    df = _read(out)
    assert len(df) == 60 and df["path"].is_unique


KILL_SCRIPT = r"""
import os, signal, shutil, sys
import pyimgcls
from pyimgcls import Classifier, score

k = int(sys.argv[3])
calls = [0]

def wrap(fn):
    def inner(*a, **kw):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **kw)
    return inner

clf = Classifier(sys.argv[4], threads=1)
# every durable step of a run: fsyncs, renames and removals
os.fsync, os.replace, shutil.rmtree, os.remove, os.unlink = (wrap(os.fsync), wrap(os.replace), wrap(shutil.rmtree),
                                                             wrap(os.remove), wrap(os.unlink))
score([sys.argv[1]], out=sys.argv[2], classifier=clf, progress=False, chunk_size=2, batch_size=2)
print("steps", calls[0])
"""


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".jsonl"])
def test_kill_at_every_step_then_resume_gives_one_row_per_input(tmp_path, photos, tiny, ext):
    """SIGKILL at each fsync / rename / removal of a run (the finish included), then a normal
    resume: exactly one row per input, every time."""
    _jpegs(tmp_path / "d", photos, 5)
    model = tiny.model_path
    base = [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "d")]
    r = subprocess.run(base + [str(tmp_path / f"probe{ext}"), "0", model], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    steps = int(r.stdout.split()[-1])
    assert steps > 5
    for k in range(1, steps + 1):
        out = str(tmp_path / f"k{k}{ext}")
        r = subprocess.run(base + [out, str(k), model], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == -signal.SIGKILL, (k, r.stderr)
        s = score([str(tmp_path / "d")], out=out, classifier=tiny, progress=False)
        df = _read(out)
        assert len(df) == 5 and df["path"].is_unique, (k, s, list(df["path"]))
        assert not os.path.exists(out + ".parts") and not os.path.exists(out + ".lock")


def test_csv_resume_with_line_breaks_in_file_names(tiny, tmp_path, photos):
    """A file name holding a line break is quoted in CSV; resuming after a row cut at any byte
    keeps every complete row and drops only the cut one."""
    from pyimgcls.jobs._writers import AppendWriter

    paths = _jpegs(tmp_path / "d", photos, 4, names=["a.jpg", "two\nlines.jpg", "c\r\n.jpg", "d.jpg"])
    out = str(tmp_path / "o.csv")
    score([str(tmp_path / "d")], out=out, classifier=tiny, progress=False)
    full = open(out, "rb").read()
    want = _read(out)
    assert sorted(want["path"]) == sorted(paths) and len(want) == 4
    # record boundaries: each parsed record written back alone gives its exact bytes
    import csv as csv_mod
    import io as io_mod

    bounds, pos = [0], 0
    for rec in csv_mod.reader(io_mod.StringIO(full.decode(), newline="")):
        b = io_mod.StringIO()
        csv_mod.writer(b, lineterminator="\r\n").writerow(rec)
        pos += len(b.getvalue().encode())
        bounds.append(pos)
    assert pos == len(full)
    for cut in range(len(full) + 1):
        with open(out, "wb") as f:
            f.write(full[:cut])
        done = AppendWriter(out, "csv", False, False).done_paths()
        kept = open(out, "rb").read()
        assert kept == full[:max(b for b in bounds if b <= cut)] or (kept == b"" and cut < bounds[1]), cut
        assert done == set(_read(out)["path"]) if kept else not done
    s = score([str(tmp_path / "d")], out=out, classifier=tiny, progress=False)  # resume from a cut mid-row
    df = _read(out)
    assert len(df) == 4 and sorted(df["path"]) == sorted(paths) and s.images + s.skipped == 4


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_non_utf8_file_names_lose_nothing(tiny, tmp_path, photos, ext):
    d = tmp_path / "d"
    _jpegs(d, photos, 3, names=[b"good.jpg", b"caf\xe9.jpg", b"\xff\xfe.jpg"])
    out = str(tmp_path / f"o{ext}")
    s = score([str(d)], out=out, classifier=tiny, progress=False, chunk_size=3)
    assert s.images == 3 and s.errors == 0
    df = _read(out)
    assert sorted(df["path"]) == sorted([str(d / "good.jpg"), str(d) + "/caf\\xe9.jpg", str(d) + "/\\xff\\xfe.jpg"])
    assert (df["error"] == "").all() and df["label"].notna().all()
    s2 = score([str(d)], out=out, classifier=tiny, progress=False)  # resume finds them all done
    assert s2.images == 0 and s2.skipped == 3 and len(_read(out)) == 3


def test_a_folder_that_cannot_be_listed_is_reported(tiny, tmp_path, photos, monkeypatch):
    d = tmp_path / "d"
    _jpegs(d / "ok", photos, 2)
    _jpegs(d / "locked", photos, 2)
    real_scandir = os.scandir

    def scandir(path="."):  # as for a folder without read permission (root ignores chmod)
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = str(tmp_path / "o.jsonl")
    s = score([str(d)], out=out, classifier=tiny, progress=False)
    df = _read(out)
    assert s.images == 3 and s.errors == 1 and len(df) == 3
    row = df[df["error"] != ""].iloc[0]
    assert row["path"] == str(d / "locked") and "cannot list folder" in row["error"]
    assert "Permission denied" in row["error"]


def test_parquet_part_temporaries_are_hidden_and_stale_ones_removed(image_dir, tmp_path, monkeypatch):
    """A part file killed mid-write is a hidden ``.NAME.tmp-PID`` (pyarrow reading the ``.parts``
    folder as a dataset skips it); a later run removes it once its process is gone."""
    from pyimgcls.jobs import _writers

    out = str(tmp_path / "p.parquet")
    score(str(image_dir / "a"), out=out, batch_size=2, chunk_size=1, progress=False)  # finished: no parts
    os.makedirs(out + ".parts")
    # a finished part, and a half-written temporary of a process that no longer exists
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    pq.write_table(pq.read_table(out).slice(0, 1), out + ".parts/part-000000-1.parquet")
    stale = os.path.join(out + ".parts", f".part-000001-2.parquet.tmp-{dead}")
    open(stale, "wb").close()
    assert len(pq.read_table(out + ".parts")) == 1  # the 0-byte temporary is not read as a part
    seen = []
    real = _writers.atomic_write
    monkeypatch.setattr(_writers, "atomic_write", lambda p, d, **kw: (seen.append((p, kw)), real(p, d, **kw))[1])
    _writers.remove_stale_temporaries(out)
    assert not os.path.exists(stale)
    os.remove(out + ".parts/part-000000-1.parquet")
    out2 = str(tmp_path / "q.parquet")
    score(str(image_dir / "a"), out=out2, batch_size=2, chunk_size=1, progress=False)
    assert any(p.startswith(out2 + ".parts") and kw.get("hidden_tmp") for p, kw in seen)
