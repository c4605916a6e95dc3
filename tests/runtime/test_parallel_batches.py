"""The CPU batch path's workers (``parallel_batches``): each batch read, decoded, preprocessed and
run on one thread, results in input order, bad items as error entries, bounded run-ahead, errors
raised at their batch's place, and a task's answers identical to the overlapped pipeline's."""

import os
import threading
import time

import numpy as np
import pytest

import pyimgcls
from pyimgcls import Classifier, Detector, PreprocessConfig
from pyimgcls.io.sources import Item, iter_items
from pyimgcls.runtime.pipeline import parallel_batches, prepare_batches

CFG = PreprocessConfig(size=(32, 32), resize="center_crop", mean=(0, 0, 0), std=(1, 1, 1))


def _inputs(photos, tmp_path, n=23):
    """Mixed inputs: arrays of several sizes, encoded files, a missing file and corrupt bytes."""
    import cv2

    base = list(photos.values())
    out = []
    for i in range(n):
        img = base[i % len(base)][: 40 + 7 * i, : 50 + 5 * i]
        if i % 5 == 1:
            p = tmp_path / f"f{i}.png"
            cv2.imwrite(str(p), img[:, :, ::-1])
            out.append(str(p))
        elif i % 5 == 3:
            out.append(str(tmp_path / f"missing{i}.jpg"))
        elif i % 7 == 4:
            out.append(b"\xff\xd8 not a jpeg")
        else:
            out.append(np.ascontiguousarray(img))
    return out


def _run(batch):
    return [batch.reshape(len(batch), -1).sum(axis=1, dtype=np.float64), batch[:, :1, :2, :2].copy()]


