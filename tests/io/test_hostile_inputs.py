"""Hostile files and folders: never a crash, a hang, an exhausted machine or a run ended by one file.
Every failure is an ``ImageDecodeError`` (or a clear ``ValueError``) naming the input."""

import io
import os
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import pyimgcls
from pyimgcls import ImageDecodeError, read_image
from pyimgcls.io.sources import iter_items
from pyimgcls.limits import MAX_JPEG_SCANS


def _jpeg(img, **kw):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", **kw)
    return buf.getvalue()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_jpg_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(ImageDecodeError, read_image, str(fifo))))
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "read_image blocked on a FIFO"
    assert "FIFO" in str(done[0].value) and "pipe.jpg" in str(done[0].value)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_symlink_named_jpg_is_refused(tmp_path):
    link = tmp_path / "zero.jpg"
    os.symlink("/dev/zero", link)
    with pytest.raises(ImageDecodeError, match="zero.jpg: a character device"):
        read_image(str(link))


def test_max_bytes_is_checked_before_reading(tmp_path, photos):
    p = tmp_path / "big.jpg"
    p.write_bytes(_jpeg(photos["coffee"]))
    with pytest.raises(ImageDecodeError, match=r"big.jpg: [\d,]+ bytes, more than max_bytes=1,000"):
        read_image(str(p), max_bytes=1000)
    with pytest.raises(ImageDecodeError, match="more than max_bytes"):
        read_image(io.BytesIO(p.read_bytes()), max_bytes=1000)
    assert read_image(str(p), max_bytes=None).shape == photos["coffee"].shape


def test_a_huge_files_header_is_checked_before_the_rest_is_read(tmp_path, monkeypatch):
    """A 4 MB file whose PNG header declares 100,000 x 100,000 pixels: refused after the first MiB."""
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    p = tmp_path / "bomb.png"
    p.write_bytes(head + b"\0" * (4 << 20))
    reads = []
    real_fdopen = os.fdopen

    class Counting:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            data = self.f.read(n)
            reads.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda *a, **kw: Counting(real_fdopen(*a, **kw)))
    with pytest.raises(ImageDecodeError, match="100000x100000 .* more than max_pixels"):
        read_image(str(p))
    assert sum(reads) <= 1 << 20


def _progressive_with_scans(img, extra):
    """A real progressive JPEG with its last scan repeated ``extra`` times (each a full pass)."""
    data = _jpeg(img, progressive=True, quality=90)
    sos = data.rfind(b"\xff\xda")
    eoi = data.rfind(b"\xff\xd9")
    return data[:eoi] + data[sos:eoi] * extra + data[eoi:]


def test_progressive_jpeg_with_too_many_scans_is_refused_quickly(photos):
    bomb = _progressive_with_scans(photos["coffee"], MAX_JPEG_SCANS + 50)
    t0 = time.perf_counter()
    with pytest.raises(ImageDecodeError, match=f"more than the limit of {MAX_JPEG_SCANS}"):
        read_image(bomb)
    assert time.perf_counter() - t0 < 1.0
    ok = _jpeg(photos["coffee"], progressive=True, quality=90)  # a normal progressive JPEG: about 10 scans
    assert 2 < ok.count(b"\xff\xda") <= MAX_JPEG_SCANS
    assert read_image(ok).shape == photos["coffee"].shape


def _tiff_with_two_widths(w_first, w_second, h):
    """A minimal uncompressed 8-bit gray TIFF whose IFD lists ImageWidth twice."""
    pixels = bytes(w_first * h)
    entries = [(256, 4, 1, w_first), (256, 4, 1, w_second), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, len(pixels))]
    ifd_off = 8
    data_off = ifd_off + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_off) + struct.pack("<H", len(entries)))
    for tag, typ, count, val in entries:
        if tag == 273:
            val = data_off
        out += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
    out += struct.pack("<I", 0) + pixels
    return bytes(out)


def test_tiff_listing_a_dimension_twice_is_refused():
    data = _tiff_with_two_widths(20000, 4, 20000)  # the checker would read 4 wide, libtiff 20,000
    with pytest.raises(ImageDecodeError, match="TIFF lists tag ImageWidth twice"):
        read_image(data)


