"""ops.crop_resize and Detections.crop: against the NumPy twin (every path), OpenCV on slices, errors."""

import threading
import time

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyimgcls import Detections, _core, ops

from _helpers.reference import crop_resize_ref

# Paths: bilinear boxes whose taps lie inside the image (integer or sub-pixel), contiguous 1- or 3-channel
# pixels (sx == C), any layout: the bilinear path (float32, vertical blend first; SSE2 for 3 channels).
# Area with integer boxes inside the image, contiguous pixels, NCHW / NHWC: the preprocessing engine,
# whose SSE4.1 uint8 kernels use 14-bit fixed-point horizontal weights: within 255 * 2**-14 * taps of
# float64 (0.05 pixel units at the scales here). Everything else, the general path (float32): 1e-3.
# The bilinear path has two row-kernel sets, forced per call with `_kernels`: "baseline" (SSE2 / portable
# loops) and "avx2" (crop_resize_avx2.cpp, where this build and CPU run it; the default there). They
# do the same float operations in the same order: outputs must be bit-identical.
FAST_TOL, GENERAL_TOL = 0.05, 2e-3
KERNELS = _core.crop_kernel_sets()
NO_AVX2 = "this build or CPU has no AVX2 crop kernels: only the baseline runs here"


def _image(rng, h, w, c, view):
    """A uint8 image of shape (h, w[, c]); `view` picks its memory: contiguous, a strided view (every
    other column of a wider array), reversed channels (negative channel stride) or flipped rows."""
    shape = (h, w) if c == 0 else (h, w, c)
    if view == "contiguous":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if view == "strided":
        big = rng.integers(0, 256, (h, 2 * w + 1) + shape[2:], dtype=np.uint8)
        return big[:, 1::2]
    if view == "reversed":
        return rng.integers(0, 256, shape, dtype=np.uint8)[..., ::-1] if c else rng.integers(0, 256, shape, np.uint8)[:, ::-1]
    return rng.integers(0, 256, shape, dtype=np.uint8)[::-1]


@st.composite
def crop_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    c = draw(st.sampled_from([0, 1, 3, 4]))
    view = draw(st.sampled_from(["contiguous", "strided", "reversed", "flipped"]))
    img = _image(rng, h, w, c, view)
    interp = draw(st.sampled_from(["bilinear", "area"]))
    where = draw(st.sampled_from(["inside", "anywhere"]))
    k = draw(st.integers(0, 6))
    x1 = rng.integers(-5 if where == "anywhere" else 0, w, k)
    y1 = rng.integers(-5 if where == "anywhere" else 0, h, k)
    x2 = x1 + 1 + rng.integers(0, (w - x1 if where == "inside" else w + 10), k).clip(0)
    y2 = y1 + 1 + rng.integers(0, (h - y1 if where == "inside" else h + 10), k).clip(0)
    if where == "inside":
        x2, y2 = np.minimum(x2, w), np.minimum(y2, h)
    boxes = np.stack([x1, y1, x2, y2], 1).astype(np.float64)
    if interp == "bilinear" and draw(st.booleans()):
        boxes = boxes + np.tile(rng.uniform(-0.49, 0.49, (k, 2)), 2)  # sub-pixel positions, same size
    size = (draw(st.integers(1, 30)), draw(st.integers(1, 30)))
    layout = draw(st.sampled_from(["NCHW", "NHWC", "NWHC"]))
    fill = draw(st.sampled_from([0.0, 114.0]))
    return img, boxes, size, interp, layout, fill


@given(crop_cases(), st.sampled_from(["float32", "uint8"]))
def test_matches_twin(case, dtype):
    img, boxes, size, interp, layout, fill = case
    mean, std = (127.5, 128.0) if layout == "NWHC" else (0.0, 1.0)
    got = ops.crop_resize(img, boxes, size, interpolation=interp, layout=layout, fill=fill, mean=mean, std=std,
                          dtype=dtype)
    want = crop_resize_ref(img, boxes, size, interpolation=interp, layout=layout, fill=fill, mean=mean, std=std,
                           dtype=dtype)
    assert got.shape == want.shape and got.dtype == want.dtype == np.dtype(dtype)
    if dtype == "uint8":  # a value within the tolerance of a rounding edge may round the other way
        assert np.abs(got.astype(int) - want).max(initial=0) <= 1
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=FAST_TOL / std)


