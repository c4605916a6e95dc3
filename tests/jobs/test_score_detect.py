"""``score(..., task="detect")``: detections with the guarantees of ``score`` (one row per input,
resume, shards, per-item errors, settings recorded, durable chunks)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pyimgcls import Detector, score
from pyimgcls.jobs.detect import ROW_COLUMNS, score_detections
from pyimgcls.jobs.score import OutputExistsError, ScoreInterrupted
from _helpers.models import bright_box_detector


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    meta = {"task": "detect", "names": "{0: 'box', 1: 'other'}", "imgsz": "[160, 160]", "stride": "32"}
    return bright_box_detector(str(d / "bright.onnx"), metadata=meta)


@pytest.fixture(scope="module")
def det(model):
    return Detector(model, threads=2)


def _scenes(d, n):
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = int(rng.integers(60, 300)), int(rng.integers(60, 300))
        img = np.full((h, w, 3), 80, np.uint8)
        if i % 3:  # every third image has nothing to find
            x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            img[y1:y1 + h // 3, x1:x1 + w // 3] = 255
        Image.fromarray(img).save(d / f"s{i:02d}.png")
    return d


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = _scenes(tmp_path_factory.mktemp("scenes") / "s", 7)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return d


def _read(out):
    if out.endswith(".parquet"):
        return pq.read_table(out).to_pylist()
    if out.endswith(".jsonl"):
        return [json.loads(x) for x in open(out, encoding="utf-8")]
    import csv

    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # list columns are JSON text, null cells empty
        for k in ("boxes", "scores", "class_ids", "class_names", "keypoints"):
            r[k] = json.loads(r[k]) if r[k] != "" else None
        for k in ("count", "width", "height", "stored_width", "stored_height"):
            r[k] = None if r[k] == "" else int(r[k])
        r["error"] = r["error"] or None
    return rows


@pytest.mark.parametrize("ext", [".parquet", ".jsonl", ".csv"])
def test_rows_equal_predict_in_every_format(det, scenes, tmp_path, ext):
    out = str(tmp_path / f"d{ext}")
    s = score([str(scenes)], task="detect", detector=det, out=out, progress=False, batch_size=3)
    want = det.predict([str(scenes)])
    rows = _read(out)
    assert s.images == len(rows) == len(want) == 8 and s.errors == 1
    assert list(rows[0]) == ROW_COLUMNS
    by = {r["path"]: r for r in rows}
    for w in want:
        r = by[os.path.abspath(w.source)]
        if w.error:
            assert r["error"] and r["count"] is None and r["boxes"] == [] and "broken.png" in r["path"]
            continue
        assert r["error"] is None and r["count"] == len(w.detections)
        assert (r["height"], r["width"]) == w.image_size
        assert np.allclose(np.asarray(r["boxes"], np.float32).reshape(-1, 4), w.detections.xyxy)
        assert r["class_names"] == w.detections.labels
    assert sum(r["count"] or 0 for r in rows) == 4  # the scenes with a rectangle (1, 2, 4, 5)


def test_resume_skips_done_and_refuses_other_settings(det, model, scenes, tmp_path):
    out = str(tmp_path / "d.parquet")
    first = score_detections([str(scenes / "s00.png"), str(scenes / "s01.png")], detector=det, out=out,
                             progress=False)
    assert first.images == 2
    s = score_detections([str(scenes)], detector=det, out=out, progress=False)
    assert (s.images, s.skipped) == (6, 2)
    rows = _read(out)
    assert len(rows) == 8 and len({r["path"] for r in rows}) == 8
    with pytest.raises(OutputExistsError, match=r"detector\.conf: 0\.25 -> 0\.5"):
        score_detections([str(scenes)], detector=Detector(model, conf=0.5), out=out, progress=False)
    meta = json.loads(pq.read_schema(out).metadata[b"pyimgcls"])
    assert meta["settings"]["names"] == ["box", "other"] and meta["settings"]["task"] == "detect"


def test_interrupted_run_keeps_finished_rows_and_resumes(det, model, tmp_path):
    src = _scenes(tmp_path / "many", 12)
    stop = Detector(model, threads=2)  # the real detector, with Ctrl-C after five results
    real = stop.predict_iter

    def interrupted(inputs, **kw):
        for k, r in enumerate(real(inputs, **kw)):
            if k == 5:
                raise KeyboardInterrupt
            yield r

    stop.predict_iter = interrupted
    out = str(tmp_path / "d.jsonl")
    with pytest.raises(ScoreInterrupted, match="5 rows saved"):
        score_detections([str(src)], detector=stop, out=out, progress=False, chunk_size=2)
    assert len(_read(out)) == 5
    s = score_detections([str(src)], detector=det, out=out, progress=False)
    assert (s.images, s.skipped) == (7, 5)
    rows = _read(out)
    assert sorted(os.path.basename(r["path"]) for r in rows) == [f"s{i:02d}.png" for i in range(12)]


def test_shards_split_the_inputs(det, scenes, tmp_path):
    paths = []
    for i in range(3):
        out = str(tmp_path / f"p{i}.jsonl")
        score_detections([str(scenes)], detector=det, out=out, progress=False, shard=(i, 3))
        paths += [r["path"] for r in _read(out)]
    assert sorted(paths) == sorted(os.path.join(scenes, n) for n in os.listdir(scenes))


def test_task_arguments_are_checked(det, scenes, tmp_path):
    with pytest.raises(ValueError, match="embeddings apply to task='classify'"):
        score([str(scenes)], task="detect", detector=det, out=str(tmp_path / "x.parquet"), embeddings=True)
    with pytest.raises(ValueError, match="task must be 'classify' or 'detect'"):
        score([str(scenes)], task="segment", out=str(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match="detector= applies to task='detect'"):
        score([str(scenes)], detector=det, out=str(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match=r"out must end with one of \['.csv', '.jsonl', '.parquet'\]"):
        score_detections([str(scenes)], detector=det, out=str(tmp_path / "x.json"))
    assert not os.listdir(tmp_path)


KILL_SCRIPT = r"""
import os, signal, shutil, sys
from pyimgcls import Detector
from pyimgcls.jobs.detect import score_detections

