"""Preprocessing and decode against the chains a user would otherwise write (single thread)."""

import cv2
import numpy as np
import pytest
import simplejpeg
from PIL import Image

from _helpers.peers import timm_eval_chain
from pyimgcls import PreprocessConfig, preprocess, read_image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
STEP = 1.0 / (255 * min(STD))  # one uint8 step after normalisation


# ----------------------------------------------------------------------------- bilinear 224
# The source is a BGR array as cv2.imread returns it; the model wants RGB.
def _cv2_chain(bgr):
    h, w = bgr.shape[:2]
    nw, nh = int(224 * w / h) if w > h else 224, int(224 * h / w) if h > w else 224
    r = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = int(round((nh - 224) / 2)), int(round((nw - 224) / 2))
    r = cv2.cvtColor(r[top:top + 224, left:left + 224], cv2.COLOR_BGR2RGB)
    x = r.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))[None]


def _blob(bgr):
    return cv2.dnn.blobFromImage(bgr, 1.0 / (255 * 0.226), (224, 224), tuple(255 * m for m in MEAN),
                                 swapRB=True, crop=True)


@pytest.fixture(scope="module")
def bilinear_setup(photo_1280):
    cfg = PreprocessConfig(size=(224, 224), resize="center_crop", crop_pct=1.0, interpolation="bilinear",
                           mean=MEAN, std=STD)
    out = np.empty((1, 3, 224, 224), np.float32)
    ours, _ = preprocess([photo_1280], cfg, out=out, threads=1, input_order="BGR")
    chain = _cv2_chain(photo_1280)
    assert np.abs(ours - chain).max() <= STEP + 1e-5  # equality check before timing
    blob = _blob(photo_1280)
    assert blob.shape == ours.shape  # same geometry up to cv2's float resize factor
    return cfg, out


@pytest.mark.benchmark(group="preprocess-bilinear-1280x960-224")
def test_pyimgcls_bilinear(benchmark, photo_1280, bilinear_setup):
    cfg, out = bilinear_setup
    benchmark(preprocess, [photo_1280], cfg, out=out, threads=1, input_order="BGR")


@pytest.mark.benchmark(group="preprocess-bilinear-1280x960-224")
def test_cv2_blob_from_image(benchmark, photo_1280, bilinear_setup):
    benchmark(_blob, photo_1280)


@pytest.mark.benchmark(group="preprocess-bilinear-1280x960-224")
def test_cv2_resize_chain(benchmark, photo_1280, bilinear_setup):
    benchmark(_cv2_chain, photo_1280)


# ----------------------------------------------------------------------------- antialias (timm eval)
def _pil_chain(img):
    return timm_eval_chain(img, 224, 0.875, MEAN, STD)[None]


@pytest.fixture(scope="module")
def aa_setup(photo_1280):
    cfg = PreprocessConfig(size=(224, 224), crop_pct=0.875, interpolation="bilinear_aa", mean=MEAN, std=STD)
    out = np.empty((1, 3, 224, 224), np.float32)
    ours, _ = preprocess([photo_1280], cfg, out=out, threads=1)
    assert np.abs(ours - _pil_chain(photo_1280)).max() <= STEP + 1e-5
    return cfg, out


@pytest.mark.benchmark(group="preprocess-bilinear_aa-1280x960-224")
def test_pyimgcls_bilinear_aa(benchmark, photo_1280, aa_setup):
    cfg, out = aa_setup
    benchmark(preprocess, [photo_1280], cfg, out=out, threads=1)


@pytest.mark.benchmark(group="preprocess-bilinear_aa-1280x960-224")
def test_pil_chain(benchmark, photo_1280, aa_setup):
    benchmark(_pil_chain, photo_1280)


# ----------------------------------------------------------------------------- bicubic antialias (timm eval)
# timm's default eval transform for many models: Resize(256, BICUBIC) + CenterCrop(224) + normalise
def _pil_bicubic_chain(img):
    return timm_eval_chain(img, 224, 0.875, MEAN, STD, Image.BICUBIC)[None]


@pytest.fixture(scope="module")
def bicubic_aa_setup(photo_1280):
    cfg = PreprocessConfig(size=(224, 224), crop_pct=0.875, interpolation="bicubic_aa", mean=MEAN, std=STD)
    out = np.empty((1, 3, 224, 224), np.float32)
    ours, _ = preprocess([photo_1280], cfg, out=out, threads=1)
    # Pillow rounds both passes to uint8 (0.5 step each, the first one times the vertical weights'
    # largest sum of |weights|, about 1.17 here), our float output is not rounded: 1.1 steps
    assert np.abs(ours - _pil_bicubic_chain(photo_1280)).max() <= 1.1 * STEP + 1e-5
    return cfg, out


@pytest.mark.benchmark(group="preprocess-bicubic_aa-1280x960-224")
def test_pyimgcls_bicubic_aa(benchmark, photo_1280, bicubic_aa_setup):
    cfg, out = bicubic_aa_setup
    benchmark(preprocess, [photo_1280], cfg, out=out, threads=1)


@pytest.mark.benchmark(group="preprocess-bicubic_aa-1280x960-224")
def test_pil_bicubic_chain(benchmark, photo_1280, bicubic_aa_setup):
    benchmark(_pil_bicubic_chain, photo_1280)