@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize("interp", ["bilinear", "area"])
@pytest.mark.parametrize("size", [(24, 24), (48, 48), (7, 90), (160, 120)])
def test_equals_cv2_resize_on_slices(photos, path, interp, size):
    """A loop of cv2.resize (float32, so without cv2's uint8 rounding) on slices of a real photo, both
    growing and shrinking; the general path is reached with a view of odd strides (same pixels)."""
    img = photos["astronaut"]
    src = img if path == "fast" else np.lib.stride_tricks.as_strided(
        np.pad(img, ((0, 0), (0, 0), (0, 1)))[:, :, :3], img.shape, (img.shape[1] * 4, 4, 1))
    assert np.array_equal(src, img)
    rng = np.random.default_rng(1)
    xy = rng.integers(0, 400, (40, 2))
    wh = rng.integers(3, 112, (40, 2))
    boxes = np.hstack([xy, xy + wh]).astype(np.float64)
    flag = cv2.INTER_LINEAR if interp == "bilinear" else cv2.INTER_AREA
    got = ops.crop_resize(src, boxes, size, interpolation=interp, layout="NHWC")
    want = np.stack([cv2.resize(img[y1:y2, x1:x2].astype(np.float32), size[::-1], interpolation=flag)
                     for x1, y1, x2, y2 in boxes.astype(int)])
    np.testing.assert_allclose(got, want, rtol=0, atol=FAST_TOL if path == "fast" else GENERAL_TOL)
    # and against cv2's own uint8 path: within its rounding (and 11-bit weights) of 1 level
    want8 = np.stack([cv2.resize(img[y1:y2, x1:x2], size[::-1], interpolation=flag) for x1, y1, x2, y2 in boxes.astype(int)])
    assert np.abs(got - want8).max() <= 1.0
    got8 = ops.crop_resize(src, boxes, size, interpolation=interp, layout="NHWC", dtype="uint8")
    diff = np.abs(got8.astype(int) - want8)
    # cv2's uint8 bilinear (and area when growing, its bilinear) rounds 11-bit fixed-point weights: up to
    # about 10% of values one level off here; never more than one
    assert diff.max() <= 1 and (diff > 0).mean() < 0.2


