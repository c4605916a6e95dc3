
import dataclasses
import itertools

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from pyimgcls import PreprocessConfig, _core, preprocess

from _helpers.peers import timm_eval_chain, ultralytics_letterbox
from _helpers.reference import axis_weights, preprocess_ref

MODES = ["nearest", "bilinear", "bilinear_aa", "area", "bicubic", "bicubic_aa", "bilinear_cv2"]


# ----------------------------------------------------------------------------- against the twin
# The property tests take every kernel-path selector as a parameter and let hypothesis vary only the
# sizes (and the random pixels), so that each path is compared with the NumPy twin on every run:
# the kernel set (each one this build and CPU offer, forced per call), the interpolation, the
# resize mode with the scale direction, the source (channels, depth) and the output (dtype, layout,
# channels, channel order). Paths they reach, per set: colour rows with 1, 2 and many taps, gray
# rows, the fused 2x2 kernel when shrinking 2x or more (its uint8 Q14 variants in the SSE4.1 set,
# straight into NCHW float32 planes as the benchmark runs it), the Q14 row kernel for 3+ taps, the
# RGBX -> planes store, and the scalar tails at the image's right edge.
KERNEL_SETS = _core.preprocess_kernel_sets()

# (resize, direction): center_crop and letterbox keep the aspect ratio, so only stretch can
# grow one axis while it shrinks the other
GEOMETRIES = [("center_crop", "down"), ("center_crop", "up"), ("letterbox", "down"), ("letterbox", "up"),
              ("stretch", "down"), ("stretch", "up"), ("stretch", "mixed")]
# (depth, channels); one channel as (H, W) for uint8 and as (H, W, 1) for uint16
SOURCES = [(np.uint8, 0), (np.uint8, 3), (np.uint8, 4), (np.uint16, 1), (np.uint16, 3), (np.uint16, 4)]
# (dtype, layout, channels, input_order); the model is RGB, so a BGR input reverses the channels
OUTPUTS = [("float32", "NCHW", 3, "BGR"), ("float32", "NCHW", 3, "RGB"), ("float32", "NHWC", 3, "RGB"),
           ("float16", "NCHW", 3, "BGR"), ("uint8", "NHWC", 3, "RGB"), ("uint8", "NCHW", 1, "RGB"),
           ("float16", "NHWC", 1, "BGR")]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@st.composite
def _sizes(draw, direction):
    """((h, w) of the source, (H, W) of the input). down: both axes shrink 2.6x or more (the fused
    2x2 path); up: both grow; mixed: one grows, the other shrinks (stretch only)."""
    def down():
        n = draw(st.integers(1, 20))
        return draw(st.integers(3 * n, 6 * n + 2)), n

    def up():
        n = draw(st.integers(2, 40))
        return draw(st.integers(1, n - 1)), n

    if direction == "mixed":
        (h, H), (w, W) = up(), down()
        if draw(st.booleans()):
            (h, H), (w, W) = (w, W), (h, H)
    else:
        (h, H), (w, W) = (down(), down()) if direction == "down" else (up(), up())
    return (h, w), (H, W)


def _image(draw, hw, depth, channels):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(0, np.iinfo(depth).max + 1, hw if channels == 0 else hw + (channels,), dtype=depth)


def _assert_matches_twin(img, cfg, order, kernels, threads=1):
    out, _ = preprocess([img], cfg, threads=threads, input_order=order, _kernels=kernels)
    ref = preprocess_ref(img, cfg, input_order=order)
    assert out.shape[1:] == ref.shape
    got = out[0].astype(np.float64)
    if cfg.dtype == "uint8" and cfg.interpolation == "bilinear_cv2" and img.dtype == np.uint8:
        # integer arithmetic on both sides: OpenCV's uint8 result exactly (gray: BT.601 of it, rounded)
        assert np.abs(got - ref).max() <= (0 if cfg.channels == 3 or img.ndim == 2 else 1)
        return
    if cfg.dtype == "uint8":
        # float32 accumulation vs float64: a value within 1e-3 of a .5 boundary may round apart
        assert np.abs(got - ref).max() <= 1
        return
    tol = 2e-3 if cfg.dtype == "float16" else 2e-5
    scale = max(1.0, *(1 / s for s in cfg.std))
    atol = tol * 4 * scale
    if kernels == "sse41" and img.dtype == np.uint8 and cfg.interpolation != "nearest":
        # the SSE4.1 set's uint8 kernels use Q14 fixed-point horizontal weights: at most taps *
        # 2^-15 of full scale (the other sets are float32 throughout)
        h, w = img.shape[:2]
        rh, rw, cy, cx, oy, ox, ch, cw = cfg.plan(h, w)[0]
        wx = axis_weights(cfg.interpolation, w, rw, cx, cw, w >= rw and h >= rh)
        wy = axis_weights(cfg.interpolation, h, rh, cy, ch, w >= rw and h >= rh)
        taps = int((wx != 0).sum(axis=1).max()) if cw else 0
        # the vertical pass scales that by its largest sum of |weights|: 1, except where bicubic's
        # negative lobes make it up to about 1.4
        gain = float(np.abs(wy).sum(axis=1).max()) if ch and cw else 1.0
        atol += (taps + 1) * 2.0 ** -15 * scale * gain
    np.testing.assert_allclose(got, ref, rtol=tol, atol=atol)