@pytest.mark.parametrize("case", ["wide_bmp", "float_tiff", "int8_tiff"])
def test_decoder_failures_are_image_decode_errors(case):
    import cv2

    if case == "wide_bmp":
        buf = io.BytesIO()
        Image.new("RGB", (1_100_000, 1)).save(buf, "BMP")
        data, want = buf.getvalue(), "cannot decode bmp"
    elif case == "float_tiff":
        data, want = cv2.imencode(".tiff", np.random.default_rng(0).random((20, 30)).astype(np.float32))[1].tobytes(), \
            "floating-point TIFF samples"
    else:
        data, want = cv2.imencode(".tiff", np.zeros((8, 8), np.int8))[1].tobytes(), "cannot decode tiff"
    for color in ("rgb", "unchanged"):
        try:
            img = read_image(data, color=color)
        except ImageDecodeError as e:
            assert want in str(e) and str(e).startswith("<")
        else:
            assert img.size > 0  # decodable in this mode is fine too


def test_symlink_loop_visits_each_folder_once(tmp_path, photos):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(photos["coffee"]).save(d / "a.jpg")
    Image.fromarray(photos["coffee"]).save(d / "sub" / "b.jpg")
    os.symlink(d, d / "sub" / "loop")
    os.symlink(d / "sub", d / "again")
    items = [it.source for it in iter_items(str(d))]
    assert sorted(os.path.basename(p) for p in items) == ["a.jpg", "b.jpg"], items


def test_deep_tree_walk_has_no_recursion_limit(tmp_path, photos):
    levels = []
    p = tmp_path / "deep"
    try:
        for _ in range(sys.getrecursionlimit() + 50):  # os.makedirs itself recurses: one level at a time
            p.mkdir()
            levels.append(p)
            p = p / "d"
        Image.fromarray(photos["coffee"][:8, :8]).save(levels[-1] / "deep.png")
        assert [os.path.basename(it.source) for it in iter_items(str(tmp_path))] == ["deep.png"]
    finally:  # removed here, deepest first: shutil.rmtree (pytest's cleanup too) recurses
        if levels and (levels[-1] / "deep.png").exists():
            (levels[-1] / "deep.png").unlink()
        for d in reversed(levels):
            d.rmdir()


def test_item_timeout_makes_a_slow_item_an_error_and_the_run_goes_on(photos, monkeypatch):
    import pyimgcls.runtime.pipeline as pipeline

    real = pipeline.load_item
    slow = _jpeg(photos["rocket"])

    def load_item(item, **kw):
        if item.payload is slow:
            time.sleep(3)
        return real(item, **kw)

    monkeypatch.setattr(pipeline, "load_item", load_item)
    clf = pyimgcls.Classifier(threads=2)
    good = _jpeg(photos["coffee"])
    t0 = time.perf_counter()
    r = clf.predict([good, slow, good], item_timeout=0.5, batch_size=3)
    assert time.perf_counter() - t0 < 2.5
    assert r[0].label_name == r[2].label_name == "espresso"
    assert r[1].error and "TimeoutError" in r[1].error and "item_timeout=0.5" in r[1].error
    with pytest.raises(ValueError, match="item_timeout must be"):
        clf.predict([good], item_timeout=float("nan"))


def test_extreme_aspect_ratio_is_a_clear_error_or_works():
    a = np.zeros((1, 9_000_000, 3), np.uint8)
    with pytest.raises(ValueError, match=r"images\[0\]: a 1x9000000 image would be resized"):
        pyimgcls.preprocess([a], pyimgcls.PreprocessConfig(size=(224, 224), resize="center_crop"))
    x, _ = pyimgcls.preprocess([a], pyimgcls.PreprocessConfig(size=(64, 64), resize="letterbox"))
    assert x.shape == (1, 3, 64, 64)