def _workers_alive():
    return [t for t in threading.enumerate() if t.name.startswith("pyimgcls-worker")]


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_same_batches_as_the_overlapped_pipeline(photos, tmp_path, workers, batch_size):
    inputs = _inputs(photos, tmp_path)
    want = list(prepare_batches(iter_items(inputs), CFG, batch_size=batch_size, threads=2))
    got = list(parallel_batches(iter_items(inputs), CFG, _run, batch_size=batch_size, workers=workers))
    assert len(got) == len(want) == -(-len(inputs) // batch_size)
    for (p, outs, dt), w in zip(got, want):
        assert [it.source for it in p.items] == [it.source for it in w.items]
        assert p.ok == w.ok
        assert {k: (type(e), str(e)) for k, e in p.errors.items()} == {k: (type(e), str(e)) for k, e in w.errors.items()}
        if w.batch is None:
            assert p.batch is None and outs is None and dt == 0.0
            continue
        np.testing.assert_array_equal(p.batch, w.batch)
        assert [t.original_size for t in p.transforms] == [t.original_size for t in w.transforms]
        for a, b in zip(outs, _run(w.batch)):
            np.testing.assert_array_equal(a, b)
        assert dt >= 0.0 and p.decode_s >= 0.0


def test_an_error_in_the_model_comes_at_its_batch_after_the_ones_before(photos):
    img = photos["astronaut"][:64, :64]
    calls = []

    def run(batch):
        calls.append(batch.shape[0])
        if (batch.reshape(len(batch), -1).max(axis=1) == 0).any():  # the poisoned batch
            raise RuntimeError("model failed")
        return _run(batch)

    items = [np.ascontiguousarray(img) for _ in range(40)]
    items[17] = np.zeros((64, 64, 3), np.uint8)  # the only all-zero model input
    seen = []
    with pytest.raises(RuntimeError, match="model failed"):
        for p, outs, _ in parallel_batches(iter_items(items), CFG, run, batch_size=4, workers=3):
            seen.append(len(p.items))
    assert seen == [4, 4, 4, 4]  # batches 0-3; batch 4 holds item 17
    time.sleep(0.05)
    assert not _workers_alive()


def test_an_error_from_the_input_iterator_comes_after_the_batches_before_it(photos):
    img = np.ascontiguousarray(photos["coffee"][:50, :60])

    def items():
        for i in range(10):
            yield Item(f"<a{i}>", img)
        raise OSError("listing failed")

    seen = []
    with pytest.raises(OSError, match="listing failed"):
        for p, _, _ in parallel_batches(items(), CFG, _run, batch_size=3, workers=2):
            seen.append([it.source for it in p.items])
    # the batch the iterator failed in is not run (as in the overlapped pipeline): the run stops there
    assert seen == [["<a0>", "<a1>", "<a2>"], ["<a3>", "<a4>", "<a5>"], ["<a6>", "<a7>", "<a8>"]]
    assert not _workers_alive()


@pytest.mark.parametrize("workers, ahead", [(1, 0), (2, 1), (3, 2)])
def test_run_ahead_is_bounded(photos, workers, ahead):
    img = np.ascontiguousarray(photos["chelsea"][:40, :40])
    pulled = [0]

    def items():
        for i in range(10_000):
            pulled[0] += 1
            yield Item(f"<a{i}>", img)

    gen = parallel_batches(items(), CFG, _run, batch_size=4, workers=workers, ahead=ahead)
    next(gen)
    time.sleep(0.3)  # let every worker take what it may
    assert pulled[0] <= 4 * (workers + ahead + 1)
    for _ in range(5):
        next(gen)
    time.sleep(0.3)
    assert pulled[0] <= 4 * (workers + ahead + 6)
    gen.close()
    assert not _workers_alive()


def test_closing_early_stops_the_workers(photos):
    img = np.ascontiguousarray(photos["rocket"][:80, :80])
    for p, _, _ in parallel_batches(iter_items([img] * 200), CFG, _run, batch_size=2, workers=4):
        break
    assert not _workers_alive()


def _wait_workers_gone(timeout=10.0):
    deadline = time.monotonic() + timeout
    while _workers_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    return _workers_alive()


def test_an_abandoned_run_collected_on_a_worker_thread_neither_deadlocks_nor_fails(monkeypatch):
    """The garbage collector runs finalizers on whatever thread allocates, a worker included: an
    abandoned generator (in a reference cycle) closed there must not join the workers (itself,
    or one waiting for the input lock that this thread holds)."""
    import gc
    import sys

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    img = np.full((40, 40, 3), 7, np.uint8)
    dropped = threading.Event()

    def items():
        for i in range(1000):
            if i == 8:  # a worker takes the third batch: the collector runs on it, input lock held
                dropped.wait(10)
                gc.collect()
            yield Item(f"<a{i}>", img)

    class Holder:
        pass

    gen = parallel_batches(items(), CFG, _run, batch_size=4, workers=2)
    next(gen)
    h = Holder()
    h.gen, h.me = gen, h  # only a cycle holds the generator now
    del gen, h
    dropped.set()
    assert not _wait_workers_gone()
    assert unraisable == []


def test_a_worker_that_cannot_start_leaves_no_thread_behind(photos, monkeypatch):
    """``can't start new thread`` (a process at its thread limit) on the second worker: the error
    reaches the caller and the worker already started ends, rather than waiting forever."""
    real = threading.Thread.start

    def start(self):
        if self.name == "pyimgcls-worker-1":
            raise RuntimeError("can't start new thread")
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    img = np.ascontiguousarray(photos["rocket"][:80, :80])
    with pytest.raises(RuntimeError, match="can't start new thread"):
        list(parallel_batches(iter_items([img] * 100), CFG, _run, batch_size=2, workers=3))
    assert not _wait_workers_gone(1.0)


EXIT_WITH_A_RUN_OPEN = """
import numpy as np
from pyimgcls import Classifier
clf = Classifier(threads=2)
it = clf.predict_iter([np.full((1200, 1200, 3), 9, np.uint8)] * 48, batch_size=8)
next(it)  # the workers go on with the next batches while the script ends
print("done", flush=True)
"""

EXIT_WITH_A_LIVE_SOURCE_OPEN = """
import threading
import numpy as np
from pyimgcls import Classifier
from pyimgcls.io.sources import Item
clf = Classifier(threads=2)
img = np.full((64, 64, 3), 9, np.uint8)


def stream():
    for i in range(40):
        yield Item(f"<{i}>", img)
    threading.Event().wait()  # a live source with nothing more to give: a worker waits in it

it = clf.predict_iter(None, items=stream(), batch_size=8)
for _ in range(30):
    next(it)
print("done", flush=True)
"""


@pytest.mark.parametrize("script", [EXIT_WITH_A_RUN_OPEN, EXIT_WITH_A_LIVE_SOURCE_OPEN], ids=["busy", "live-source"])
def test_exiting_with_a_run_left_open_neither_aborts_nor_hangs(tmp_path, script):
    """A script that ends with a ``predict_iter`` unfinished: its workers start no further batch
    and the batches under way end before Python finalizes. A daemon thread still inside native
    code (ONNX Runtime, the kernels) then is frozen there, and the process aborted (``terminate
    called without an active exception``, SIGABRT); a worker waiting in a live input iterator is
    not waited for."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, "done"), r.stderr[-2000:]


def test_empty_input_and_bad_workers():
    assert list(parallel_batches(iter([]), CFG, _run, batch_size=4, workers=2)) == []
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            list(parallel_batches(iter([]), CFG, _run, batch_size=4, workers=bad))


# ---------------------------------------------------------------------------- the tasks


def test_classifier_workers_answer_exactly_as_the_overlapped_pipeline(photos, tmp_path):
    inputs = _inputs(photos, tmp_path, n=30)
    par, one = Classifier(threads=2), Classifier(threads=2, batch_workers=1)
    assert par._workers(par.session) == 2 and one._workers(one.session) == 1
    a = par.predict(inputs, batch_size=5, probabilities=True)
    b = one.predict(inputs, batch_size=5, probabilities=True)
    assert [r.source for r in a] == [r.source for r in b]
    assert [r.error for r in a] == [r.error for r in b]
    assert sum(r.ok for r in a) > 10
    for x, y in zip(a, b):
        if x.ok:
            assert x.top_k == y.top_k and x.image_size == y.image_size
            np.testing.assert_array_equal(x.probabilities, y.probabilities)
    assert par.session._single is not None and one.session._single is None
    good = [x for x in inputs if isinstance(x, np.ndarray)]
    np.testing.assert_array_equal(par.embed(good, batch_size=4), one.embed(good, batch_size=4))
    stats = {}
    list(par.predict_batches(good, batch_size=4, stats=stats))
    assert stats["inference_s"] > 0 and stats["preprocess_s"] > 0
    with pytest.raises(Exception, match="missing3.jpg"):
        par.predict(inputs, errors="raise")


def test_detector_workers_answer_exactly_as_the_overlapped_pipeline(photos):
    model = os.path.join(os.path.dirname(__file__), "..", "assets", "yolo11n_random.onnx")
    det_par = Detector(model, threads=2, conf=0.01)
    det_one = Detector(model, threads=2, conf=0.01, batch_workers=1)
    imgs = [np.ascontiguousarray(p) for p in photos.values()] * 2
    a, b = det_par.predict(imgs, batch_size=2), det_one.predict(imgs, batch_size=2)
    assert det_par.session._single is not None and det_one.session._single is None
    for x, y in zip(a, b):
        assert x.ok and y.ok
        np.testing.assert_array_equal(x.detections.xyxy, y.detections.xyxy)
        np.testing.assert_array_equal(x.detections.confidence, y.detections.confidence)


def test_single_threaded_session_is_kept_and_gives_the_same_outputs(photos):
    clf = Classifier(threads=2)
    one = clf.session.single_threaded()
    assert one is clf.session.single_threaded() and one.threads == 1 and one.session is not clf.session.session
    assert one.single_threaded() is one
    x = np.random.default_rng(0).random((3, 3, 224, 224), dtype=np.float32)
    np.testing.assert_array_equal(one.run(x)[0], clf.session.run(x)[0])
    single = Classifier(threads=1)
    assert single.session.single_threaded() is single.session and single._workers(single.session) == 1


def test_the_single_threaded_session_goes_with_its_task():
    """The worker session holds a second copy of the weights: it is freed with the task, not left
    in a reference cycle for the cyclic garbage collector (which may be off, or run rarely)."""
    import gc
    import weakref

    clf = Classifier(threads=2)
    one = weakref.ref(clf.session.single_threaded())
    gc.disable()
    try:
        del clf
        assert one() is None
    finally:
        gc.enable()


def test_batch_workers_rules(monkeypatch):
    with pytest.raises(ValueError, match="batch_workers must be a positive int"):
        Classifier(batch_workers=0)
    clf = Classifier(threads=2, batch_workers=3)
    assert clf._workers(clf.session) == 3
    import pickle

    assert pickle.loads(pickle.dumps(clf)).batch_workers == 3
    auto = Classifier(threads=2)
    monkeypatch.setattr(pyimgcls.tasks.base, "WORKER_MAX_MODEL", 1000)  # a "large" model keeps one session
    assert auto._workers(auto.session) == 1
    monkeypatch.setattr(auto.session, "providers", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert auto._workers(auto.session) == 1


def test_a_short_input_keeps_one_session(photos):
    clf = Classifier(threads=2)
    imgs = [np.ascontiguousarray(photos["astronaut"])] * 3
    assert len(clf.predict(imgs, batch_size=8)) == 3
    assert clf.session._single is None  # 3 images: no second session built
    clf.predict(imgs * 11, batch_size=8)  # 33 >= 2 workers x 2 x 8
    assert clf.session._single is not None


@pytest.mark.parametrize("n_before", [0, 5, 40])
def test_an_input_error_while_peeking_comes_after_the_items_before_it(photos, n_before):
    img = np.ascontiguousarray(photos["coffee"][:50, :60])

    def items():
        for i in range(n_before):
            yield Item(f"<a{i}>", img)
        raise OSError("listing failed")

    clf = Classifier(threads=2)
    got = []
    with pytest.raises(OSError, match="listing failed"):
        for r in clf.predict_iter(None, items=items(), batch_size=5):
            got.append(r.source)
    assert got == [f"<a{i}>" for i in range(n_before // 5 * 5)]


def test_the_items_looked_at_first_are_not_kept_for_the_whole_run():
    """A stream of arrays (video frames): the items counted to choose the path are let go once
    their batches are done, like every later item, not held until the run ends."""
    import weakref

    clf = Classifier(threads=2)
    refs = []

    def frames():
        for i in range(120):
            a = np.full((64, 64, 3), i, np.uint8)
            refs.append(weakref.ref(a))
            yield a

    kept = None
    for k, _ in enumerate(clf.predict_iter(frames(), batch_size=8)):
        if k == 100:  # 2 workers x 2 x 8 items were looked at first: all long done by now
            kept = [i for i, w in enumerate(refs[:32]) if w() is not None]
            break
    assert clf.session._single is not None
    assert kept == []