@pytest.mark.parametrize("depth,channels", SOURCES, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("resize,direction", GEOMETRIES)
@pytest.mark.parametrize("interpolation", MODES)
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@settings(max_examples=8)
@given(data=st.data())
def test_resampling_paths_match_numpy_twin(kernels, interpolation, resize, direction, depth, channels, data):
    # the output the benchmark times: float32 NCHW, BGR source for an RGB model
    (h, w), size = data.draw(_sizes(direction))
    img = _image(data.draw, (h, w), depth, channels)
    cfg = PreprocessConfig(size=size, resize=resize, interpolation=interpolation, mean=MEAN, std=STD)
    _assert_matches_twin(img, cfg, "BGR", kernels)


@pytest.mark.parametrize("dtype,layout,out_channels,order", OUTPUTS)
@pytest.mark.parametrize("depth,channels", [(np.uint8, 0), (np.uint8, 3), (np.uint8, 4), (np.uint16, 3)],
                         ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("interpolation,direction", [("bilinear", "down"), ("bilinear_aa", "down"),
                                                     ("bilinear", "up"), ("bicubic", "up"),
                                                     ("bicubic_aa", "down"), ("bilinear_cv2", "down"),
                                                     ("bilinear_cv2", "up")])
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@settings(max_examples=8)
@given(data=st.data())
def test_output_paths_match_numpy_twin(kernels, interpolation, direction, depth, channels, dtype, layout,
                                       out_channels, order, data):
    # letterbox: padding on both sides of the content as well; two threads split the rows
    (h, w), size = data.draw(_sizes(direction))
    img = _image(data.draw, (h, w), depth, channels)
    cfg = PreprocessConfig(size=size, resize="letterbox", interpolation=interpolation, dtype=dtype, layout=layout,
                           channels=out_channels, mean=MEAN[:out_channels], std=STD[:out_channels], pad_value=114)
    _assert_matches_twin(img, cfg, order, kernels, threads=2)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
@pytest.mark.parametrize("source", ["uint16", "uint8 bilinear_cv2"])
@settings(max_examples=20)
@given(data=st.data())
def test_uint8_store_of_every_set_equals_the_scalar_store(layout, order, source, data):
    """The SSE4.1 set stores uint8 outputs four pixels at a time (rgbx_to_u8). With sources whose
    resampled values all sets compute bit for bit (uint16 images, and uint8 images with the integer
    bilinear_cv2), the uint8 tensors must be equal: saturation at both ends, rounding of x.5, channel
    order, letterbox padding beside the content, widths that leave 1-3 pixels to the scalar loop."""
    h, w = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    H, W = data.draw(st.integers(1, 48)), data.draw(st.integers(1, 48))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if source == "uint16":
        img, interp = rng.integers(0, 65536, (h, w, 3), dtype=np.uint16), "bilinear"
    else:
        img, interp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "bilinear_cv2"
    # out = (pixel / max - mean) / std then saturated: these push values past both ends and onto halves
    mean = tuple(data.draw(st.sampled_from([0.0, 0.25, -0.5, 0.5 / 255])) for _ in range(3))
    std = tuple(data.draw(st.sampled_from([1.0, 0.5, 2.0, 1 / 255])) for _ in range(3))
    cfg = PreprocessConfig(size=(H, W), resize=data.draw(st.sampled_from(["stretch", "letterbox"])),
                           interpolation=interp, dtype="uint8", layout=layout, mean=mean, std=std, pad_value=114)
    want, _ = preprocess([img], cfg, threads=1, input_order=order, _kernels="scalar")
    for k in KERNEL_SETS:
        got, _ = preprocess([img], cfg, threads=1, input_order=order, _kernels=k)
        np.testing.assert_array_equal(got, want, err_msg=k)


def test_kernel_sets_agree_and_each_is_used(big_photo):
    # The sets give the same float32 values bit for bit, except the SSE4.1 set's uint8 Q14 kernels
    # (documented in kernels.h): so the SSE4.1 result differing from the scalar one shows that its
    # fused Q14 kernel ran (the benchmark's case: 1280 x 960 uint8 -> 224 float32 NCHW), and
    # "auto" is the best set offered here.
    cfg = PreprocessConfig(size=(224, 224), resize="center_crop", crop_pct=1.0, interpolation="bilinear",
                           mean=MEAN, std=STD)
    out = {k: preprocess([big_photo], cfg, threads=1, input_order="BGR", _kernels=k)[0]
           for k in ["auto"] + KERNEL_SETS}
    np.testing.assert_array_equal(out["auto"], out[KERNEL_SETS[-1]])
    if "sse2" in out:
        np.testing.assert_array_equal(out["sse2"], out["scalar"])
    if "sse41" in out:
        diff = np.abs(out["sse41"] - out["scalar"])
        assert 0 < diff.max() <= 3 * 2.0**-15 * 255 / (255 * min(STD))  # 2 taps + rounding, in output units
        # uint16 sources have no Q14 kernels: equal bit for bit
        img16 = big_photo.astype(np.uint16) * 257
        np.testing.assert_array_equal(preprocess([img16], cfg, threads=1, _kernels="sse41")[0],
                                      preprocess([img16], cfg, threads=1, _kernels="scalar")[0])


@pytest.mark.parametrize("interpolation", ["bicubic", "bicubic_aa"])
def test_bicubic_kernel_sets_agree_and_each_is_used(big_photo, interpolation):
    # timm's eval geometry (1280 x 960 -> 341 x 256 -> centre 224 crop), uint8 colour rows: 4 taps
    # (bicubic) or 16 (bicubic_aa, support 2 x 3.75) go through the SSE4.1 set's Q14 row kernel,
    # so its result differs from the float32 sets by a little (and only by that); SSE2 is bit-equal to
    # scalar; uint16 sources have no Q14 kernel, equal bit for bit
    cfg = PreprocessConfig(size=(224, 224), resize="center_crop", crop_pct=0.875, interpolation=interpolation,
                           mean=MEAN, std=STD)
    out = {k: preprocess([big_photo], cfg, threads=1, _kernels=k)[0] for k in ["auto"] + KERNEL_SETS}
    np.testing.assert_array_equal(out["auto"], out[KERNEL_SETS[-1]])
    if "sse2" in out:
        np.testing.assert_array_equal(out["sse2"], out["scalar"])
    if "sse41" in out:
        h, w = big_photo.shape[:2]
        rh, rw, cy, cx, _, _, ch, cw = cfg.plan(h, w)[0]
        wx = axis_weights(interpolation, w, rw, cx, cw, True)
        wy = axis_weights(interpolation, h, rh, cy, ch, True)
        taps = int((wx != 0).sum(axis=1).max())
        assert taps == (4 if interpolation == "bicubic" else 16)
        bound = (taps + 1) * 2.0**-15 * np.abs(wy).sum(axis=1).max() / min(STD)  # in output units
        diff = np.abs(out["sse41"] - out["scalar"])
        assert 0 < diff.max() <= bound
        img16 = big_photo.astype(np.uint16) * 257
        np.testing.assert_array_equal(preprocess([img16], cfg, threads=1, _kernels="sse41")[0],
                                      preprocess([img16], cfg, threads=1, _kernels="scalar")[0])


@pytest.mark.parametrize("interpolation", ["bicubic", "bicubic_aa"])
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_bicubic_on_one_and_two_pixel_axes(kernels, interpolation):
    # 1- and 2-pixel axes: every tap clamped onto the edge (bicubic) or cut away (bicubic_aa), tables
    # of 1 or 2 taps, and 2 x 2 -> 1 x 1 takes the fused 2x2 kernel (and its Q14 variant in SSE4.1)
    rng = np.random.default_rng(7)
    sources, sizes = [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 2)], [(1, 1), (1, 3), (4, 2), (5, 5)]
    for (h, w), size in itertools.product(sources, sizes):
        for channels in (0, 3):
            img = rng.integers(0, 256, (h, w) if channels == 0 else (h, w, channels), dtype=np.uint8)
            cfg = PreprocessConfig(size=size, resize="stretch", interpolation=interpolation, mean=MEAN, std=STD)
            _assert_matches_twin(img, cfg, "RGB", kernels)


def test_kernel_set_names_are_checked():
    img = np.zeros((10, 10, 3), np.uint8)
    cfg = PreprocessConfig(size=(8, 8))
    with pytest.raises(ValueError, match="kernels must be one of 'auto', 'scalar', 'sse2', 'sse41', got 'avx2'"):
        preprocess([img], cfg, _kernels="avx2")
    for name in {"scalar", "sse2", "sse41"} - set(KERNEL_SETS):  # what this build or CPU lacks
        with pytest.raises(ValueError, match=f"kernels='{name}' is not available .*available: scalar"):
            preprocess([img], cfg, _kernels=name)
    assert KERNEL_SETS[0] == "scalar"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src,resized,offset,count", [(1, 5, 0, 5), (7, 3, 0, 3), (100, 23, 2, 19), (23, 100, 10, 80), (5, 5, 0, 5)])
def test_axis_weights_are_a_partition_of_unity(mode, src, resized, offset, count):
    w = axis_weights(mode, src, resized, offset, count, area_shrinks=src >= resized)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-9)


