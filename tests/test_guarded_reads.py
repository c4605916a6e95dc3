"""No native kernel reads past the end of its image: the resize and crop kernels load several bytes a
pixel at once (4 bytes for a 3-channel pixel, 8 for two), and each keeps those wide loads to pixels
whose extra bytes lie inside the image, finishing the row's last pixels with scalar code. Here every
image ends exactly at a page boundary followed by an unmapped page (tests/_helpers/guard.py), so a read
of even one byte too many faults; each case also equals the same call on an ordinary copy of the image.

The cases run in a child process (a fault must fail a test, not end the session): every kernel set,
every interpolation, 1, 3 and 4 channels, shrinking and growing, letterbox; crops whose boxes reach the
image's last pixel with both crop row sets, every interpolation, layout and output type.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers.guard import guarded_available

_TESTS = str(Path(__file__).resolve().parent)

_CHILD = r'''
import json, sys
sys.path.append(TESTS)
import numpy as np
from pyimgcls import PreprocessConfig, _core, ops, preprocess
from _helpers.guard import guarded_array

rng = np.random.default_rng(0)

def image(shape):
    g = guarded_array(shape)
    g[...] = rng.integers(0, 256, shape, dtype=np.uint8)
    return g, np.array(g)  # the guarded image and an ordinary copy

def report(name, fn):
    try:
        a, b = fn()
        ok = a.shape == b.shape and np.array_equal(a, b)
        rec = {"name": name, "kind": "ok" if ok else "differs"}
    except BaseException as e:
        rec = {"name": name, "kind": "raised", "message": f"{type(e).__name__}: {e}"}
    print(json.dumps(rec), flush=True)

shapes = [(5, 7, 3), (33, 17, 3), (9, 11, 4), (13, 29), (1, 1, 3), (1, 40, 3), (40, 1, 3)]
sizes = [(3, 4), (48, 64), (13, 29), (2, 2), (64, 1)]
for shape in shapes:
    g, c = image(shape)
    ch = 1 if len(shape) == 2 else 3
    for interp in ["bilinear_cv2", "bilinear", "nearest", "area", "bicubic", "bilinear_aa", "bicubic_aa"]:
        for ks in _core.preprocess_kernel_sets():
            for size in sizes:
                for resize in ["stretch", "letterbox"]:
                    cfg = PreprocessConfig(size=size, resize=resize, interpolation=interp, dtype="float32",
                                           channels=ch, mean=(0.0,) * ch, std=(1.0,) * ch)
                    report(f"preprocess {shape} {interp} {ks} {size} {resize}",
                           lambda: (preprocess([g], cfg, threads=1, _kernels=ks)[0],
                                    preprocess([c], cfg, threads=1, _kernels=ks)[0]))
    H, W = shape[:2]
    boxes = np.array([[0, 0, W, H], [W - 1, H - 1, W, H], [max(W - 3, 0), max(H - 2, 0), W, H],
                      [W / 3, H / 4, W, H], [0.5, 0.25, W - 0.5, H - 0.25]], np.float64)
    for ks in _core.crop_kernel_sets():
        for interp in ["bilinear", "area", "bilinear_cv2"]:
            b = np.floor(boxes) if interp != "bilinear" else boxes
            b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
            if interp == "bilinear_cv2" and len(shape) == 3 and shape[2] == 4:
                continue  # (1 or 3 channels only)
            for layout in ["NCHW", "NHWC"] + (["NWHC"] if interp != "bilinear_cv2" else []):
                for dtype in ["float32", "uint8"]:
                    for size in [(24, 24), (3, 2), (48, 64)]:
                        report(f"crop_resize {shape} {ks} {interp} {layout} {dtype} {size}",
                               lambda: (ops.crop_resize(g, b, size, interpolation=interp, layout=layout, dtype=dtype,
                                                        threads=1, _kernels=ks),
                                        ops.crop_resize(c, b, size, interpolation=interp, layout=layout, dtype=dtype,
                                                        threads=1, _kernels=ks)))
print(json.dumps({"name": "done", "kind": "ok"}), flush=True)
'''


@pytest.mark.skipif(not guarded_available(), reason="guard pages need Linux (mmap + mprotect)")
def test_kernels_read_nothing_past_the_image():
    code = f"TESTS = {_TESTS!r}\n" + _CHILD
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       cwd="/")  # not the source tree: the installed pyimgcls
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and recs and recs[-1]["name"] == "done", (
        f"the child ended with {r.returncode} after {recs[-1]['name'] if recs else 'no case'!r}: "
        f"{r.stderr[-2000:]}")
    bad = [rec for rec in recs if rec["kind"] != "ok"]
    assert not bad, bad[:10]
    assert len(recs) > 1000
