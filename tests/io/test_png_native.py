"""The native PNG decoder (``_core.decode_png``) against its Python twin, OpenCV and Pillow; every
file it declines or that is malformed gets OpenCV's answer through ``read_image``."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers.reference import png_decode_ref
from pyimgcls import _core
from pyimgcls.io import images
from pyimgcls.io.images import ImageDecodeError, read_image

pytestmark = pytest.mark.skipif(not hasattr(_core, "decode_png"),
                                reason="pyimgcls was built without zlib: no native PNG decoder")

OUT = {"rgb": 0, "bgr": 1, "gray": 2, "unchanged": 3}
CTYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def _chunk(t: bytes, body: bytes, crc: int | None = None) -> bytes:
    c = zlib.crc32(t + body) if crc is None else crc
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", c & 0xFFFFFFFF)


def _filter_rows(px: np.ndarray, filters) -> bytes:
    """PNG filtering (spec section 9), one filter type per row, computed on the original bytes."""
    h = px.shape[0]
    bpp = px.shape[2]
    rows = px.reshape(h, -1).astype(np.int64)
    out = []
    for y in range(h):
        x = rows[y]
        b = rows[y - 1] if y > 0 else np.zeros_like(x)
        a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int64), b[:-bpp]])
        f = filters[y % len(filters)]
        if f == 0:
            pred = np.zeros_like(x)
        elif f == 1:
            pred = a
        elif f == 2:
            pred = b
        elif f == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
            pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        out.append(bytes([f]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def encode_png(px: np.ndarray, filters=(0,), *, level: int = 6, idat_parts: int = 1, before_idat=(), after_idat=(),
               depth: int = 8, interlace: int = 0, ctype: int | None = None) -> bytes:
    """A PNG written by hand: chosen filters per row, the stream split over several IDAT chunks,
    extra chunks before / after the image data."""
    if px.ndim == 2:
        px = px[:, :, None]
    h, w, ch = px.shape
    stream = zlib.compress(_filter_rows(px, filters), level)
    cut = [len(stream) * i // idat_parts for i in range(idat_parts + 1)]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, CTYPE[ch] if ctype is None else ctype, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + b"".join(before_idat)
            + b"".join(_chunk(b"IDAT", stream[cut[i]:cut[i + 1]]) for i in range(idat_parts))
            + b"".join(after_idat) + _chunk(b"IEND", b""))


def cv2_read(data: bytes, color: str) -> np.ndarray | None:
    """read_image's OpenCV path, as it was before the native decoder."""
    try:
        return images._decode_cv2(data, color)
    except (ValueError, cv2.error):
        return None


def _image(rng, h, w, ch, smooth):
    a = rng.integers(0, 256, (h, w, ch), dtype=np.uint8)
    if smooth:  # gradients compress with every filter type, noise with none
        a = (np.add.outer(np.arange(h), np.arange(w))[:, :, None] * 7 + np.arange(ch) * 50 + a // 16).astype(np.uint8)
    return a


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 33), w=st.integers(1, 33), ch=st.sampled_from([1, 2, 3, 4]),
       filters=st.lists(st.integers(0, 4), min_size=1, max_size=6), smooth=st.booleans(),
       parts=st.integers(1, 4), level=st.integers(0, 9), seed=st.integers(0, 2**32 - 1))
def test_native_equals_twin_opencv_and_pillow(h, w, ch, filters, smooth, parts, level, seed):
    from PIL import Image

    px = _image(np.random.default_rng(seed), h, w, ch, smooth)
    data = encode_png(px, filters, level=level, idat_parts=parts)
    for color in ("rgb", "bgr", "gray", "unchanged"):
        got = _core.decode_png(data, OUT[color])
        declined = (color == "gray" and ch >= 3) or (color == "unchanged" and ch == 2)
        if declined:
            assert got is None
            continue
        ref = png_decode_ref(data, color)
        assert got is not None and got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, cv2_read(data, color))  # OpenCV (libpng): exact
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # Pillow: exact too
    np.testing.assert_array_equal(_core.decode_png(data, 0), pil)