def test_batch_of_mixed_sizes_equals_one_by_one(photos):
    cfg = PreprocessConfig(size=(96, 128), resize="letterbox", interpolation="bilinear")
    ims = list(photos.values())
    batch, tfs = preprocess(ims, cfg, threads=2)
    assert batch.shape == (len(ims), 3, 96, 128) and batch.flags.c_contiguous
    for i, im in enumerate(ims):
        one, _ = preprocess([im], cfg, threads=1)
        np.testing.assert_array_equal(batch[i], one[0])
        assert tfs[i].original_size == im.shape[:2]


def test_nhwc_array_input_and_out_reuse(photos):
    cfg = PreprocessConfig(size=(64, 64))
    stack = np.stack([photos["astronaut"][:400, :400], photos["coffee"][:400, :400]])
    out = np.zeros((2, 3, 64, 64), np.float32)
    got, _ = preprocess(stack, cfg, out=out)
    assert np.shares_memory(got, out)
    ref, _ = preprocess(list(stack), cfg)
    np.testing.assert_array_equal(out, ref)


def test_strided_view_input(photos):
    img = photos["chelsea"]
    view = img[10:200, 20:300]
    cfg = PreprocessConfig(size=(50, 60), resize="stretch")
    a, _ = preprocess([view], cfg)
    b, _ = preprocess([np.ascontiguousarray(view)], cfg)
    np.testing.assert_array_equal(a, b)
    # a channel-reversed view (negative channel stride) is copied, not misread: read as BGR it
    # is the original RGB image again
    c, _ = preprocess([img[:, :, ::-1]], cfg, input_order="BGR")
    d, _ = preprocess([img], cfg)
    np.testing.assert_array_equal(c, d)
    # a transposed view (column-major) as well
    e, _ = preprocess([np.ascontiguousarray(img.transpose(1, 0, 2)).transpose(1, 0, 2)], cfg)
    np.testing.assert_array_equal(e, d)