@pytest.mark.parametrize("kernels", ["baseline", "avx2"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NWHC"])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("boxes_kind", ["integer", "subpixel", "one-box"])
def test_bilinear_path_equals_general_path_and_twin(kernels, channels, layout, dtype, threads, boxes_kind):
    """Every selector of the bilinear path (row kernels, channels 1 / 3, each layout and output type; many
    boxes over threads, or one box split by rows), against the general path on a view of the same pixels
    with odd strides (same weights, another summation order: float32 rounding) and the NumPy twin."""
    if kernels not in KERNELS:
        pytest.skip(NO_AVX2)
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    if channels == 1:
        img = np.ascontiguousarray(img[:, :, 0])
        odd = np.lib.stride_tricks.as_strided(np.repeat(img[:, :, None], 2, 2), img.shape + (1,), (180, 2, 1))
        src = img[:, :, None]
    else:
        odd = np.lib.stride_tricks.as_strided(np.pad(img, ((0, 0), (0, 0), (0, 1)))[:, :, :3], img.shape, (90 * 4, 4, 1))
        src = img
    assert np.array_equal(odd, src)
    k = 1 if boxes_kind == "one-box" else 12
    xy = rng.integers(0, 40, (k, 2))
    wh = rng.integers(1, 50, (k, 2))
    boxes = np.hstack([xy, xy + wh]).astype(np.float64)
    if boxes_kind == "subpixel":
        boxes += np.tile(rng.uniform(0.0, 0.49, (k, 2)), 2)
    kw = dict(layout=layout, dtype=dtype, mean=(127.5,) * channels, std=(128.0,) * channels, threads=threads)
    size = (31, 17) if boxes_kind == "one-box" else (24, 20)
    got = ops.crop_resize(src, boxes, size, **kw, _kernels=kernels)
    general = ops.crop_resize(odd, boxes, size, **kw)
    want = crop_resize_ref(src, boxes, size, **{k_: v for k_, v in kw.items() if k_ != "threads"})
    if dtype == "uint8":
        assert np.abs(got.astype(int) - general).max() <= 1 and np.abs(got.astype(int) - want).max() <= 1
    else:
        np.testing.assert_allclose(got, general, rtol=0, atol=1e-3 / 128)  # float32 rounding of sums up to 255
        np.testing.assert_allclose(got, want, rtol=0, atol=GENERAL_TOL / 128)


@st.composite
def bilinear_cases(draw):
    """Cases for the bilinear path's row kernels: 1 or 3 channels (2-D gray too), contiguous pixels in
    rows of any stride (padded rows with an odd row stride, flipped rows: negative), boxes of every kind
    the path takes (integer or sub-pixel, odd sizes, tiny, touching the borders) plus some it does not
    (partly outside the image: the general path, the same for both kernel sets), output sizes around
    the eight-column steps, every layout and output type, one to three threads."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = draw(st.sampled_from([0, 1, 3]))  # 0: a 2-D gray image
    h, w = draw(st.integers(1, 50)), draw(st.integers(1, 50))
    view = draw(st.sampled_from(["contiguous", "padded-rows", "flipped"]))
    pad = draw(st.integers(1, 7)) if view == "padded-rows" else 0
    full = rng.integers(0, 256, (h, w + pad) + ((c,) if c else ()), dtype=np.uint8)
    img = full[:, :w] if view == "padded-rows" else full[::-1] if view == "flipped" else full
    k = draw(st.integers(1, 9))
    kind = draw(st.sampled_from(["integer", "subpixel", "tiny", "border", "partly-outside"]))
    x1, y1 = rng.uniform(0, w, k), rng.uniform(0, h, k)
    x2, y2 = rng.uniform(x1, w), rng.uniform(y1, h)
    if kind == "integer":
        x1, y1 = np.floor(x1), np.floor(y1)
        x2, y2 = np.maximum(np.ceil(x2), x1 + 1), np.maximum(np.ceil(y2), y1 + 1)
    elif kind == "tiny":  # under a pixel: one or two source columns and rows
        x2, y2 = x1 + rng.uniform(0.01, 1.0, k), y1 + rng.uniform(0.01, 1.0, k)
        x2, y2 = np.minimum(x2, w), np.minimum(y2, h)
    elif kind == "border":  # edges on the image's own edges
        x1[::2], y1[1::2], x2[1::2], y2[::2] = 0, 0, w, h
    elif kind == "partly-outside":
        x1, y2 = x1 - rng.uniform(0, 6, k), y2 + rng.uniform(0, 6, k)
    boxes = np.stack([x1, y1, x2, y2], 1)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    size = (draw(st.integers(1, 30)), draw(st.sampled_from([1, 3, 7, 8, 9, 10, 11, 16, 17, 18, 23, 25, 48])))
    cc = max(c, 1)
    kw = dict(layout=draw(st.sampled_from(["NCHW", "NHWC", "NWHC"])), dtype=draw(st.sampled_from(["float32", "uint8"])),
              mean=rng.uniform(0, 255, cc).tolist(), std=rng.uniform(0.5, 130, cc).tolist(),
              threads=draw(st.integers(1, 3)))
    if kw["dtype"] == "uint8" and draw(st.booleans()):
        kw["mean"], kw["std"] = [0.0] * cc, [1.0] * cc  # a plain uint8 resize (most values inside [0, 255])
    return img, boxes, size, kw


@pytest.mark.skipif("avx2" not in KERNELS, reason=NO_AVX2)
@settings(max_examples=150)  # cheap cases (well under 1 s in all), many store / tail boundaries
@given(bilinear_cases())
def test_avx2_rows_bit_identical_to_baseline(case):
    """The AVX2 row kernels give exactly the baseline's bytes on every case (float32: no FMA contraction,
    the same operations in the same order; uint8: the same saturation and rounding), and both stay
    within the tolerances above of the NumPy twin."""
    img, boxes, size, kw = case
    base = ops.crop_resize(img, boxes, size, **kw, _kernels="baseline")
    fast = ops.crop_resize(img, boxes, size, **kw, _kernels="avx2")
    assert fast.dtype == base.dtype and fast.shape == base.shape
    np.testing.assert_array_equal(fast, base)
    want = crop_resize_ref(img, boxes, size, **{k_: v for k_, v in kw.items() if k_ != "threads"})
    if kw["dtype"] == "uint8":
        assert np.abs(fast.astype(int) - want).max(initial=0) <= 1
    else:
        np.testing.assert_allclose(fast, want, rtol=0, atol=GENERAL_TOL / min(kw["std"]))


@pytest.mark.skipif("avx2" not in KERNELS, reason=NO_AVX2)
def test_avx2_rows_on_photo_boxes_and_threads():
    """The benchmark's shape of work (many boxes of 20-120 px in a real photo, 48x48 and odd sizes)
    from several Python threads at once: AVX2 and baseline rows agree bit for bit."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[::2, ::2][:240, :320])
    rng = np.random.default_rng(11)
    s = rng.integers(20, 121, 64)
    xy = np.stack([rng.integers(0, 320 - s + 1), rng.integers(0, 240 - s + 1)], 1)
    boxes = np.hstack([xy, xy + s[:, None]]).astype(np.float64)
    boxes[::3] += rng.uniform(-0.45, 0.45, (len(boxes[::3]), 1))  # sub-pixel, same size (still inside)
    boxes[::3] = np.clip(boxes[::3], 0, [320, 240, 320, 240])
    cases = [dict(mean=127.5, std=128), dict(dtype="uint8", layout="NHWC"), dict(layout="NHWC"), dict(dtype="uint8")]
    want = {(i, sz): ops.crop_resize(img, boxes, sz, threads=1, _kernels="baseline", **kw)
            for i, kw in enumerate(cases) for sz in [48, (24, 45)]}
    bad = []

    def work():
        for (i, sz), w in want.items():
            if not np.array_equal(ops.crop_resize(img, boxes, sz, threads=2, _kernels="avx2", **cases[i]), w):
                bad.append((i, sz))

    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not bad
    # one large crop split by rows over threads (row blocks of odd lengths: pairs of rows and single rows)
    for kw in cases:
        for box in ([[10.0, 7.0, 301.0, 229.0]], [[20.25, 3.5, 60.75, 44.0]]):
            np.testing.assert_array_equal(ops.crop_resize(img, box, (101, 37), threads=3, _kernels="avx2", **kw),
                                          ops.crop_resize(img, box, (101, 37), threads=1, _kernels="baseline", **kw))
    # extreme scales: a std so small that scale = 1 / std is inf in float32 (0 * inf: NaN), or huge
    # values: the uint8 conversion saturates them (NaN to 0) the same way on both sets
    for std in (1e-40, 1e-30):
        for kw in (dict(dtype="uint8"), dict(dtype="uint8", layout="NHWC"), dict(layout="NHWC"), {}):
            for mean in (0.0, 127.5):
                np.testing.assert_array_equal(
                    ops.crop_resize(img, boxes[:6], (9, 17), mean=mean, std=std, _kernels="avx2", **kw),
                    ops.crop_resize(img, boxes[:6], (9, 17), mean=mean, std=std, _kernels="baseline", **kw))
    # "auto" is the AVX2 set where it is offered
    np.testing.assert_array_equal(ops.crop_resize(img, boxes, 48, mean=127.5, std=128), want[(0, 48)])


def test_kernel_sets_and_bad_selector():
    assert KERNELS[0] == "baseline" and set(KERNELS) <= {"baseline", "avx2"}
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="kernels must be 'auto' or one of crop_kernel_sets"):
        ops.crop_resize(img, [[0, 0, 5, 5]], 4, _kernels="sse9")
    if "avx2" not in KERNELS:
        with pytest.raises(ValueError, match="got 'avx2'"):
            ops.crop_resize(img, [[0, 0, 5, 5]], 4, _kernels="avx2")


