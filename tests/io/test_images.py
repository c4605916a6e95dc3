import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import pyimgcls
from pyimgcls import ImageDecodeError, read_image


def _encode(img: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _with_orientation(img: np.ndarray, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    extra = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(img).save(buf, format=fmt, exif=exif.tobytes(), **extra)
    return buf.getvalue()


# ----------------------------------------------------------------------------- pixels
def test_jpeg_matches_pillow(photos):
    # Both decode with libjpeg-turbo (accurate DCT, fancy upsampling): identical pixels.
    for name, img in photos.items():
        data = _encode(img, "JPEG", quality=90)
        ours = read_image(data)
        ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert ours.dtype == np.uint8 and ours.shape == ref.shape
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1, name


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "BMP"])
def test_lossless_formats_exact(photos, fmt):
    img = photos["coffee"]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(img, fmt, **kw)
    np.testing.assert_array_equal(read_image(data), img)
    np.testing.assert_array_equal(read_image(data, color="bgr"), img[:, :, ::-1])
    gray = read_image(data, color="gray")
    assert gray.shape == img.shape[:2]
    ref_gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert np.abs(gray.astype(int) - ref_gray.astype(int)).max() <= 1


def test_color_modes_from_gray_palette_rgba(photos):
    img = photos["astronaut"]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])
    pal = Image.fromarray(img).convert("P", palette=Image.ADAPTIVE, colors=64)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    pal_rgb = np.asarray(pal.convert("RGB"))

    g = read_image(_encode(gray, "PNG"))
    assert g.shape == img.shape and (g[..., 0] == gray).all() and (g[..., 2] == gray).all()
    np.testing.assert_array_equal(read_image(_encode(gray, "PNG"), color="unchanged"), gray)
    np.testing.assert_array_equal(read_image(_encode(rgba, "PNG"), color="unchanged"), rgba)
    np.testing.assert_array_equal(read_image(_encode(rgba, "PNG")), img)
    np.testing.assert_array_equal(read_image(buf.getvalue()), pal_rgb)
    gj = read_image(_encode(gray, "JPEG", quality=95), color="unchanged")
    assert gj.ndim == 2


def test_sixteen_bit_png_and_tiff():
    rng = np.random.default_rng(0)
    img16 = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    ok, png = cv2.imencode(".png", img16[:, :, ::-1])
    assert ok
    out = read_image(png.tobytes(), color="unchanged")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img16)
    rgb8 = read_image(png.tobytes())
    assert rgb8.dtype == np.uint8
    np.testing.assert_array_equal(rgb8, (img16 >> 8).astype(np.uint8))
    ok, tif = cv2.imencode(".tiff", img16[:, :, 0])
    np.testing.assert_array_equal(read_image(tif.tobytes(), color="unchanged"), img16[:, :, 0])


def _tiff_rgba(a: np.ndarray, extra: int, orientation: int | None = None) -> bytes:
    """A baseline little-endian TIFF of an (H, W, 4) uint8 / uint16 RGBA array, one uncompressed
    strip, ExtraSamples = extra (0 unspecified, 1 associated, 2 unassociated alpha)."""
    import struct

    h, w, _ = a.shape
    bits = a.dtype.itemsize * 8
    pixels = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 4, None), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, None), (277, 3, 1, 4), (278, 3, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1),
            (338, 3, 1, extra)]
    if orientation is not None:
        tags.append((274, 3, 1, orientation))
    tags.sort()
    ifd_size = 2 + 12 * len(tags) + 4
    bits_at = 8 + ifd_size
    data_at = bits_at + 8
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)))
    for tag, typ, count, value in tags:
        if tag == 258:
            value = bits_at
            out += struct.pack("<HHII", tag, 3, 4, value)
            continue
        if tag == 273:
            value = data_at
        out += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    out += struct.pack("<I", 0) + struct.pack("<4H", bits, bits, bits, bits) + pixels
    return bytes(out)


@pytest.mark.parametrize("depth", [np.uint8, np.uint16])
def test_rgba_tiff_with_unassociated_alpha_keeps_its_stored_colours(depth):
    """OpenCV's TIFF reader premultiplies the colours of unassociated alpha (a pixel stored as
    (255, 0, 0, 128) came back (128, 0, 0)): read_image gives the stored colours, as for the same
    image as PNG, in every colour mode and orientation."""
    from pyimgcls.io.images import _apply_orientation

    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (7, 10, 4)).astype(np.uint8)
    a[0, 0] = (255, 0, 0, 128)
    stored = a if depth == np.uint8 else a.astype(np.uint16) * 257 + rng.integers(0, 257, a.shape).astype(np.uint16)
    rgb8 = a[:, :, :3] if depth == np.uint8 else ((stored[:, :, :3].astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)
    for orientation in [None, 1, 3, 6, 8]:
        data = _tiff_rgba(stored, extra=2, orientation=orientation)
        o = orientation or 1
        np.testing.assert_array_equal(read_image(data, color="unchanged"), _apply_orientation(stored, o))
        np.testing.assert_array_equal(read_image(data), _apply_orientation(rgb8, o))
        np.testing.assert_array_equal(read_image(data, color="bgr"), _apply_orientation(rgb8[:, :, ::-1], o))
        np.testing.assert_array_equal(read_image(data, color="gray"),
                                      _apply_orientation(cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2GRAY), o))
        np.testing.assert_array_equal(read_image(data, exif=False, color="unchanged"), stored)
    if depth == np.uint8:  # the same pixels as PNG
        np.testing.assert_array_equal(read_image(_tiff_rgba(a, extra=2)), read_image(_encode(a, "PNG")))
        np.testing.assert_array_equal(read_image(_encode(a, "TIFF")), a[:, :, :3])  # Pillow writes ExtraSamples 2