def test_length_one_axes_with_any_stride(photos):
    # NumPy may leave any stride on an axis of length 1, even in an array it calls C-contiguous
    # (np.ascontiguousarray(img[7:8, 9:10, 1]) keeps the view's strides): taken as they are
    img = photos["coffee"]
    g16 = img[..., 1].astype(np.uint16) * 257
    strided = np.lib.stride_tricks.as_strided
    views = [
        np.ascontiguousarray(img[7:8, 9:10, 1]),  # (1, 1), strides (1800, 3)
        strided(img[7, 9:], (1, 6, 3), (5, 3, 1)),  # one row, row stride 5
        strided(g16[7:, 9], (6, 1), (1200, 6)),  # one column, pixel stride 3 items
        strided(g16[7, 9:], (1, 6), (3, 2)),  # one row, row stride not a whole item
        strided(img[7:, 9:, 1], (6, 5, 1), (1800, 1, 7)),  # one channel, channel stride 7
    ]
    cfg = PreprocessConfig(size=(5, 3), resize="stretch")
    for view in views:
        fresh = np.array(view.tolist(), view.dtype)  # the same pixels with the usual strides
        got, _ = preprocess([view], cfg)
        want, _ = preprocess([fresh], cfg)
        np.testing.assert_array_equal(got, want)


def test_float16_is_float32_rounded(photos):
    base = dict(size=(80, 80), interpolation="bilinear_aa")
    f32, _ = preprocess([photos["coffee"]], PreprocessConfig(**base))
    f16, _ = preprocess([photos["coffee"]], PreprocessConfig(**base, dtype="float16"))
    assert f16.dtype == np.float16
    np.testing.assert_array_equal(f16, f32.astype(np.float16))


def test_uint16_input_matches_scaled_uint8(photos):
    img8 = photos["astronaut"]
    img16 = img8.astype(np.uint16) * 257
    cfg = PreprocessConfig(size=(64, 64), interpolation="area")
    a, _ = preprocess([img8], cfg)
    b, _ = preprocess([img16], cfg)
    np.testing.assert_allclose(a, b, atol=1e-4)


# ----------------------------------------------------------------------------- against the libraries
@pytest.mark.parametrize("size", [(224, 224), (100, 333), (700, 900)])
@pytest.mark.parametrize("mode,ref", [
    ("bilinear", lambda a, s: cv2.resize(a, s[::-1], interpolation=cv2.INTER_LINEAR)),
    ("area", lambda a, s: cv2.resize(a, s[::-1], interpolation=cv2.INTER_AREA)),
    ("bilinear_aa", lambda a, s: np.asarray(Image.fromarray(a).resize(s[::-1], Image.BILINEAR))),
    ("nearest", lambda a, s: np.asarray(Image.fromarray(a).resize(s[::-1], Image.NEAREST))),
])
def test_resize_matches_library_on_photos(photos, size, mode, ref):
    # Tolerance: one uint8 step. OpenCV computes in 11-bit fixed point and Pillow rounds to uint8
    # between its horizontal and vertical passes; we accumulate in float32 and round once.
    cfg = PreprocessConfig(size=size, resize="stretch", interpolation=mode, dtype="uint8", layout="NHWC")
    for name, img in photos.items():
        got, _ = preprocess([img], cfg)
        want = ref(img, size)
        diff = np.abs(got[0].astype(int) - want.astype(int))
        assert diff.max() <= (0 if mode == "nearest" else 1), (name, diff.max())


# down (both axes shrink), up (both grow), mixed (one grows, the other shrinks), odd and tiny sizes
BICUBIC_SIZES = [(224, 224), (100, 333), (700, 900), (37, 1001), (901, 150), (333, 97), (5, 7)]