# ----------------------------------------------------------------------------- batch scaling
@pytest.fixture(scope="module")
def batch_setup(mixed_photos):
    cfg = PreprocessConfig(size=(224, 224), interpolation="bilinear")
    out = np.empty((64, 3, 224, 224), np.float32)
    one, _ = preprocess(mixed_photos, cfg, threads=1)
    two, _ = preprocess(mixed_photos, cfg, threads=2, out=out)
    np.testing.assert_array_equal(one, two)
    return cfg, out


@pytest.mark.benchmark(group="preprocess-batch64-mixed")
@pytest.mark.parametrize("threads", [1, 2])
def test_pyimgcls_batch(benchmark, mixed_photos, batch_setup, threads):
    cfg, out = batch_setup
    benchmark(preprocess, mixed_photos, cfg, out=out, threads=threads)


# ----------------------------------------------------------------------------- decode
@pytest.mark.benchmark(group="decode-jpeg-1280x960")
def test_read_image_min_size(benchmark, jpeg_1280):
    img = read_image(jpeg_1280, min_size=(256, 256))
    assert img.shape == (480, 640, 3)
    benchmark(read_image, jpeg_1280, min_size=(256, 256))


@pytest.mark.benchmark(group="decode-jpeg-1280x960")
def test_read_image_full(benchmark, jpeg_1280):
    benchmark(read_image, jpeg_1280)


@pytest.mark.benchmark(group="decode-jpeg-1280x960")
def test_cv2_imdecode_reduced_2(benchmark, jpeg_1280):
    """The like-for-like peer of ``read_image(min_size=...)`` at 1/2 scale: OpenCV's own reduced decode."""
    buf = np.frombuffer(jpeg_1280, np.uint8)
    ref = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_2)[:, :, ::-1]
    ours = read_image(jpeg_1280, min_size=(256, 256))
    assert ref.shape == ours.shape == (480, 640, 3)
    assert np.abs(ref.astype(int) - ours.astype(int)).max() <= 2  # both libjpeg(-turbo) DCT scaling
    benchmark(cv2.imdecode, buf, cv2.IMREAD_REDUCED_COLOR_2)


@pytest.mark.benchmark(group="decode-jpeg-1280x960")
def test_cv2_imdecode(benchmark, jpeg_1280):
    buf = np.frombuffer(jpeg_1280, np.uint8)
    ref = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.abs(ref.astype(int) - read_image(jpeg_1280).astype(int)).max() <= 1
    benchmark(cv2.imdecode, buf, cv2.IMREAD_COLOR)


@pytest.mark.benchmark(group="decode-jpeg-1280x960")
@pytest.mark.parametrize("factor", [2, 4, 8, 8 / 3])
def test_simplejpeg_scale(benchmark, jpeg_1280, factor):
    # which DCT scales pay: 1/2, 1/4, 1/8 (SIMD) and 3/8 (not SIMD) for comparison
    kw = {"min_height": int(np.ceil(960 / factor)), "min_width": int(np.ceil(1280 / factor))}
    benchmark(simplejpeg.decode_jpeg, jpeg_1280, **kw)


# ----------------------------------------------------------------------------- Ultralytics letterbox 1920x1080 -> 640
# Ultralytics' LetterBox as its predictor runs it on a BGR frame: cv2.resize INTER_LINEAR to 640x360,
# copyMakeBorder 140 / 140 with 114, BGR -> RGB, HWC -> CHW, float32 / 255. pyimgcls' bilinear_cv2 gives
# the same uint8 pixels, so the tensors agree to the last bit of x * (1 / 255) vs x / 255; one thread
# on both sides (cv2.setNumThreads(1) for the peer).
def _ultralytics_chain(bgr):
    h, w = bgr.shape[:2]
    r = min(640 / h, 640 / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (640 - nw) / 2, (640 - nh) / 2
    im = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = int(round(dh - 0.1)), int(round(dh + 0.1)), int(round(dw - 0.1)), int(round(dw + 0.1))
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)[None])
    return x.astype(np.float32) / 255


@pytest.fixture(scope="module")
def letterbox_setup(photo_1280):
    frame = np.ascontiguousarray(cv2.resize(photo_1280, (1920, 1080), interpolation=cv2.INTER_CUBIC))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    cfgs = {m: PreprocessConfig(size=(640, 640), resize="letterbox", interpolation=m, mean=0.0, std=1.0, pad_value=114)
            for m in ("bilinear_cv2", "bilinear")}
    out = np.empty((1, 3, 640, 640), np.float32)
    want = _ultralytics_chain(frame)
    ours, _ = preprocess([frame], cfgs["bilinear_cv2"], out=out, threads=1, input_order="BGR")
    np.testing.assert_allclose(ours, want, rtol=2e-7, atol=0)  # equality check before timing: same pixels
    ours, _ = preprocess([frame], cfgs["bilinear"], out=out, threads=1, input_order="BGR")
    assert np.abs(ours - want).max() <= 1 / 255 + 1e-6
    yield frame, cfgs, out
    cv2.setNumThreads(threads)


@pytest.mark.benchmark(group="letterbox-1920x1080-640")
@pytest.mark.parametrize("mode", ["bilinear_cv2", "bilinear"])
def test_pyimgcls_letterbox(benchmark, letterbox_setup, mode):
    frame, cfgs, out = letterbox_setup
    benchmark(preprocess, [frame], cfgs[mode], out=out, threads=1, input_order="BGR")


@pytest.mark.benchmark(group="letterbox-1920x1080-640")
def test_ultralytics_letterbox_chain(benchmark, letterbox_setup):
    frame, _, _ = letterbox_setup
    benchmark(_ultralytics_chain, frame)
