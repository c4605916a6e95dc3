"""The pipeline's transforms map model-input coordinates to full-resolution pixels of the image as
``read_image`` returns it (the EXIF-rotated frame), whatever scale the JPEG was decoded at."""

import io

import numpy as np
import pytest
from PIL import Image

from pyimgcls import PreprocessConfig, preprocess, read_image
from pyimgcls.io.images import DecodeInfo
from pyimgcls.io.sources import iter_items
from pyimgcls.runtime.pipeline import prepare_batches

CFG = PreprocessConfig(size=(256, 256), resize="letterbox", mean=(0, 0, 0), std=(1, 1, 1), interpolation="area")


def _dot_jpeg(photo, size=(2400, 3200), dot=(700, 2100), radius=40, orientation=1):
    """A real photo, darkened, scaled to ``size`` (h, w) with a bright disc centred at ``dot`` (y, x)
    in the stored pixels; returns the JPEG and the disc's centre in the viewer's frame."""
    import cv2

    h, w = size
    img = (cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA) // 4).astype(np.uint8)
    cv2.circle(img, (dot[1], dot[0]), radius, (255, 255, 255), -1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    y, x = dot
    view = {1: (y, x), 6: (x, h - 1 - y), 8: (w - 1 - x, y), 3: (h - 1 - y, w - 1 - x)}[orientation]
    return buf.getvalue(), (view[0] + 0.5, view[1] + 0.5)  # pixel centre


def _found(batch_img, transform):
    """Centre of the bright disc found in the model input, mapped back with ``transform``."""
    m = batch_img.mean(axis=0) > 0.85  # (H, W) NCHW
    ys, xs = np.nonzero(m)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    b = transform.to_original(np.array([[cx, cy, cx, cy]]), clip=False)[0]
    return b[1], b[0]


@pytest.mark.parametrize("orientation", [1, 6, 8])
@pytest.mark.parametrize("min_side", [None, 1200, 600, 300])  # full, 1/2, 1/4, 1/8 DCT scale
def test_boxes_map_back_to_full_resolution_at_every_decode_scale(photos, orientation, min_side):
    data, (ty, tx) = _dot_jpeg(photos["coffee"], orientation=orientation)
    img, info = read_image(data, min_size=None if min_side is None else (min_side, min_side), return_info=True)
    full = (3200, 2400) if orientation in (6, 8) else (2400, 3200)
    assert isinstance(info, DecodeInfo) and info.full_size == full
    want_scale = {None: 1, 1200: 2, 600: 4, 300: 8}[min_side]
    assert info.scale == 1 / want_scale
    assert img.shape[:2] == tuple(-(-s // want_scale) for s in full)
    batch, tf = preprocess([img], CFG)
    t = tf[0].at_full_resolution(info.scale, info.full_size)
    assert t.original_size == full
    y, x = _found(batch[0], t)
    tol = 1.5 * max(full) / 256  # one and a half model-input pixels, in full-resolution pixels
    assert abs(y - ty) < tol and abs(x - tx) < tol, ((y, x), (ty, tx), tol)
    # a box round-trips through the transform exactly
    box = np.array([[tx - 30, ty - 20, tx + 30, ty + 20]])
    np.testing.assert_allclose(t.to_original(t.to_input(box)), box, atol=1e-9)


@pytest.mark.parametrize("fast_decode", [False, True])
def test_pipeline_transforms_are_in_full_resolution_pixels(photos, fast_decode):
    data, (ty, tx) = _dot_jpeg(photos["chelsea"], orientation=6)
    (p,) = list(prepare_batches(iter_items([data]), CFG, batch_size=1, threads=1, fast_decode=fast_decode))
    assert not p.errors
    t = p.transforms[0]
    assert t.original_size == (3200, 2400)
    y, x = _found(p.batch[0], t)
    tol = 1.5 * 3200 / 256
    assert abs(y - ty) < tol and abs(x - tx) < tol


def test_arrays_report_scale_one(photos):
    (p,) = list(prepare_batches(iter_items([photos["coffee"]]), CFG, batch_size=1, threads=1, fast_decode=True))
    assert p.transforms[0].original_size == photos["coffee"].shape[:2]


@pytest.mark.parametrize("threshold, where", [(1.0, "pyimgcls-prepare"), (0.0, "pyimgcls-decode")])
def test_small_images_decode_in_the_producer_and_large_ones_in_the_pool(tmp_path, monkeypatch, threshold, where):
    """Each chunk's mean decode time picks where the next chunk decodes (the producer thread for
    small images, the pool for large ones); the batches are the same either way."""
    import cv2
    import threading

    from pyimgcls.runtime import pipeline

    rng = np.random.default_rng(0)
    srcs = []
    for i in range(40):
        p = tmp_path / f"{i:02d}.bmp"  # BMP: through load_item (PNG files go to the native batch loader)
        if i == 17:
            p.write_bytes(b"not an image")
        else:
            cv2.imwrite(str(p), rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
        srcs.append(str(p))
    cfg = PreprocessConfig(size=(28, 28), resize="stretch", mean=(0, 0, 0), std=(1, 1, 1))
    seen: list[tuple[int, str]] = []
    real = pipeline.load_item

    def spy(item, **kw):
        seen.append((len(seen), threading.current_thread().name))
        return real(item, **kw)

    monkeypatch.setattr(pipeline, "load_item", spy)
    monkeypatch.setattr(pipeline, "SERIAL_DECODE_S", threshold)
    got = list(prepare_batches(iter_items(srcs), cfg, batch_size=8, threads=2))
    names = [n for _, n in seen]
    assert all(n.startswith("pyimgcls-decode") for n in names[:8])  # the first chunk: the pool
    assert all(n.startswith(where) for n in names[8:]), names[8:]
    want = [read_image(s) if i != 17 else None for i, s in enumerate(srcs)]
    flat = [(p, j) for p in got for j in range(len(p.items))]
    assert len(flat) == 40
    for k, (p, j) in enumerate(flat):
        if k == 17:
            assert j in p.errors and "not a supported image format" in str(p.errors[j])
        else:
            row = p.ok.index(j)
            ref, _ = preprocess([want[k]], cfg)
            np.testing.assert_array_equal(p.batch[row], ref[0])


def test_png_files_load_natively_in_a_batch_with_load_items_answers(tmp_path, monkeypatch):
    """The chunk's .png paths go to one native call; every file it does not take (EXIF, 16-bit,
    palette, corrupt, a JPEG named .png, missing, a FIFO) goes through load_item: the batches,
    the decode infos and the errors are those of load_item for every item."""
    import os

    import cv2
    from PIL import Image

    from pyimgcls.io.sources import Item, load_item
    from pyimgcls.runtime import pipeline

    rng = np.random.default_rng(1)
    srcs = []

    def path(name):
        p = str(tmp_path / name)
        srcs.append(p)
        return p

    for i in range(6):
        cv2.imwrite(path(f"c{i}.png"), rng.integers(0, 256, (30 + i, 20, 3), dtype=np.uint8))
    cv2.imwrite(path("gray.png"), rng.integers(0, 256, (25, 31), dtype=np.uint8))
    cv2.imwrite(path("rgba.png"), rng.integers(0, 256, (25, 31, 4), dtype=np.uint8))
    cv2.imwrite(path("deep.png"), rng.integers(0, 65536, (25, 31, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 256, (25, 31), dtype=np.uint8)).convert("P").save(path("pal.png"))
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(path("rot.png"), exif=exif.tobytes())
    cv2.imwrite(path("jpeg.PNG") + ".jpg", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    os.rename(srcs[-1] + ".jpg", srcs[-1])
    with open(path("cut.png"), "wb") as f:
        f.write(open(srcs[0], "rb").read()[:90])
    path("missing.png")
    os.mkfifo(path("fifo.png"))
    cfg = PreprocessConfig(size=(24, 24), resize="stretch", mean=(0, 0, 0), std=(1, 1, 1))
    calls = []
    real = pipeline._LOAD_PNGS
    monkeypatch.setattr(pipeline, "_LOAD_PNGS", lambda paths, *a: calls.append(len(paths)) or real(paths, *a))
    got = list(prepare_batches(iter_items(srcs), cfg, batch_size=len(srcs), threads=2))
    assert calls == [len(srcs)]
    (p,) = got
    for i, s in enumerate(srcs):
        try:
            img, info = load_item(Item(s, s), return_info=True)
        except (ValueError, OSError) as e:
            assert i in p.errors and str(p.errors[i]) == str(e), (s, p.errors.get(i), e)
            continue
        row = p.ok.index(i)
        assert p.infos[row] == info, s
        ref, _ = preprocess([img], cfg)
        np.testing.assert_array_equal(p.batch[row], ref[0], err_msg=s)
    assert {os.path.basename(srcs[i]) for i in p.errors} == {"cut.png", "missing.png", "fifo.png"}
    rot = p.infos[p.ok.index(srcs.index(str(tmp_path / "rot.png")))]
    assert rot.full_size == (40, 20)  # EXIF orientation applied (by read_image)


def test_an_item_is_taken_as_it_is(tmp_path):
    """iter_items passes an Item through (no file-system check): a folder given as an Item is one
    input (its error), not its files; eval gives each dataset row this way."""
    import cv2

    from pyimgcls.io.sources import Item

    d = tmp_path / "sub.png"
    d.mkdir()
    cv2.imwrite(str(d / "x.png"), np.zeros((4, 4, 3), np.uint8))
    got = list(iter_items([Item("row 1", str(d)), str(d)]))
    assert [g.source for g in got] == ["row 1", str(d / "x.png")]