def _pillow_bicubic_hv(img: np.ndarray, size) -> np.ndarray:
    """Pillow's BICUBIC resize, its horizontal pass first: two one-axis ``Image.resize`` calls (the
    first one rounds and clips to uint8, as the one-call resize does between its passes)."""
    H, W = size
    im = Image.fromarray(img)
    return np.asarray(im.resize((W, img.shape[0]), Image.BICUBIC).resize((W, H), Image.BICUBIC))


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("mode", ["bicubic", "bicubic_aa"])
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_bicubic_matches_library_on_photos(photos, kernels, mode, channels):
    # bicubic: cv2.resize INTER_CUBIC; bicubic_aa: Pillow BICUBIC. Tolerance: one uint8 step. OpenCV's
    # uint8 INTER_CUBIC rounds each weight to 11 bits and keeps integer sums; Pillow rounds (and clips)
    # its horizontal pass to uint8 before the vertical one, an error of up to 0.5 step times the sum of
    # |vertical weights| (about 1.2 with bicubic's negative lobes); we keep float32 between the passes
    # (clipped to 0..255 for bicubic_aa, as Pillow clips: without that, the ringing at the photos'
    # edges puts us up to 15 steps off) and round once.
    # The Pillow reference runs horizontal first, as pyimgcls does. Pillow 13's one-call resize picks
    # the order itself and goes vertical first for some shapes whose height shrinks (python-pillow PR
    # 9549): with the clip between the passes, the one-call result is then up to 5 steps from ours here
    # ((100, 333) and (37, 1001)); it agrees within one step for the other sizes.
    cfg = PreprocessConfig(size=(1, 1), resize="stretch", interpolation=mode, dtype="uint8", layout="NHWC",
                           channels=channels, mean=0.0, std=1.0)
    worst = {}
    for size in BICUBIC_SIZES:
        cfg = dataclasses.replace(cfg, size=size)
        for name, img in photos.items():
            src = img if channels == 3 else np.ascontiguousarray(img[:, :, 1])
            got, _ = preprocess([src], cfg, threads=1, _kernels=kernels)
            if mode == "bicubic":
                want = cv2.resize(src, size[::-1], interpolation=cv2.INTER_CUBIC)
            else:
                want = _pillow_bicubic_hv(src, size)
            worst[(name, size)] = int(np.abs(got[0].astype(int) - want.reshape(got[0].shape).astype(int)).max())
    bad = {k: v for k, v in worst.items() if v > 1}
    assert not bad, f"{len(bad)} of {len(worst)} over one step, worst {max(bad.items(), key=lambda kv: kv[1])}"


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_bicubic_float_output_keeps_the_overshoot_as_opencv_float_does(photos, kernels):
    # float32 output is not clamped: it follows cv2's float INTER_CUBIC, ringing below 0 and above 255
    # included. Tolerance 0.05 of a step: cv2 computes its weights and sums in float32 in its own order
    # (measured: 0.008 of a step; 0.017 with the SSE4.1 set's Q14 horizontal weights); clamping would
    # show as tens of steps at the photos' strongest edges.
    lo, hi = 0.0, 255.0
    for size in BICUBIC_SIZES[:4]:
        cfg = PreprocessConfig(size=size, resize="stretch", interpolation="bicubic", mean=0.0, std=1.0,
                               layout="NHWC")
        for name, img in photos.items():
            got = preprocess([img], cfg, threads=1, _kernels=kernels)[0][0].astype(np.float64) * 255
            want = cv2.resize(img.astype(np.float32), size[::-1], interpolation=cv2.INTER_CUBIC)
            assert np.abs(got - want).max() <= 0.05, (name, size)
            lo, hi = min(lo, got.min()), max(hi, got.max())
            # uint8 output saturates the same values instead (rounded once; within 1e-3 of a .5
            # boundary the float32 output times 255 may round the other way)
            u8, _ = preprocess([img], dataclasses.replace(cfg, dtype="uint8"), threads=1, _kernels=kernels)
            assert np.abs(u8[0] - np.floor(np.clip(got, 0, 255) + 0.5)).max() <= 1, (name, size)
    assert lo < -10 and hi > 265  # the overshoot is there to keep
    # bicubic_aa clips each pass to 0..255 as Pillow does: its float output stays in range
    cfg = dataclasses.replace(cfg, interpolation="bicubic_aa")
    for img in photos.values():
        got = preprocess([img], cfg, threads=1, _kernels=kernels)[0][0]
        assert got.min() >= 0 and got.max() <= 1 + 1e-6


def _area_growing_cases():
    """(crop h, w) -> (output H, W) pairs where at least one axis grows."""
    cases = [
        # pure upscale by factors where OpenCV's scale 1 / (dst / src) and src / dst differ in the
        # last bit (24 -> 68, 21 -> 54, 49 -> 126, ...): floor(d * scale) picks another source pixel
        ((24, 21), (68, 54)), ((49, 36), (126, 80)), ((80, 99), (200, 220)), ((30, 55), (111, 90)),
        # pure upscale by exact integer factors
        ((25, 40), (50, 120)), ((31, 17), (124, 51)), ((1, 7), (3, 28)), ((16, 16), (64, 64)),
        # up on one axis, down on the other
        ((20, 300), (52, 128)), ((333, 42), (77, 75)), ((120, 30), (41, 111)), ((9, 400), (51, 133)),
        # one axis unchanged, the other grows
        ((50, 50), (50, 104)), ((45, 70), (100, 70)),
        # odd and tiny sizes
        ((1, 1), (5, 3)), ((3, 5), (7, 11)), ((101, 77), (203, 99)), ((2, 3), (257, 129)),
    ]
    rng = np.random.default_rng(4)
    while len(cases) < 60:
        h, w, H, W = (int(v) for v in rng.integers(1, 160, 4))
        if H > h or W > w:
            cases.append(((h, w), (H, W)))
    return cases


