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