def test_read_image_uses_it_and_gives_opencvs_pixels(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    files = []
    for i, ch in enumerate([1, 2, 3, 4]):
        p = tmp_path / f"f{i}.png"
        p.write_bytes(encode_png(_image(rng, 20 + i, 17, ch, True), (0, 1, 2, 3, 4)))
        files.append(str(p))
    calls = []
    native = images._NATIVE_PNG
    monkeypatch.setattr(images, "_NATIVE_PNG", lambda d, o: calls.append(o) or native(d, o))
    got = [read_image(f) for f in files]
    assert len(calls) == 4
    monkeypatch.setattr(images, "_NATIVE_PNG", None)
    for g, f in zip(got, files):
        np.testing.assert_array_equal(g, read_image(f))


def _declined(data: bytes, out: int = 0) -> bool:
    return _core.decode_png(data, out) is None


def test_it_declines_what_it_does_not_decode():
    rng = np.random.default_rng(0)
    px = _image(rng, 9, 11, 3, True)
    good = encode_png(px, (4,))
    assert not _declined(good)
    assert _declined(encode_png(px, (4,), interlace=1))                    # Adam7
    assert _declined(good[:8] + _chunk(b"IHDR", good[16:29][:8] + bytes([16]) + good[16:29][9:]) + good[33:])  # 16-bit
    assert _declined(encode_png(px[:, :, :1], (0,), ctype=3))              # palette
    assert _declined(encode_png(px, (0,), before_idat=[_chunk(b"tRNS", b"\x00\x01\x00\x02\x00\x03")]))
    assert _declined(encode_png(px, (0,), before_idat=[_chunk(b"PLTE", bytes(range(9)))]))
    assert _declined(encode_png(px, (0,), before_idat=[_chunk(b"ZZZZ", b"abc")]))  # unknown critical chunk
    assert _declined(encode_png(px, (0,), before_idat=[_chunk(b"IHDR", good[16:29])]))
    assert not _declined(encode_png(px, (0,), before_idat=[_chunk(b"tEXt", b"k\x00v"), _chunk(b"gAMA", b"\x00\x00\xb1\x8f")],
                                    after_idat=[_chunk(b"zzZz", b"after")]))
    assert _declined(encode_png(px, (0,), after_idat=[_chunk(b"zzzz", b"after")]))  # reserved bit set: libpng refuses
    raw = _filter_rows(px, (0,))
    bad = bytearray(raw)
    bad[(1 + 11 * 3) * 4] = 5  # row 4's filter type: 5 does not exist
    assert _declined(good[:33] + _chunk(b"IDAT", zlib.compress(bytes(bad))) + _chunk(b"IEND", b""))
    assert not _declined(good[:33] + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    # the stream: too short, too long, data after its end, in non-adjacent IDATs, with a preset dictionary
    assert _declined(good[:33] + _chunk(b"IDAT", zlib.compress(raw[:-1])) + _chunk(b"IEND", b""))
    assert _declined(good[:33] + _chunk(b"IDAT", zlib.compress(raw + b"\x00")) + _chunk(b"IEND", b""))
    assert _declined(good[:33] + _chunk(b"IDAT", zlib.compress(raw) + b"junk") + _chunk(b"IEND", b""))
    assert _declined(good[:33] + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IDAT", b"\x00") + _chunk(b"IEND", b""))
    s = zlib.compress(raw)
    assert _declined(good[:33] + _chunk(b"IDAT", s[:10]) + _chunk(b"tEXt", b"k\x00v") + _chunk(b"IDAT", s[10:]) + _chunk(b"IEND", b""))
    assert not _declined(good[:33] + _chunk(b"IDAT", s[:10]) + _chunk(b"IDAT", b"") + _chunk(b"IDAT", s[10:]) + _chunk(b"IEND", b""))
    co = zlib.compressobj(zdict=b"a dictionary")
    assert _declined(good[:33] + _chunk(b"IDAT", co.compress(raw) + co.flush()) + _chunk(b"IEND", b""))
    # CRCs of IHDR, IDAT and IEND; a zero-sized header; a bad signature
    assert _declined(good[:29] + b"\x00\x00\x00\x00" + good[33:])
    assert _declined(good[:33] + _chunk(b"IDAT", s, crc=1) + _chunk(b"IEND", b""))
    assert _declined(good[:33] + _chunk(b"IDAT", s) + _chunk(b"IEND", b"", crc=7))
    zero = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    assert _declined(good[:8] + _chunk(b"IHDR", zero) + good[33:])
    assert _declined(b"\x89PNG\r\n\x1a\x0b" + good[8:])
    # a header that announces more than can be allocated: declined, not a crash
    huge = struct.pack(">IIBBBBB", 0x7FFFFFFF, 0x7FFFFFFF, 8, 6, 0, 0, 0)
    assert _declined(good[:8] + _chunk(b"IHDR", huge) + good[33:])


def test_every_truncation_is_declined():
    data = encode_png(_image(np.random.default_rng(1), 12, 10, 4, False), (1, 2, 3, 4), idat_parts=3)
    assert not _declined(data)
    for n in range(len(data)):
        assert _declined(data[:n]), n


def test_mutants_give_opencvs_answer(monkeypatch):
    """Byte flips of small PNGs: read_image with the native decoder gives exactly what OpenCV gives
    (the same pixels, or an ImageDecodeError where OpenCV refuses the file)."""
    rng = np.random.default_rng(7)
    seeds = [encode_png(_image(rng, 8, 9, ch, True), (0, 1, 2, 3, 4), idat_parts=2,
                        before_idat=[_chunk(b"tEXt", b"key\x00value")], after_idat=[_chunk(b"tIME", b"\x07\xe6\x01\x02\x03\x04\x05")])
             for ch in (1, 2, 3, 4)]
    native = images._NATIVE_PNG
    seen_native = 0
    for k in range(600):
        d = bytearray(seeds[k % 4])
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(8, len(d)))] = int(rng.integers(0, 256))
        d = bytes(d)
        monkeypatch.setattr(images, "_NATIVE_PNG", native)
        try:
            ours = read_image(d)
        except ImageDecodeError:
            ours = None
        seen_native += native(d, 0) is not None
        monkeypatch.setattr(images, "_NATIVE_PNG", None)
        try:
            ref = read_image(d)
        except ImageDecodeError:
            ref = None
        assert (ours is None) == (ref is None), k
        if ours is not None:
            np.testing.assert_array_equal(ours, ref)
    assert seen_native > 5  # flips in ancillary chunks' text and CRCs still decode natively


def test_large_png_and_threads():
    rng = np.random.default_rng(5)
    px = _image(rng, 700, 900, 3, True)
    ok, enc = cv2.imencode(".png", px[:, :, ::-1])
    data = enc.tobytes()
    ref = cv2_read(data, "rgb")
    np.testing.assert_array_equal(_core.decode_png(data, 0), ref)
    out = [None] * 8

    def work(i):
        out[i] = [_core.decode_png(data, 0) for _ in range(3)]

    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in out:
        for a in r:
            np.testing.assert_array_equal(a, ref)


def test_bad_arguments():
    with pytest.raises(ValueError, match="out must be"):
        _core.decode_png(b"x", 4)
    with pytest.raises(TypeError):
        _core.decode_png("not bytes", 0)


def test_a_chunk_longer_than_the_file_is_refused_before_opencv_sees_it(monkeypatch):
    """A corrupted chunk length in a 200-byte file: OpenCV took seconds and gigabytes to refuse it;
    read_image refuses it from the chunk table, naming the chunk (OpenCV refuses it too)."""
    good = encode_png(_image(np.random.default_rng(2), 8, 9, 3, True), (0,), before_idat=[_chunk(b"tEXt", b"key\x00value")])
    bad = good[:33] + b"\xb7" + good[34:]  # the tEXt length: 0xB7000009
    assert cv2_read(bad, "rgb") is None

    def no_opencv(*a, **k):
        raise AssertionError("OpenCV was called")

    monkeypatch.setattr(images, "_decode_cv2", no_opencv)
    with pytest.raises(ImageDecodeError, match=r"chunk b'tEXt' at byte 33 claims 3,070,230,537 bytes"):
        read_image(bad)
    with pytest.raises(ImageDecodeError, match=r"chunk b'IDAT' .* claims"):
        read_image(good[:70])


def test_load_pngs_equals_decode_png_per_file(tmp_path):
    rng = np.random.default_rng(9)
    paths, want = [], []
    for i in range(40):
        data = encode_png(_image(rng, 5 + i % 7, 3 + i % 5, 1 + i % 4, bool(i % 2)), (i % 5, 4, 1))
        p = tmp_path / f"{i}.png"
        p.write_bytes(data)
        paths.append(os.fsencode(p))
        want.append(_core.decode_png(data, 0))
    paths.append(os.fsencode(tmp_path / "missing.png"))
    want.append(None)
    for threads in (1, 2, 5):
        got = _core.load_pngs(paths, 1 << 20, 0, 0, threads)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert (g is None) == (w is None)
            if w is not None:
                np.testing.assert_array_equal(g, w)
    assert _core.load_pngs(paths[:3], 1 << 20, 10, 0, 1) == [None] * 3  # over max_pixels: left to read_image
    assert _core.load_pngs(paths[:3], 10, 0, 0, 1) == [None] * 3        # over max_size
    with pytest.raises(TypeError, match="fsencode"):
        _core.load_pngs(["a.png"], 1 << 20, 0, 0, 1)
    with pytest.raises(ValueError, match="out must be"):
        _core.load_pngs(paths, 1 << 20, 0, 9, 1)


def _png_rgb(w, h, *, before=b"", stream=None, ct=2):
    ch = {0: 1, 2: 3}[ct]
    raw = b"".join(b"\0" + bytes((x * 7 + y * 13) & 255 for x in range(w * ch)) for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, ct, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + before + _chunk(b"IDAT", stream or zlib.compress(raw))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("case", ["wide", "window", "acTL0", "acTL2", "fcTL", "bKGD3", "big_ancillary"])
def test_what_opencv_refuses_or_reads_differently_is_declined(case):
    """Files where OpenCV (libpng's user limits, its row-by-row inflate, its own APNG pre-scan of the
    chunks before the image data) refuses the file or returns other pixels: declined, so read_image
    gives OpenCV's answer. Found by a review of the decoder."""
    if case == "wide":  # libpng: at most 1,000,000 pixels a side
        d = _png_rgb(1000001, 1, ct=0, stream=zlib.compress(b"\0" + bytes(1000001), 9))
    elif case == "window":  # a 256-byte window declared, 600-byte back-references used
        raw = b"".join(b"\0" + bytes((x * 7 + c * 50) & 255 for x in range(200) for c in range(3)) for _ in range(4))
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        d = _png_rgb(200, 4, stream=bytes([0x08, 0x1D]) + co.compress(raw) + co.flush() + struct.pack(">I", zlib.adler32(raw)))
    elif case == "acTL0":
        d = _png_rgb(4, 3, before=_chunk(b"acTL", struct.pack(">II", 0, 0)))
    elif case == "acTL2":  # OpenCV returns an all-zero image for this one
        d = _png_rgb(4, 3, before=_chunk(b"acTL", struct.pack(">II", 2, 0)))
    elif case == "fcTL":
        d = _png_rgb(4, 3, before=_chunk(b"fcTL", bytes(25)))
    elif case == "bKGD3":
        d = _png_rgb(4, 3, before=_chunk(b"bKGD", b"\0\1\0"))
    else:  # OpenCV's limit on a chunk before the image data
        d = _png_rgb(4, 3, before=_chunk(b"abCd", bytes(7999989)))
    assert _core.decode_png(d, 0) is None
    ref = cv2_read(d, "rgb")
    if ref is None:
        with pytest.raises(ImageDecodeError):
            read_image(d, max_pixels=None)
    else:
        np.testing.assert_array_equal(read_image(d, max_pixels=None), ref)


def test_a_small_window_that_covers_the_image_is_fine():
    raw = b"".join(b"\0" + bytes((x * 7) & 255 for x in range(60)) for _ in range(4))  # 244 bytes
    co = zlib.compressobj(9, zlib.DEFLATED, -9)  # a 512-byte window, declared as such (CINFO 1)
    s = bytes([0x18, 0x19]) + co.compress(raw) + co.flush() + struct.pack(">I", zlib.adler32(raw))
    d = _png_rgb(20, 4, stream=s)
    np.testing.assert_array_equal(_core.decode_png(d, 0), cv2_read(d, "rgb"))