@pytest.mark.parametrize("channels", [3, 1])
def test_area_with_a_growing_axis_matches_opencv(photos, channels):
    # Tolerance: one uint8 step. With a growing axis OpenCV's INTER_AREA is its area-mode bilinear
    # (source pixel floor(d * scale) with scale = 1 / (dst / src), weight frac((d + 1) - (s + 1) *
    # dst / src)) in 11-bit fixed point, rounding twice; we use float32 weights and round once. A
    # wrong source pixel or weight shows as many steps on a photo's edges.
    worst = {}
    for (h, w), (H, W) in _area_growing_cases():
        cfg = PreprocessConfig(size=(H, W), resize="stretch", interpolation="area", dtype="uint8", layout="NHWC",
                               mean=0.0, std=1.0, channels=channels)
        for name, img in photos.items():
            y, x = (img.shape[0] - h) // 3, (img.shape[1] - w) // 2
            crop = np.ascontiguousarray(img[y:y + h, x:x + w] if channels == 3 else img[y:y + h, x:x + w, 1])
            got, _ = preprocess([crop], cfg, threads=1)
            want = cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA).reshape(H, W, channels)
            worst[(name, (h, w), (H, W))] = int(np.abs(got[0].astype(int) - want.astype(int)).max())
    bad = {k: v for k, v in worst.items() if v > 1}
    assert not bad, f"{len(bad)} of {len(worst)} over one step, worst {max(bad.items(), key=lambda kv: kv[1])}"


@pytest.mark.parametrize("interpolation,resample", [("bilinear_aa", Image.BILINEAR), ("bicubic_aa", Image.BICUBIC)])
@pytest.mark.parametrize("crop_pct", [0.875, 1.0, 0.95])
def test_center_crop_matches_timm_eval_transform(photos, crop_pct, interpolation, resample):
    # Pillow's one-call resize here (aspect kept: Pillow runs its horizontal pass first, as we do). With
    # bicubic_aa the float input follows Pillow's uint8 image normalised because both passes are clipped
    # to 0..255 (a float output that kept the ringing would be up to 9 steps off).
    # Tolerance: Pillow rounds the horizontal pass (0.5 step, times the vertical weights' largest sum of
    # absolute values: 1 for the triangle, about 1.1 for bicubic) and its result (0.5 step); our float
    # output is not rounded at all. One step for bilinear_aa, slightly more for bicubic_aa.
    cfg = PreprocessConfig(size=(224, 224), crop_pct=crop_pct, interpolation=interpolation)
    for img in photos.values():
        got, _ = preprocess([img], cfg)
        want = timm_eval_chain(img, 224, crop_pct, cfg.mean, cfg.std, resample)
        h, w = img.shape[:2]
        rh, rw, cy, cx, _, _, ch, cw = cfg.plan(h, w)[0]
        gain = np.abs(axis_weights(interpolation, h, rh, cy, ch, True)).sum(axis=1).max()
        step = 1.0 / (255 * min(cfg.std))  # one uint8 step, after normalisation
        assert np.abs(got[0] - want).max() <= (0.5 + 0.5 * gain) * step + 1e-5


def test_blob_from_image_equivalent(big_photo):
    # cv2.dnn.blobFromImage(crop=True) scales by a float factor, so its resized width can be one
    # pixel wider; the equal-geometry chain is resize -> crop -> normalise.
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    cfg = PreprocessConfig(size=(224, 224), crop_pct=1.0, interpolation="bilinear", mean=mean, std=std)
    got, _ = preprocess([big_photo], cfg)
    r = cv2.resize(big_photo, (298, 224), interpolation=cv2.INTER_LINEAR)[:, 37:261]
    want = ((r / 255.0 - mean) / std).transpose(2, 0, 1)
    assert np.abs(got[0] - want).max() <= 1.0 / (255 * min(std)) + 1e-5


# ----------------------------------------------------------------------------- geometry
def _photo_crops(photos, n_per_photo, seed):
    """The photos themselves, then crops of them of many sizes (very wide and very tall included)."""
    rng = np.random.default_rng(seed)
    for name, img in photos.items():
        yield name, img
        for _ in range(n_per_photo):
            h, w = (int(rng.integers(1, s + 1)) for s in img.shape[:2])
            y, x = (int(rng.integers(0, s - c + 1)) for s, c in zip(img.shape[:2], (h, w)))
            yield f"{name}[{y}:{y + h}, {x}:{x + w}]", img[y:y + h, x:x + w]