k = int(sys.argv[3])
calls = [0]

def wrap(fn):
    def inner(*a, **kw):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **kw)
    return inner

det = Detector(sys.argv[4], threads=1)
os.fsync, os.replace, shutil.rmtree, os.remove, os.unlink = (wrap(os.fsync), wrap(os.replace), wrap(shutil.rmtree),
                                                             wrap(os.remove), wrap(os.unlink))
score_detections([sys.argv[1]], out=sys.argv[2], detector=det, progress=False, chunk_size=2, batch_size=2)
print("steps", calls[0])
"""


def test_killed_runs_resume_with_one_row_per_input(det, model, tmp_path):
    """SIGKILL in the middle of a Parquet run (between part files) and in its finish (the final file
    renamed into place, the parts not yet removed), then a normal resume: exactly one row per input, every time. (The loop
    and the writers are the classifier's, killed at every step in test_score.py; this checks the
    detection schema through them.)"""
    src = _scenes(tmp_path / "d", 3)
    base = [sys.executable, "-c", KILL_SCRIPT, str(src)]
    r = subprocess.run(base + [str(tmp_path / "probe.parquet"), "0", model], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    steps = int(r.stdout.split()[-1])
    assert steps > 5, r.stderr
    for k in (steps // 2, steps - 2):
        out = str(tmp_path / f"k{k}.parquet")
        r = subprocess.run(base + [out, str(k), model], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == -signal.SIGKILL, (k, r.stderr)
        if k == steps - 2:  # the state this kill point is for
            assert os.path.exists(out) and os.path.isdir(out + ".parts")
        score_detections([str(src)], out=out, detector=det, progress=False)
        rows = _read(out)
        assert len(rows) == 3 and len({x["path"] for x in rows}) == 3, k
        assert not os.path.exists(out + ".parts") and not os.path.exists(out + ".lock")