def test_pads_outside_with_fill_as_mtcnn():
    """MTCNN cuts a box into a zero buffer (the parts outside the image stay 0) and resizes it."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    for x1, y1, x2, y2 in [(-10, -7, 30, 25), (40, 35, 75, 70), (-3, 10, 65, 20)]:
        buf = np.zeros((y2 - y1, x2 - x1, 3), np.float32)
        sy, sx = max(y1, 0), max(x1, 0)
        ey, ex = min(y2, 50), min(x2, 60)
        buf[sy - y1:ey - y1, sx - x1:ex - x1] = img[sy:ey, sx:ex]
        for interp, flag in [("area", cv2.INTER_AREA), ("bilinear", cv2.INTER_LINEAR)]:
            got = ops.crop_resize(img, [[x1, y1, x2, y2]], 24, interpolation=interp, layout="NHWC")[0]
            np.testing.assert_allclose(got, cv2.resize(buf, (24, 24), interpolation=flag), atol=GENERAL_TOL)


def test_layouts_and_normalisation():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    boxes = [[3, 4, 30, 35], [-2, 0, 20, 10]]
    base = ops.crop_resize(img, boxes, (12, 9))
    assert base.shape == (2, 3, 12, 9)
    np.testing.assert_array_equal(ops.crop_resize(img, boxes, (12, 9), layout="NHWC"), base.transpose(0, 2, 3, 1))
    # NWHC takes the general (float32) path, NCHW the fast one for the box inside the image
    np.testing.assert_allclose(ops.crop_resize(img, boxes, (12, 9), layout="NWHC"), base.transpose(0, 3, 2, 1),
                               atol=FAST_TOL)
    norm = ops.crop_resize(img, boxes, (12, 9), mean=(10, 20, 30), std=(2, 4, 8))
    np.testing.assert_allclose(norm, (base - np.array([10, 20, 30]).reshape(3, 1, 1)) / np.array([2, 4, 8]).reshape(3, 1, 1),
                               rtol=1e-6, atol=1e-4)
    gray = ops.crop_resize(img[:, :, 0], boxes, 5)
    assert gray.shape == (2, 1, 5, 5)


def test_huge_boxes_cost_nothing_extra():
    """A box of 2e12 pixels reads only the image part; everything else is fill."""
    img = np.full((64, 64, 3), 200, np.uint8)
    t = time.perf_counter()
    for interp in ("bilinear", "area"):
        out = ops.crop_resize(img, [[-1e12, -1e12, 1e12, 1e12], [0, 0, 64, 1e12]], 16, interpolation=interp, fill=7)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out[0], 7, atol=1e-3)
        np.testing.assert_allclose(out[1], 7, atol=1e-3)
    assert time.perf_counter() - t < 2.0
    # a wide box: the image is a sliver of each cell; the fill weight takes the rest (twin: dense weights)
    img = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for interp in ("bilinear", "area"):
        box = [[-50000, -3, 50000, 60]]
        np.testing.assert_allclose(ops.crop_resize(img, box, (8, 15), interpolation=interp, fill=9),
                                   crop_resize_ref(img, box, (8, 15), interpolation=interp, fill=9), atol=GENERAL_TOL)


def test_threads_agree_and_thread_safe():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    xy = rng.uniform(-20, 380, (200, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 150, (200, 2))])
    one = ops.crop_resize(img, boxes, 32, threads=1)
    np.testing.assert_array_equal(ops.crop_resize(img, boxes, 32, threads=4), one)
    np.testing.assert_array_equal(ops.crop_resize(img, boxes[:1], 100, threads=4),
                                  ops.crop_resize(img, boxes[:1], 100, threads=1))
    bad = []

    def work():
        for _ in range(5):
            if not np.array_equal(ops.crop_resize(img, boxes, 32, threads=2), one):
                bad.append(1)

    ts = [threading.Thread(target=work) for _ in range(6)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not bad


def test_empty():
    img = np.zeros((10, 10, 3), np.uint8)
    assert ops.crop_resize(img, np.zeros((0, 4)), (4, 5)).shape == (0, 3, 4, 5)
    assert ops.crop_resize(img, [], 4, layout="NHWC").shape == (0, 4, 4, 3)


def test_bad_input():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(TypeError, match="image must be uint8, got float32"):
        ops.crop_resize(img.astype(np.float32), [[0, 0, 5, 5]], 4)
    with pytest.raises(TypeError, match="image must be a numpy array"):
        ops.crop_resize([[1]], [[0, 0, 5, 5]], 4)
    with pytest.raises(ValueError, match=r"image must have shape \(H, W\) or \(H, W, C\), got \(2, 10, 10, 3\)"):
        ops.crop_resize(img[None].repeat(2, 0), [[0, 0, 5, 5]], 4)
    with pytest.raises(ValueError, match=r"boxes must have shape \(K, 4\), got \(1, 3\)"):
        ops.crop_resize(img, [[0, 0, 5]], 4)
    with pytest.raises(ValueError, match=r"boxes\[1\] must be finite, got \[0, nan, 5, 5\]"):
        ops.crop_resize(img, [[0, 0, 5, 5], [0, np.nan, 5, 5]], 4)
    with pytest.raises(ValueError, match=r"boxes\[0\] must be finite, got \[0, 0, inf, 5\]"):
        ops.crop_resize(img, [[0, 0, np.inf, 5]], 4)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have x2 > x1 and y2 > y1, got \[5, 0, 5, 5\]"):
        ops.crop_resize(img, [[5, 0, 5, 5]], 4)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have integer corners for area"):
        ops.crop_resize(img, [[0.5, 0, 5, 5]], 4, interpolation="area")
    with pytest.raises(ValueError, match=r"size must be in \[1, 16384\] on each side, got \(0, 4\)"):
        ops.crop_resize(img, [[0, 0, 5, 5]], (0, 4))
    with pytest.raises(TypeError, match="size must be an int or"):
        ops.crop_resize(img, [[0, 0, 5, 5]], "big")
    with pytest.raises(TypeError, match=r"size must be an int or \(height, width\) of ints, got '88'"):
        ops.crop_resize(img, [[0, 0, 5, 5]], "88")  # was read as (8, 8)
    with pytest.raises(TypeError, match=r"of ints, got \(2.5, 3.7\)"):
        ops.crop_resize(img, [[0, 0, 5, 5]], (2.5, 3.7))  # was cut to (2, 3)
    assert ops.crop_resize(img, [[0, 0, 5, 5]], (np.int64(2), 3)).shape == (1, 3, 2, 3)
    for interpolation in ("bilinear", "area"):  # finite corners, a width past the doubles: every tap was NaN
        with pytest.raises(ValueError, match=r"boxes\[0\] must have a finite width and height"):
            ops.crop_resize(img, [[-1e308, -1e308, 1e308, 1e308]], 4, interpolation=interpolation)
    assert np.isfinite(ops.crop_resize(img, [[-1e307, -1e307, 1e307, 1e307]], 4)).all()
    with pytest.raises(ValueError, match="mean must be a number or 3 values"):
        ops.crop_resize(img, [[0, 0, 5, 5]], 4, mean=(1, 2))
    with pytest.raises(ValueError, match="std must be non-zero"):
        ops.crop_resize(img, [[0, 0, 5, 5]], 4, std=0)
    with pytest.raises(ValueError, match="layout must be one of"):
        ops.crop_resize(img, [[0, 0, 5, 5]], 4, layout="CHW")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        ops.crop_resize(img, [[0, 0, 5, 5]], 4, interpolation="cubic")
    with pytest.raises(TypeError, match="boxes must be a numeric array"):
        ops.crop_resize(img, [["a", "b", "c", "d"]], 4)


@pytest.mark.parametrize("layout, dtype", [("NCHW", "float32"), ("NHWC", "uint8"), ("NWHC", "float32")])
def test_out_is_written_and_returned(layout, dtype):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 40, 30], [10.5, 5.25, 129, 89], [-20, -10, 30, 40], [100, 60, 200, 120]])
    kw = dict(mean=127.5, std=128, layout=layout, dtype=dtype)
    want = ops.crop_resize(img, boxes, (24, 20), **kw)
    out = np.full(want.shape, 7, want.dtype)
    for threads in (1, 2, 3):  # reused call after call: every value rewritten
        assert ops.crop_resize(img, boxes, (24, 20), threads=threads, out=out, **kw) is out
        np.testing.assert_array_equal(out, want)
        out[...] = 0
    # no boxes: nothing to write, out returned
    empty = np.empty((0,) + want.shape[1:], want.dtype)
    assert ops.crop_resize(img, np.zeros((0, 4)), (24, 20), out=empty, **kw) is empty


def test_out_checked():
    img = np.zeros((40, 50, 3), np.uint8)
    b = [[0, 0, 10, 10], [5, 5, 30, 35]]
    with pytest.raises(TypeError, match="out must be float32, got float64"):
        ops.crop_resize(img, b, 8, out=np.empty((2, 3, 8, 8)))
    with pytest.raises(TypeError, match="out must be uint8, got float32"):
        ops.crop_resize(img, b, 8, dtype="uint8", out=np.empty((2, 3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="out must be a numpy array, got list"):
        ops.crop_resize(img, b, 8, out=[0.0])
    with pytest.raises(ValueError, match=r"out must be a writeable C-contiguous array of shape \(2, 3, 8, 8\), got \(2, 8, 8, 3\)$"):
        ops.crop_resize(img, b, 8, out=np.empty((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"got \(3, 3, 8, 8\)$"):  # a larger batch is not taken
        ops.crop_resize(img, b, 8, out=np.empty((3, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"\(not C-contiguous\)"):
        ops.crop_resize(img, b, 8, out=np.empty((2, 3, 8, 16), np.float32)[..., ::2])
    ro = np.empty((2, 3, 8, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\(read-only\)"):
        ops.crop_resize(img, b, 8, out=ro)


@pytest.mark.parametrize("where", ["inside", "last byte", "first byte", "reversed image"])
def test_out_sharing_memory_with_the_image_is_refused(where):
    """The kernel reads the image while it writes out: shared bytes would give crops of half-written
    pixels. Any overlap of the two address ranges is refused (also through negative strides)."""
    buf = np.zeros(100_000, np.uint8)
    img = buf[:30 * 40 * 3].reshape(30, 40, 3)
    n = 2 * 8 * 8 * 3
    start = {"inside": 1000, "last byte": img.nbytes - 1, "first byte": 0, "reversed image": 500}[where]
    image = img[::-1, ::-1] if where == "reversed image" else img
    out = buf[start:start + n].reshape(2, 8, 8, 3)
    with pytest.raises(ValueError, match="out must not share memory with image"):
        ops.crop_resize(image, [[0, 0, 10, 10], [5, 5, 30, 25]], 8, dtype="uint8", layout="NHWC", out=out)
    # right after the image: fine
    out = buf[img.nbytes:img.nbytes + n].reshape(2, 8, 8, 3)
    got = ops.crop_resize(image, [[0, 0, 10, 10], [5, 5, 30, 25]], 8, dtype="uint8", layout="NHWC", out=out)
    np.testing.assert_array_equal(got, ops.crop_resize(image.copy(), [[0, 0, 10, 10], [5, 5, 30, 25]], 8,
                                                       dtype="uint8", layout="NHWC"))


def test_out_sharing_memory_with_the_boxes_is_refused():
    img = np.zeros((30, 40, 3), np.uint8)
    buf = np.zeros(1000, np.float64)
    boxes = buf[:8].reshape(2, 4)
    boxes[:] = [[0, 0, 10, 10], [5, 5, 30, 25]]
    out = buf[4:4 + 2 * 3 * 4 * 4 // 2].view(np.float32).reshape(2, 3, 4, 4)
    with pytest.raises(ValueError, match="out must not share memory with boxes"):
        ops.crop_resize(img, boxes, 4, out=out)


def _u8_store(x: np.ndarray) -> np.ndarray:
    """The core's uint8 store in NumPy float32: saturate (NaN -> 0), + 0.5, truncate."""
    x = np.where(x > 0, np.minimum(x, np.float32(255)), np.float32(0)).astype(np.float32)
    return (x + np.float32(0.5)).astype(np.int32).astype(np.uint8)