def test_rgba_tiff_with_associated_or_unspecified_alpha_is_read_as_stored():
    a = np.random.default_rng(5).integers(0, 256, (5, 6, 4)).astype(np.uint8)
    for extra in (0, 1):
        np.testing.assert_array_equal(read_image(_tiff_rgba(a, extra=extra), color="unchanged"), a)
        np.testing.assert_array_equal(read_image(_tiff_rgba(a, extra=extra)), a[:, :, :3])


def test_rgba_tiff_with_unassociated_alpha_without_pillow_is_refused(monkeypatch):
    import sys

    a = np.full((3, 4, 4), 200, np.uint8)
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL fails
    with pytest.raises(ImageDecodeError, match="premultiplies its colours by the alpha; install Pillow"):
        read_image(_tiff_rgba(a, extra=2))
    # 16 bits need no Pillow
    np.testing.assert_array_equal(read_image(_tiff_rgba(a.astype(np.uint16) * 257, extra=2)), a[:, :, :3])


def test_cmyk_jpeg(photos):
    img = photos["chelsea"]
    buf = io.BytesIO()
    Image.fromarray(img).convert("CMYK").save(buf, format="JPEG", quality=95)
    ours = read_image(buf.getvalue())
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert ours.shape == ref.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 2


# ----------------------------------------------------------------------------- EXIF
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(photos, fmt, orientation):
    img = photos["rocket"][::4, ::4].copy()  # not square
    data = _with_orientation(img, fmt, orientation)
    ref = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    ours = read_image(data)
    assert ours.shape == ref.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    raw = read_image(data, exif=False)
    assert raw.shape == img.shape


# ----------------------------------------------------------------------------- DCT scaling
def test_min_size_picks_simd_scale(big_photo):
    data = _encode(big_photo, "JPEG", quality=90)  # 1280 x 960
    assert read_image(data).shape == (960, 1280, 3)
    assert read_image(data, min_size=(256, 256)).shape == (480, 640, 3)  # 1/2: 1/4 would be 240 high
    assert read_image(data, min_size=(224, 224)).shape == (240, 320, 3)  # 1/4
    assert read_image(data, min_size=(100, 100)).shape == (120, 160, 3)  # 1/8
    assert read_image(data, min_size=(961, 10)).shape == (960, 1280, 3)
    half = read_image(data, min_size=(256, 256)).astype(float)
    ref = cv2.resize(read_image(data), (640, 480), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(half - ref).mean() < 2.0  # DCT-domain downscale is a box-like filter


def test_min_size_follows_orientation(big_photo):
    data = _with_orientation(big_photo, "JPEG", 6)  # stored 1280 x 960, shown 960 x 1280
    out = read_image(data, min_size=(600, 300))
    assert out.shape == (640, 480, 3)


# ----------------------------------------------------------------------------- sources
def test_sources(tmp_path, photos):
    data = _encode(photos["coffee"], "PNG")
    p = tmp_path / "coffee.png"
    p.write_bytes(data)
    a = read_image(p)
    np.testing.assert_array_equal(a, read_image(str(p)))
    np.testing.assert_array_equal(a, read_image(io.BytesIO(data)))
    np.testing.assert_array_equal(a, read_image(bytearray(data)))
    with open(p, "rb") as f:
        np.testing.assert_array_equal(a, read_image(f))
    assert pyimgcls.image_size(data) == ("png", 400, 600)


def test_bytes_like_inputs_of_the_tasks(photos):
    """bytearray and memoryview payloads decode as bytes do on every task path (predict_one took
    them for unsupported objects while predict read them)."""
    from pyimgcls.io.sources import Item, load_item

    data = _encode(photos["coffee"], "PNG")
    want = load_item(Item("b", data))
    for x in (bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_item(Item("b", x)), want)
    clf = pyimgcls.Classifier(threads=1)
    one = clf.predict_one(data).probabilities
    for x in (bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(clf.predict_one(x).probabilities, one)


# ----------------------------------------------------------------------------- bad input
def test_errors_name_the_source(tmp_path, photos):
    jpg = _encode(photos["coffee"], "JPEG")
    png = _encode(photos["coffee"], "PNG")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(jpg[: len(jpg) // 2])
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        read_image(bad)
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageDecodeError, match="not a supported image format"):
        read_image(b"hello world, not an image")
    with pytest.raises(ImageDecodeError, match="not a supported image format"):
        read_image(_encode(photos["coffee"], "GIF"))
    with pytest.raises(ImageDecodeError, match="empty"):
        read_image(b"")
    with pytest.raises(ImageDecodeError):
        read_image(png[: len(png) // 2])
    corrupt = bytearray(jpg)
    corrupt[600:4000] = b"\x00" * 3400
    with pytest.raises(ImageDecodeError):
        read_image(bytes(corrupt))
    with pytest.raises(TypeError, match="path, bytes or a binary file"):
        read_image(12345)
    with pytest.raises(ValueError, match="color"):
        read_image(png, color="hsv")
    assert issubclass(ImageDecodeError, ValueError)


def _png_bomb(w: int, h: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_allocation(photos):
    import tracemalloc

    bomb = _png_bomb(100_000, 100_000)
    tracemalloc.start()
    with pytest.raises(ImageDecodeError, match="max_pixels"):
        read_image(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10_000_000
    big = _encode(photos["coffee"], "JPEG")
    with pytest.raises(ImageDecodeError, match="400x600"):
        read_image(big, max_pixels=1000)
    assert read_image(big, max_pixels=None).shape == (400, 600, 3)