@pytest.mark.parametrize("size", [(640, 640), (320, 256), (384, 640), (97, 131)])
def test_letterbox_matches_ultralytics_opencv_chain(photos, size):
    # Ultralytics' LetterBox with OpenCV: cv2.resize INTER_LINEAR to the rounded size, then
    # copyMakeBorder top = round(dh - 0.1), bottom = round(dh + 0.1) (left / right alike), value 114.
    # The border must sit exactly where OpenCV puts it (equal pixels); inside, one uint8 step:
    # OpenCV's uint8 INTER_LINEAR uses 11-bit fixed-point weights, we use float32 and round once.
    cfg = PreprocessConfig(size=size, resize="letterbox", interpolation="bilinear", dtype="uint8", layout="NHWC",
                           pad_value=114, mean=0.0, std=1.0)
    H, W = size
    for name, img in _photo_crops(photos, 6, seed=H * W):
        h, w = img.shape[:2]
        r = min(H / h, W / w)
        if round(h * r) < 1 or round(w * r) < 1:
            continue  # Ultralytics would resize to an empty image (pyimgcls keeps one pixel)
        want, (top, left, nh, nw) = ultralytics_letterbox(np.ascontiguousarray(img), size)
        got, tf = preprocess([img], cfg, threads=1)
        got = got[0]
        assert got.shape == want.shape == (H, W, 3), name
        diff = np.abs(got.astype(np.int16) - want)
        content = (slice(top, top + nh), slice(left, left + nw))
        inside = int(diff[content].max())
        assert inside <= 1, (name, inside)
        diff[content] = 0
        assert diff.max() == 0, (name, "border differs")
        got[content] = 114
        assert (got == 114).all(), (name, "border is not 114")
        # and the transform says the same: the whole image maps onto the content window
        full = tf[0].to_input(np.array([[0.0, 0.0, w, h]]))[0]
        np.testing.assert_allclose(full, [left, top, left + nw, top + nh], atol=1e-9, err_msg=name)


def _blob(h, w, cy, cx, sigma):
    """A dark (h, w, 3) uint8 image with a bright Gaussian dot centred at (cy, cx) (continuous
    coordinates, pixel i covering [i, i + 1))."""
    y = np.arange(h)[:, None] + 0.5
    x = np.arange(w)[None, :] + 0.5
    v = 20 + 230 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return np.repeat(np.round(v).astype(np.uint8)[:, :, None], 3, axis=2)


def _centroid(plane):
    """Intensity-weighted centre (y, x) of what rises above the dark background, continuous coordinates."""
    v = np.clip(plane.astype(np.float64) - 20, 0, None)
    y = np.arange(plane.shape[0])[:, None] + 0.5
    x = np.arange(plane.shape[1])[None, :] + 0.5
    return (v * y).sum() / v.sum(), (v * x).sum() / v.sum()