@st.composite
def _cv2_crop_case(draw):
    h, w = draw(st.integers(1, 70)), draw(st.integers(1, 90))
    channels = draw(st.sampled_from([0, 1, 3]))
    n = draw(st.integers(1, 12))
    boxes = []
    for _ in range(n):
        x1, y1 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        boxes.append([x1, y1, draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h))])
    size = (draw(st.integers(1, 60)), draw(st.integers(1, 60)))
    return (h, w), channels, np.array(boxes, np.float64), size, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(case=_cv2_crop_case(), layout=st.sampled_from(["NCHW", "NHWC"]), threads=st.integers(1, 3))
def test_bilinear_cv2_is_cv2_resize_on_slices_exactly(case, layout, threads):
    """interpolation="bilinear_cv2": the loop of cv2.resize(INTER_LINEAR) on slices, bit for bit (uint8),
    and its normalisation in float32 (float32 out, and uint8 out with mean / std)."""
    (h, w), channels, boxes, (oh, ow), seed = case
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w) if channels == 0 else (h, w, channels), dtype=np.uint8)
    C = 1 if channels in (0, 1) else 3
    want = np.stack([cv2.resize(img[y1:y2, x1:x2], (ow, oh), interpolation=cv2.INTER_LINEAR).reshape(oh, ow, C)
                     for x1, y1, x2, y2 in boxes.astype(int)])
    to = (lambda a: a.transpose(0, 3, 1, 2)) if layout == "NCHW" else (lambda a: a)
    got = ops.crop_resize(img, boxes, (oh, ow), interpolation="bilinear_cv2", dtype="uint8", layout=layout,
                          threads=threads)
    np.testing.assert_array_equal(got, to(want))
    mean, std = [127.5, 100.0, 3.0][:C], [128.0, 0.5, 64.0][:C]
    scale = (1.0 / np.asarray(std)).astype(np.float32)
    bias = (-np.asarray(mean) / np.asarray(std)).astype(np.float32)
    norm = want.astype(np.float32) * scale + bias
    got = ops.crop_resize(img, boxes, (oh, ow), interpolation="bilinear_cv2", mean=mean, std=std, layout=layout,
                          threads=threads)
    np.testing.assert_array_equal(got, to(norm))
    got = ops.crop_resize(img, boxes, (oh, ow), interpolation="bilinear_cv2", mean=mean, std=std, dtype="uint8",
                          layout=layout, threads=threads)
    np.testing.assert_array_equal(got, to(_u8_store(norm)))


