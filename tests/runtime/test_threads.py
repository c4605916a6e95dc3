"""``threads=`` means one thing everywhere: 0 = the cores this process may use (affinity mask and
cgroup CPU quota), positive = as given up to a cap, negative = ValueError, non-integer = TypeError."""

import os
import subprocess
import sys

import numpy as np
import pytest

import pyimgcls
from pyimgcls import metrics, ops
from pyimgcls.runtime.threads import MAX_THREADS_PER_CORE, resolve_threads, usable_cores

PROBE = "from pyimgcls.runtime.threads import usable_cores; print(usable_cores())"


def test_resolve_threads_rules():
    n = usable_cores()
    assert 1 <= n <= (os.cpu_count() or 1)
    assert resolve_threads(0) == n and resolve_threads(None) == n
    assert resolve_threads(1) == 1 and resolve_threads(np.int64(2)) == min(2, MAX_THREADS_PER_CORE * n)
    assert resolve_threads(10**9) == MAX_THREADS_PER_CORE * n
    with pytest.raises(ValueError, match="threads must be >= 0"):
        resolve_threads(-1)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="threads must be an int"):
            resolve_threads(bad)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_usable_cores_follow_the_affinity_mask():
    cpu = min(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}}); {PROBE}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def _cgroup_v1_cpu_dir():
    for mount in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        if os.path.isfile(os.path.join(mount, "cpu.cfs_quota_us")):
            return mount
    return None