@pytest.mark.parametrize("resize,crop_pct", [("center_crop", 0.875), ("center_crop", 1.0), ("center_crop", 0.5),
                                             ("letterbox", 1.0), ("stretch", 1.0)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bilinear_aa", "area", "bicubic", "bicubic_aa"])
@pytest.mark.parametrize("hw", [(480, 640), (700, 311), (123, 97), (300, 300)])
def test_a_bright_dot_lands_where_the_transform_says(resize, crop_pct, interpolation, hw):
    # A Gaussian dot in the original image must show up in the model input at
    # transform.to_input(dot), and transform.to_original must bring it back. The dot is wide
    # (sigma of 2.5 output pixels) so that resampling moves its centroid by far less than the
    # tolerance, 0.1 output pixel (measured: under 0.02); a crop or pad off by one pixel misses by 1.
    h, w = hw
    size = (224, 224) if resize != "stretch" else (160, 200)
    cfg = PreprocessConfig(size=size, resize=resize, crop_pct=crop_pct, interpolation=interpolation,
                           dtype="float32", layout="NCHW", mean=0.0, std=1.0, pad_value=20)
    _, tf = cfg.plan(h, w)
    sy, sx = tf.scale
    sigma = 2.5 / min(sy, sx)  # in original pixels
    # the part of the original that the input shows, and dots well inside it
    x1, y1, x2, y2 = tf.to_original(np.array([[0.0, 0.0, size[1], size[0]]]))[0]
    for fy, fx in [(0.5, 0.5), (0.3, 0.7), (0.7, 0.25)]:
        cy, cx = y1 + fy * (y2 - y1), x1 + fx * (x2 - x1)
        out, tfs = preprocess([_blob(h, w, cy, cx, sigma)], cfg, threads=1)
        my, mx = _centroid(out[0, 1] * 255)
        ey, ex = tfs[0].to_input(np.array([[cx, cy, cx, cy]]))[0, 1::-1]
        assert abs(my - ey) <= 0.1 and abs(mx - ex) <= 0.1, ((my, mx), (ey, ex))
        back = tfs[0].to_original(np.array([[mx, my, mx, my]]))[0]
        np.testing.assert_allclose(back[:2], [cx, cy], atol=0.1 / min(sy, sx))


@given(st.integers(2, 2000), st.integers(2, 2000), st.sampled_from(["stretch", "center_crop", "letterbox"]),
       st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_box_round_trip(h, w, resize, u):
    cfg = PreprocessConfig(size=(320, 256), resize=resize)
    _, tf = cfg.plan(h, w)
    x1, x2 = sorted((u[0] * w, u[1] * w))
    y1, y2 = sorted((u[2] * h, u[3] * h))
    box = np.array([[x1, y1, x2, y2]])
    back = tf.to_original(tf.to_input(box), clip=False)
    np.testing.assert_allclose(back, box, rtol=1e-12, atol=1e-9)


def test_config_json_round_trip():
    cfg = PreprocessConfig(size=(300, 200), resize="letterbox", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           pad_value=(1, 2, 3), dtype="float16")
    assert PreprocessConfig.from_json(cfg.to_json()) == cfg


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments():
    img = np.zeros((10, 10, 3), np.uint8)
    cfg = PreprocessConfig(size=(8, 8))
    with pytest.raises(TypeError, match="uint8, uint16 or float in"):
        preprocess([img.astype(np.int16)], cfg)
    with pytest.raises(ValueError, match=r"images\[0\]: float32 images must hold values in \[0, 1\]"):
        preprocess([img.astype(np.float32) + 255], cfg)
    with pytest.raises(ValueError, match="non-empty"):
        preprocess([np.zeros((0, 10, 3), np.uint8)], cfg)
    with pytest.raises(ValueError, match=r"C in 1, 3, 4; got \(10, 10, 2\)"):
        preprocess([np.zeros((10, 10, 2), np.uint8)], cfg)
    with pytest.raises(ValueError, match=r"\(10, 10, 5\)"):
        preprocess([np.zeros((10, 10, 5), np.uint8)], cfg)
    with pytest.raises(ValueError, match="shape"):
        preprocess([np.zeros((2, 10, 10, 3), np.uint8)], cfg)
    with pytest.raises(TypeError, match="numpy array"):
        preprocess(["x.jpg"], cfg)
    with pytest.raises(TypeError, match="PreprocessConfig"):
        preprocess([img], {"size": (8, 8)})
    with pytest.raises(TypeError, match="float32"):
        preprocess([img], cfg, out=np.zeros((1, 3, 8, 8), np.float64))
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\)"):
        preprocess([img], cfg, out=np.zeros((1, 3, 8, 9), np.float32))
    with pytest.raises(ValueError, match="positive"):
        PreprocessConfig(size=(0, 224))
    with pytest.raises(ValueError, match="mean must have 3 values"):
        PreprocessConfig(mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="std must be non-zero"):
        PreprocessConfig(std=(0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match="interpolation"):
        PreprocessConfig(interpolation="cubic")
    with pytest.raises(ValueError, match="crop_pct"):
        PreprocessConfig(crop_pct=0)
    with pytest.raises(TypeError):
        PreprocessConfig((224, 224))  # keyword-only


def test_empty_batch():
    out, tfs = preprocess([], PreprocessConfig(size=(8, 8)))
    assert out.shape == (0, 3, 8, 8) and len(tfs) == 0


def test_one_image_path_allocates_nothing_big(big_photo):
    import tracemalloc

    cfg = PreprocessConfig(size=(224, 224))
    out = np.empty((1, 3, 224, 224), np.float32)
    preprocess([big_photo], cfg, out=out, threads=1)
    tracemalloc.start()
    for _ in range(5):
        preprocess([big_photo], cfg, out=out, threads=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20_000  # Python-side allocations only: no output-sized buffer (600 kB)


def test_float_images_in_unit_range_are_16_bit_samples(photos):
    """A float image in [0, 1] is read as uint16 round(v * 65535): the same answer as that uint16 image."""
    img = photos["coffee"][::3, ::3]
    f = img.astype(np.float64) / 255.0
    cfg = PreprocessConfig(size=(32, 48), resize="letterbox", interpolation="area")
    want, _ = preprocess([np.rint(f * 65535).astype(np.uint16)], cfg)
    got, _ = preprocess([f.astype(np.float32)], cfg)
    np.testing.assert_allclose(got, want, atol=2e-5)
    u8, _ = preprocess([img], cfg)
    # v / 255 * 65535 = 257 v exactly; the uint8 path blends with Q14 weights (a few 1e-5 apart)
    np.testing.assert_allclose(got, u8, atol=3e-4)


def test_native_call_refuses_overlapping_rows_and_plans_that_do_not_fit():
    """The private kernel entry point checks what pyimgcls.preprocess guarantees: rows that do not
    overlap (a broadcast view would let wide loads read past the buffer) and plans inside bounds."""
    from pyimgcls import _core

    out = np.zeros((1, 3, 8, 8), np.float32)
    args = dict(out=out, layout=0, interpolation=1, out_channels=3, channel_map=[0, 1, 2], gray_weights=[0.3] * 3,
                scale=[1.0] * 3, bias=[0.0] * 3, pad=[0.0] * 3, threads=1)
    row = np.arange(30, dtype=np.uint8).reshape(1, 10, 3)
    good_plan = np.array([[8, 8, 0, 0, 0, 0, 8, 8]], np.int32)
    _core.preprocess_batch([np.ascontiguousarray(np.broadcast_to(row, (10, 10, 3)))], good_plan, **args)
    with pytest.raises(ValueError, match="contiguous pixels"):
        _core.preprocess_batch([np.broadcast_to(row, (10, 10, 3))], good_plan, **args)
    img = np.zeros((10, 10, 3), np.uint8)
    for bad in ([8, 8, 1, 0, 0, 0, 8, 8], [8, 8, 0, 0, 1, 0, 8, 8], [8, 8, 0, 0, 0, 0, 9, 8], [0, 8, 0, 0, 0, 0, 0, 8],
                [8, 8, -1, 0, 0, 0, 8, 8]):
        with pytest.raises(ValueError, match=r"plans\[0\] does not fit"):
            _core.preprocess_batch([img], np.array([bad], np.int32), **args)