def test_bilinear_cv2_photo_views_and_threads(photos):
    base = photos["astronaut"]
    H, W = base.shape[:2]
    rng = np.random.default_rng(5)
    s = rng.integers(8, 200, 64)
    x, y = rng.integers(0, W - s), rng.integers(0, H - s)
    boxes = np.stack([x, y, x + s, y + s], 1).astype(np.float64)
    # views the exact rows cannot read in place (copied first): reversed, column-major, a channel step
    for img in [base, base[::-1, ::-1], np.asfortranarray(base), np.ascontiguousarray(base[:, :, ::-1])[:, :, ::-1]]:
        want = np.stack([cv2.resize(np.ascontiguousarray(img[y1:y2, x1:x2]), (48, 48))
                         for x1, y1, x2, y2 in boxes.astype(int)])
        got = ops.crop_resize(img, boxes, 48, interpolation="bilinear_cv2", dtype="uint8", layout="NHWC")
        np.testing.assert_array_equal(got, want)
    one = ops.crop_resize(base, boxes, 48, interpolation="bilinear_cv2", threads=1)
    for t in (2, 3, 0):
        np.testing.assert_array_equal(ops.crop_resize(base, boxes, 48, interpolation="bilinear_cv2", threads=t), one)
    # a few boxes (fewer than two per thread): the rows of each box are split over the threads
    np.testing.assert_array_equal(ops.crop_resize(base, boxes[:1], 300, interpolation="bilinear_cv2", threads=3),
                                  ops.crop_resize(base, boxes[:1], 300, interpolation="bilinear_cv2", threads=1))