def test_usable_cores_follow_a_cgroup_cpu_quota():
    """A child cgroup limited to one core (CFS quota = period): a process inside it sees 1 core."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable core already: a 1-core quota would change nothing")
    mount = _cgroup_v1_cpu_dir()
    v2 = os.path.isfile("/sys/fs/cgroup/cgroup.controllers")
    base = mount or ("/sys/fs/cgroup" if v2 else None)
    if base is None:
        pytest.skip("no cgroup CPU controller mounted")
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    rel = next((ln.split(":", 2)[2] for ln in lines if (",cpu," in f",{ln.split(':')[1]},") != v2 and
                (not v2 or ln.startswith("0::"))), "/")
    group = os.path.join(base + rel.rstrip("/"), f"pyimgcls-test-{os.getpid()}")
    try:
        os.mkdir(group)
    except OSError as e:
        pytest.skip(f"cannot create a cgroup here ({e})")
    try:
        try:
            if v2 and not mount:
                with open(os.path.join(group, "cpu.max"), "w") as f:
                    f.write("100000 100000")
            else:
                with open(os.path.join(group, "cpu.cfs_period_us"), "w") as f:
                    f.write("100000")
                with open(os.path.join(group, "cpu.cfs_quota_us"), "w") as f:
                    f.write("100000")
        except OSError as e:
            pytest.skip(f"cannot set a CPU quota here ({e})")
        code = f"import os; open({os.path.join(group, 'cgroup.procs')!r}, 'w').write(str(os.getpid())); {PROBE}"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
        if r.returncode != 0 and "cgroup.procs" in r.stderr:
            pytest.skip(f"cannot join the cgroup here: {r.stderr.strip().splitlines()[-1]}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "1"
    finally:
        os.rmdir(group)


def _boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (20, 2)).astype(np.float32)
    return np.hstack([xy, xy + 10]), rng.uniform(size=20).astype(np.float32)


CALLS = {
    "preprocess": lambda t: pyimgcls.preprocess([np.zeros((8, 8, 3), np.uint8)],
                                                pyimgcls.PreprocessConfig(size=(4, 4)), threads=t),
    "batched_nms": lambda t: ops.batched_nms(*_boxes(), np.zeros(20, np.int64), 0.5, threads=t),
    "box_iou": lambda t: ops.box_iou(_boxes()[0], _boxes()[0], threads=t),
    "decode_yolo": lambda t: ops.decode_yolo(np.zeros((1, 6, 10), np.float32), layout="v8", threads=t),
    "average_precision": lambda t: metrics.average_precision(np.eye(4, dtype=np.uint8), np.eye(4), threads=t),
    "roc_auc": lambda t: metrics.roc_auc(np.eye(4, dtype=np.uint8), np.eye(4), threads=t),
    "COCOEvaluator": lambda t: metrics.COCOEvaluator(threads=t),
    "Session": lambda t: pyimgcls.Session(pyimgcls.default_model_path(), threads=t),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_threads_argument_is_validated_the_same_way(name):
    CALLS[name](0)
    CALLS[name](2)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        CALLS[name](-1)
    with pytest.raises(TypeError, match="threads must be an int"):
        CALLS[name](2.5)


def test_classifier_threads_are_resolved_and_capped():
    clf = pyimgcls.Classifier(threads=10000)
    assert clf.threads == clf.session.threads == MAX_THREADS_PER_CORE * usable_cores()
    assert pyimgcls.Classifier().threads == usable_cores()
    with pytest.raises(ValueError, match="threads must be >= 0"):
        pyimgcls.Classifier(threads=-2)


# A child process in which threads cannot be started: RLIMIT_NPROC (counted per user, over all
# its threads) lowered first to 1, so that no thread starts, then to two more than the process
# has, so that a call starts two workers and fails on the third. The kernel ignores the limit for
# root (CAP_SYS_RESOURCE / CAP_SYS_ADMIN), so a root child also drops to the user nobody, after it
# has imported and computed all it needs (a lazy import as nobody may meet unreadable files). Each
# threaded kernel is called with threads=8 and must give its single-threaded answer. Before the
# fix the first case raised RuntimeError and the second aborted the process (a joinable
# std::thread destroyed: std::terminate).
NO_THREADS_CHILD = r'''
import os, resource, sys, threading
import numpy as np
import numpy.testing
import pyimgcls
from pyimgcls import _core, metrics, ops

rng = np.random.default_rng(0)
xy = rng.uniform(0, 300, (600, 2))
boxes = np.hstack([xy, xy + rng.uniform(5, 40, (600, 2))])
scores = rng.random(600)
classes = rng.integers(0, 40, 600)
yolo = np.zeros((6, 6, 200), np.float32)
yolo[:, :2] = rng.uniform(0, 300, (6, 2, 200))
yolo[:, 2:4] = rng.uniform(5, 40, (6, 2, 200))
yolo[:, 4:] = rng.random((6, 2, 200))
config = pyimgcls.PreprocessConfig(size=(64, 64))
images = [rng.integers(0, 256, (90 + 7 * i, 120 - 5 * i, 3), dtype=np.uint8) for i in range(12)]
truth = rng.random((400, 64)) < 0.3
label_scores = rng.random((400, 64))
gt = [(rng.uniform(0, 200, (5, 2)), rng.integers(0, 6, 5)) for _ in range(20)]


def coco(t):
    ev = metrics.COCOEvaluator(threads=t)
    for i, (g, c) in enumerate(gt):
        gb = np.hstack([g, g + 30])
        db = gb + rng.normal(0, 4, gb.shape)
        ev.update(i, (db, rng.random(len(db)), c), gb, c)
    return ev.compute().precision


CALLS = {
    "batched_nms": lambda t: ops.batched_nms(boxes, scores, classes, 0.5, threads=t),
    "box_iou": lambda t: ops.box_iou(boxes, boxes, threads=t),
    "decode_yolo": lambda t: np.concatenate([np.c_[d.xyxy, d.confidence, d.class_id, np.full(len(d), i)]
                                             for i, d in enumerate(ops.decode_yolo(yolo, layout="v8", threads=t))]),
    "preprocess batch": lambda t: pyimgcls.preprocess(images, config, threads=t)[0],
    "preprocess rows": lambda t: pyimgcls.preprocess(images[:1], pyimgcls.PreprocessConfig(size=(512, 512)),
                                                     threads=t)[0],
    "average_precision": lambda t: metrics.average_precision(truth, label_scores, average=None, threads=t),
    "roc_auc": lambda t: metrics.roc_auc(truth, label_scores, average=None, threads=t),
}
want = {name: f(1) for name, f in CALLS.items()}
rng = np.random.default_rng(1)
want["coco"] = coco(1)

# soft limit 1: no thread starts; then room for two more threads than now: the third fails
room = len(os.listdir("/proc/self/task")) + 2
resource.setrlimit(resource.RLIMIT_NPROC, (1, room))
if os.geteuid() == 0:
    try:
        os.setgid(65534)
        os.setuid(65534)
    except OSError as e:
        print(f"cannot drop root to apply RLIMIT_NPROC ({e})")
        sys.exit(77)
try:
    threading.Thread(target=lambda: None).start()
except RuntimeError:
    pass
else:
    print("a thread still starts under RLIMIT_NPROC=1")
    sys.exit(77)
for soft in (1, room):
    resource.setrlimit(resource.RLIMIT_NPROC, (soft, room))
    for name, f in CALLS.items():
        np.testing.assert_array_equal(np.asarray(f(8)), np.asarray(want[name]), err_msg=f"{name}, limit {soft}")
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(coco(8), want["coco"], err_msg=f"coco, limit {soft}")
    # the native side on its own, past the Python cap (capped again in C++)
    np.testing.assert_array_equal(_core.box_iou(boxes, boxes, 50000), want["box_iou"], err_msg=f"_core, limit {soft}")
print("ok", len(CALLS) + 1)
'''


@pytest.mark.skipif(not hasattr(os, "setuid") or sys.platform != "linux", reason="needs Linux RLIMIT_NPROC")
def test_threaded_kernels_survive_when_no_thread_can_start():
    r = subprocess.run([sys.executable, "-c", NO_THREADS_CHILD], capture_output=True, text=True, timeout=300, cwd="/")
    if r.returncode == 77:
        pytest.skip(f"cannot make thread creation fail here: {r.stdout.strip()}")
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    assert r.stdout.strip() == "ok 8"
