"""The file reader under ``read_image``: whole files, files larger than their stat said, limits."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pyimgcls.io import images
from pyimgcls.io.images import ImageDecodeError, read_image


@pytest.mark.parametrize("size", [0, 1, 401, 65536, images._HEAD - 1, images._HEAD, images._HEAD + 1, 3 * images._HEAD + 7])
def test_read_path_returns_the_whole_file(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert images._read_path(str(p), "f.bin", None, None) == data
    assert images._read_path(str(p), "f.bin", size + 10, None) == data


@pytest.mark.parametrize("expected", [0, 5, 100, 1000])
def test_read_fd_goes_past_a_stale_size_and_stops_at_the_limit(expected):
    # a pipe stands in for a file that is longer than fstat said (it grew after the stat)
    r, w = os.pipe()
    try:
        payload = bytes(range(256)) * 40  # 10,240 bytes
        os.write(w, payload)
        os.close(w)
        w = -1
        assert images._read_fd(r, None, expected) == payload
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    r, w = os.pipe()
    try:
        os.write(w, payload)
        os.close(w)
        w = -1
        assert images._read_fd(r, 3001, expected) == payload[:3001]
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_large_png_is_read_whole_and_its_header_checked_first(tmp_path):
    import cv2

    a = np.random.default_rng(0).integers(0, 256, (1200, 1100, 3), dtype=np.uint8)  # noise: > 1 MiB as PNG
    p = tmp_path / "noise.png"
    cv2.imwrite(str(p), a[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 0])
    assert p.stat().st_size > images._HEAD
    assert np.array_equal(read_image(str(p)), a)
    with pytest.raises(ImageDecodeError, match="noise.png"):
        read_image(str(p), max_pixels=1000)


def test_native_small_file_reader(tmp_path):
    from pyimgcls import _core

    read = _core.read_small_file
    p = tmp_path / "a.bin"
    p.write_bytes(b"x" * 100)
    assert read(os.fsencode(p), 100) == b"x" * 100
    assert read(os.fsencode(p), 99) is None  # larger than max_size: the caller reads it its own way
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read(os.fsencode(empty), 10) == b""
    assert read(os.fsencode(tmp_path), 10) is None  # a folder
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert read(os.fsencode(fifo), 10) is None  # never blocks on a FIFO
    odd = os.fsencode(str(tmp_path)) + b"/\xff\xfe.png"  # not UTF-8: bytes paths go through as they are
    with open(odd, "wb") as f:
        f.write(b"odd")
    assert read(odd, 10) == b"odd"
    with pytest.raises(FileNotFoundError) as e:
        read(os.fsencode(tmp_path / "missing.png"), 10)
    assert e.value.filename == os.fsencode(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="NUL"):
        read(b"a\x00b", 10)
    # read_image's messages are the same whichever reader ran
    with pytest.raises(ImageDecodeError, match="missing.png: cannot read file: No such file or directory"):
        read_image(str(tmp_path / "missing.png"))
    with pytest.raises(ImageDecodeError, match=r"pipe.png: a FIFO \(named pipe\), not an image file"):
        read_image(str(fifo))
    with pytest.raises(ImageDecodeError, match=r"a.bin: 100 bytes, more than max_bytes=50"):
        read_image(str(p), max_bytes=50)


def test_image_folder_extension_test_equals_splitext():
    import itertools

    from pyimgcls.io.datasets import _is_image
    from pyimgcls.io.sources import IMAGE_EXTENSIONS

    for n in range(1, 6):
        for t in itertools.product("a.pngPJ", repeat=n):
            name = "".join(t)
            assert _is_image(name) == (os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS), name