def test_bilinear_cv2_refuses_what_cv2_on_a_slice_cannot_mean():
    img = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(ValueError, match=r"boxes\[1\] must have integer corners for bilinear_cv2"):
        ops.crop_resize(img, [[0, 0, 5, 5], [0.5, 0, 5, 5]], 4, interpolation="bilinear_cv2")
    with pytest.raises(ValueError, match=r"boxes\[0\] must lie inside the image for bilinear_cv2.*got \[-1, 0, 5, 5\]"):
        ops.crop_resize(img, [[-1, 0, 5, 5]], 4, interpolation="bilinear_cv2")
    with pytest.raises(ValueError, match=r"boxes\[0\] must lie inside the image.*got \[0, 0, 31, 5\]"):
        ops.crop_resize(img, [[0, 0, 31, 5]], 4, interpolation="bilinear_cv2")
    with pytest.raises(ValueError, match=r"bilinear_cv2 writes NCHW or NHWC, not NWHC"):
        ops.crop_resize(img, [[0, 0, 5, 5]], 4, interpolation="bilinear_cv2", layout="NWHC")
    with pytest.raises(ValueError, match=r"bilinear_cv2 takes 1- or 3-channel images, got an image of shape \(20, 30, 4\)"):
        ops.crop_resize(np.zeros((20, 30, 4), np.uint8), [[0, 0, 5, 5]], 4, interpolation="bilinear_cv2")
    with pytest.raises(ValueError, match=r"bilinear_cv2 takes 1- or 3-channel images"):
        ops.crop_resize(np.zeros((20, 30, 2), np.uint8), [[0, 0, 5, 5]], 4, interpolation="bilinear_cv2")