def test_non_canonical_dtypes_and_strides_are_read_exactly():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 65535, (40, 50, 3)).astype(np.uint16)
    cfg = pyimgcls.PreprocessConfig(size=(16, 16), resize="stretch")
    want, _ = pyimgcls.preprocess([base], cfg)
    swapped = base.astype(">u2")
    got, _ = pyimgcls.preprocess([swapped], cfg)
    np.testing.assert_array_equal(got, want)
    u8 = (base >> 8).astype(np.uint8)
    want8, _ = pyimgcls.preprocess([u8], cfg)
    got8, _ = pyimgcls.preprocess([u8.view(np.dtype("u1", metadata={"x": 1}))], cfg)
    np.testing.assert_array_equal(got8, want8)
    row = u8[:1]  # a zero row stride (broadcast view): never read past the one real row
    bc = np.broadcast_to(row, (40, 50, 3))
    assert bc.strides[0] == 0
    np.testing.assert_array_equal(pyimgcls.preprocess([bc], cfg)[0], pyimgcls.preprocess([np.ascontiguousarray(bc)], cfg)[0])
    with pytest.raises(TypeError, match="must be uint8, uint16 or float in \[0, 1\], got int8"):
        pyimgcls.preprocess([u8.view(np.int8)], cfg)


def test_model_input_size_limit():
    with pytest.raises(ValueError, match=r"size \(30000, 30000\) is beyond pyimgcls' model-input limit"):
        pyimgcls.PreprocessConfig(size=(30000, 30000))


def test_a_file_that_is_not_onnx_is_a_value_error_naming_it(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"this is not a model")
    with pytest.raises(ValueError, match="model.onnx: ONNX Runtime cannot load this model"):
        pyimgcls.Classifier(str(p))


def test_huge_integer_arguments_get_clear_errors():
    from pyimgcls import metrics, ops

    b = np.array([[0, 0, 1, 1]], np.float32)
    with pytest.raises(ValueError, match=r"max_output must be in \[0, 2\^62\]"):
        ops.nms(b, np.ones(1, np.float32), 0.5, max_output=2**70)
    with pytest.raises(ValueError, match="max_det must be"):
        ops.decode_yolo(np.zeros((1, 6, 4), np.float32), layout="v8", max_det=2**70)
    cm = metrics.ConfusionMatrix(3)
    with pytest.raises(ValueError, match="whole-number class ids that fit int64, got 1e"):
        cm.update(np.array([1e20]), np.array([0.0]))


def test_cli_errors_are_one_line(tmp_path, capsys):
    from pyimgcls.cli.main import main

    p = tmp_path / "model.onnx"
    p.write_bytes(b"junk")
    assert main(["classify", str(tmp_path), "--model", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyimgcls: error: ") and "model.onnx" in err
    ro = tmp_path / "ro"
    ro.mkdir()
    Image.new("RGB", (8, 8)).save(ro / "a.png")
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("root can write a read-only folder")
        code = main(["score", str(ro), "--out", str(ro / "out.csv"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "Permission denied" in err
    finally:
        os.chmod(ro, 0o755)


def test_bench_duration_must_be_finite(capsys):
    from pyimgcls.cli.main import main
    from pyimgcls.jobs.bench import run_bench

    for bad in ("nan", "inf", "-1", "0"):
        with pytest.raises(SystemExit) as e:
            main(["bench", "--duration", bad])
        assert e.value.code == 2
        assert "finite number of seconds" in capsys.readouterr().err
    with pytest.raises(ValueError, match="duration must be a finite number"):
        run_bench(duration=float("inf"))


def test_cli_reports_disk_full(tmp_path, capsys, monkeypatch):
    """ENOSPC while the output is made durable: one error line naming the reason, exit status 1."""
    import errno

    from pyimgcls.cli.main import main

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.png")
    out = tmp_path / "out.jsonl"

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))

    monkeypatch.setattr(os, "fsync", full)
    code = main(["score", str(src), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err == f"pyimgcls: error: {out}: No space left on device\n", err


def test_fuzz_smoke_in_subprocess(tmp_path, photos):
    """A quick mutation run (the CI one is longer: tools/fuzz_decode.py): every mutant of real files
    in five formats decodes or fails with ImageDecodeError, within a time and memory limit."""
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "fuzz_decode.py"),
                        "--mutants", "60", "--seed", "1", "--timeout", "20"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode == 2 and "tools" in r.stderr and "No such file" in r.stderr:
        pytest.skip("tools/ not beside the tests")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