# ----------------------------------------------------------------------------- Detections
def test_detections_crop_and_keypoints(photos):
    img = photos["astronaut"]
    kp = np.array([[[10, 12], [20, 22]], [[1, 2], [3, 4]]], np.float32)
    d = Detections(xyxy=[[10, 20, 110, 140], [200, 50, 260, 90]], confidence=[0.9, 0.5], class_id=[0, 0],
                   class_names=["face"], keypoints=kp)
    crops = d.crop(img, (32, 24), mean=127.5, std=128)
    np.testing.assert_array_equal(crops, ops.crop_resize(img, d.xyxy, (32, 24), mean=127.5, std=128))
    assert crops.shape == (2, 3, 32, 24)
    assert "2 keypoints each" in repr(d)
    np.testing.assert_array_equal(d[1].keypoints, kp[1:])
    np.testing.assert_array_equal(d[np.array([True, False])].keypoints, kp[:1])
    with pytest.raises(ValueError, match=r"keypoints must have shape \(2, K, 2\), got \(2, 3\)"):
        Detections(xyxy=d.xyxy, confidence=d.confidence, class_id=d.class_id, keypoints=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="keypoints must be finite"):
        Detections(xyxy=d.xyxy, confidence=d.confidence, class_id=d.class_id, keypoints=np.full((2, 1, 2), np.nan))


def test_detections_keypoints_map_back(photos):
    from pyimgcls import PreprocessConfig, preprocess

    img = photos["chelsea"]
    cfg = PreprocessConfig(size=(320, 320), resize="letterbox", mean=(0, 0, 0), std=(1, 1, 1))
    _, tr = preprocess([img], cfg)
    # a point at a known original position, mapped into the letterbox by hand and back
    pts = np.array([[100.0, 50.0], [300.0, 200.0]])
    t = tr[0]
    fwd = t.to_input(np.hstack([pts, pts]))[:, :2]
    assert not np.allclose(fwd, pts)
    d = Detections(xyxy=[[0, 0, 10, 10]], confidence=[1.0], class_id=[0], keypoints=fwd[None].astype(np.float32))
    np.testing.assert_allclose(d.to_original(t).keypoints[0], pts, atol=1e-3)
