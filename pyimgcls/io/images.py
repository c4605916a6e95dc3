"""Image decoding: any common format into a NumPy array, with EXIF orientation applied.

JPEG goes through libjpeg-turbo (``simplejpeg``), optionally at a reduced DCT scale; a clean 8-bit
non-interlaced gray / RGB(A) PNG through pyimgcls' native decoder (``_core.decode_png``: zlib, no
libpng set-up, so a 28x28 PNG decodes in a few microseconds; it declines every other PNG, and every
malformed one, which then go to OpenCV with the rest); other PNGs, WebP, TIFF and BMP (and 16-bit
images) go through OpenCV. Image sizes are read from the header and
checked against ``max_pixels`` before any pixel buffer is allocated.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
from typing import BinaryIO, NamedTuple, Union

import cv2
import numpy as np
import simplejpeg

from .. import _core
from ..limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, HEADER_FIRST_BYTES, MAX_JPEG_SCANS

__all__ = ["DecodeInfo", "ImageDecodeError", "read_image", "image_size", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS"]

#: Same limit as Pillow's DecompressionBombError threshold (2 * 89,478,485 pixels).

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]

_COLORS = ("rgb", "bgr", "gray", "unchanged")
# the native PNG decoder (None where the module was built without zlib) and its output codes
_NATIVE_PNG = getattr(_core, "decode_png", None)
_PNG_OUT = {"rgb": 0, "bgr": 1, "gray": 2, "unchanged": 3}
# Only the DCT scales that libjpeg-turbo accelerates with SIMD (others were slower than a full decode).
_JPEG_FACTORS = (8, 4, 2)


class DecodeInfo(NamedTuple):
    """How a decoded image relates to the file (``read_image(..., return_info=True)``).

    Attributes:
        scale: decoded pixels per full-resolution pixel on both axes: 1.0, or 1/2, 1/4, 1/8 for
            a DCT-scaled JPEG decode (``min_size``).
        full_size: ``(h, w)`` of the full-resolution image in the frame ``read_image`` returns
            (EXIF orientation applied when ``exif=True``).
        stored_size: ``(h, w)`` as stored in the file, before any orientation.
    """

    scale: float
    full_size: tuple[int, int]
    stored_size: tuple[int, int] | None = None


class ImageDecodeError(ValueError):
    """An image could not be decoded; the message names the source and the reason."""


def _describe(src: object) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    name = getattr(src, "name", None)
    return str(name) if isinstance(name, str) else f"<{type(src).__name__}>"


_HEAD = HEADER_FIRST_BYTES  # a large file's header is checked on its first MiB before the rest is read


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _read_fd(fd: int, limit: int | None, expected: int) -> bytes:
    """Up to ``limit`` bytes (``None``: all) from ``fd``, asking for the ``expected`` size (+1, to
    see the end in the same call) first: no buffer larger than the file is allocated."""
    chunks, total = [], 0
    want = max(1, expected + 1)
    while limit is None or total < limit:
        n = want if limit is None else min(want, limit - total)
        b = os.read(fd, n)
        if not b:
            break
        chunks.append(b)
        total += len(b)
        want = 1 << 16  # the file is longer than its size said (it grew): go on in 64 KiB steps
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_READ_SMALL = getattr(_core, "read_small_file", None)


def _read_path(path: str, name: str, max_bytes: int | None, max_pixels: int | None) -> bytes:
    """A regular file's bytes, its size checked before reading (a FIFO or a device named *.jpg
    never blocks or streams forever) and, for a large file, its header before the rest."""
    if _READ_SMALL is not None:
        # a regular file of up to 1 MiB (and max_bytes): one native call; anything else below
        limit = _HEAD if max_bytes is None else min(_HEAD, max_bytes)
        try:
            data = _READ_SMALL(os.fsencode(path), limit)
        except OSError as e:
            raise ImageDecodeError(f"{name}: cannot read file: {e.strerror or e}") from e
        except ValueError:  # a NUL byte in the path: the call below raises the error Python gives
            data = None
        if data is not None:
            return data
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise ImageDecodeError(f"{name}: cannot read file: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageDecodeError(f"{name}: {_kind(st.st_mode)}, not an image file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise ImageDecodeError(f"{name}: {st.st_size:,} bytes, more than max_bytes={max_bytes:,}")
        limit = max_bytes + 1 if max_bytes is not None else None  # one byte more shows a file that grew
        if max_pixels is not None and st.st_size > _HEAD:
            head = _read_fd(fd, _HEAD, _HEAD)
            if len(head) == _HEAD:
                _check_header(head, name, max_pixels, partial=True)
            rest = _read_fd(fd, None if limit is None else limit - len(head), st.st_size - len(head))
            data = head + rest
        else:
            data = _read_fd(fd, limit, st.st_size)
    except OSError as e:
        raise ImageDecodeError(f"{name}: cannot read file: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:  # grew while being read
        raise ImageDecodeError(f"{name}: more than max_bytes={max_bytes:,} bytes")
    return data


def _read_bytes(src: ImageSource, max_bytes: int | None = None, max_pixels: int | None = None) -> bytes:
    name = _describe(src)
    if isinstance(src, (str, os.PathLike)):
        return _read_path(os.fspath(src), name, max_bytes, max_pixels)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        read = getattr(src, "read", None)
        if not callable(read):
            raise TypeError(f"src must be a path, bytes or a binary file object, got {type(src).__name__}")
        data = read() if max_bytes is None else read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"file object must be opened in binary mode, read() returned {type(data).__name__}")
        data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageDecodeError(f"{name}: more than max_bytes={max_bytes:,} bytes")
    return data


# ------------------------------------------------------------------ format sniffing and headers
def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    return None


def _png_size(d: bytes) -> tuple[int, int]:
    if len(d) < 24 or d[12:16] != b"IHDR":
        raise ValueError("truncated PNG header")
    w, h = struct.unpack(">II", d[16:24])
    return h, w


def _bmp_size(d: bytes) -> tuple[int, int]:
    if len(d) < 26:
        raise ValueError("truncated BMP header")
    hdr = struct.unpack("<I", d[14:18])[0]
    if hdr == 12:
        w, h = struct.unpack("<HH", d[18:22])
        return h, w
    w, h = struct.unpack("<ii", d[18:26])
    return abs(h), abs(w)


def _webp_size(d: bytes) -> tuple[int, int]:
    chunk = d[12:16]
    if chunk == b"VP8X" and len(d) >= 30:
        w = 1 + int.from_bytes(d[24:27], "little")
        h = 1 + int.from_bytes(d[27:30], "little")
        return h, w
    if chunk == b"VP8 " and len(d) >= 30:
        w, h = struct.unpack("<HH", d[26:30])
        return h & 0x3FFF, w & 0x3FFF
    if chunk == b"VP8L" and len(d) >= 25:
        b = int.from_bytes(d[21:25], "little")
        return ((b >> 14) & 0x3FFF) + 1, (b & 0x3FFF) + 1
    raise ValueError("truncated or unknown WebP header")


_TIFF_UNIQUE = {256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
                277: "SamplesPerPixel", 339: "SampleFormat"}


def _tiff_ifd0(d: bytes) -> dict[int, int]:
    """Reads the SHORT/LONG scalar tags of IFD0 of a TIFF structure."""
    if len(d) < 8:
        raise ValueError("truncated TIFF header")
    e = "<" if d[:2] == b"II" else ">"
    (off,) = struct.unpack(e + "I", d[4:8])
    if off + 2 > len(d):
        raise ValueError("truncated TIFF header")
    (n,) = struct.unpack(e + "H", d[off : off + 2])
    tags: dict[int, int] = {}
    seen: set[int] = set()
    for i in range(n):
        p = off + 2 + 12 * i
        if p + 12 > len(d):
            break
        tag, typ, count = struct.unpack(e + "HHI", d[p : p + 8])
        if tag in seen and tag in _TIFF_UNIQUE:
            # decoders disagree on which copy counts (libtiff takes the first): refuse the file
            raise ValueError(f"TIFF lists tag {_TIFF_UNIQUE[tag]} twice")
        seen.add(tag)
        if count != 1:
            continue
        if typ == 3:
            tags[tag] = struct.unpack(e + "H", d[p + 8 : p + 10])[0]
        elif typ == 4:
            tags[tag] = struct.unpack(e + "I", d[p + 8 : p + 12])[0]
    return tags


def _tiff_size(d: bytes) -> tuple[int, int]:
    tags = _tiff_ifd0(d)
    if 256 not in tags or 257 not in tags:
        raise ValueError("TIFF header without image size")
    return tags[257], tags[256]


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_frame(d: bytes) -> tuple[int, int, int]:
    """``(height, width, SOF marker)`` from the JPEG frame header, read as a decoder reads it:
    the first SOFn marker before the first scan."""
    p = 2
    n = len(d)
    while p + 4 <= n:
        if d[p] != 0xFF:
            raise ValueError(f"corrupt JPEG header (no marker at byte {p})")
        m = d[p + 1]
        if m == 0xFF:  # fill byte
            p += 1
            continue
        if m == 0xD8 or 0xD0 <= m <= 0xD7 or m == 0x01:
            p += 2
            continue
        if m in (0xD9, 0xDA):
            raise ValueError("JPEG without a frame header before its first scan")
        (length,) = struct.unpack(">H", d[p + 2:p + 4])
        if length < 2:
            raise ValueError(f"corrupt JPEG header (segment length {length} at byte {p})")
        if m in _SOF:
            if p + 9 > n:
                break
            h, w = struct.unpack(">HH", d[p + 5:p + 9])
            return h, w, m
        p += 2 + length
    raise ValueError("truncated JPEG header (the frame header with the image size is missing)")


def image_size(data: bytes, *, oriented: bool = False) -> tuple[str, int, int]:
    """Returns ``(format, height, width)`` read from the header alone.

    Args:
        oriented: the size after the EXIF orientation is applied (as ``read_image`` returns the
            image), instead of the size as stored.

    Raises:
        ValueError: unknown format or truncated header.
    """
    fmt = _sniff(data)
    if fmt is None:
        raise ValueError("not a supported image format (JPEG, PNG, WebP, TIFF, BMP)")
    if fmt == "jpeg":
        h, w, _ = _jpeg_frame(data)
    else:
        h, w = {"png": _png_size, "bmp": _bmp_size, "webp": _webp_size, "tiff": _tiff_size}[fmt](data)
    if oriented and _exif_orientation(data, fmt) in (5, 6, 7, 8):
        h, w = w, h
    return fmt, int(h), int(w)


# ------------------------------------------------------------------ EXIF orientation
def _exif_orientation(data: bytes, fmt: str) -> int:
    try:
        block = _exif_block(data, fmt)
        if block is None:
            return 1
        if block[:6] == b"Exif\x00\x00":
            block = block[6:]
        o = _tiff_ifd0(block).get(0x0112, 1)
        return o if 1 <= o <= 8 else 1
    except (ValueError, struct.error, IndexError):
        return 1  # a broken EXIF block is ignored, as Pillow and OpenCV do


def _exif_block(d: bytes, fmt: str) -> bytes | None:
    if fmt == "tiff":
        return d
    if fmt == "jpeg":
        p = 2
        while p + 4 <= len(d):
            if d[p] != 0xFF:
                return None
            marker = d[p + 1]
            if marker == 0xFF:
                p += 1
                continue
            if marker in (0xD9, 0xDA):  # EOI, SOS: no metadata after this
                return None
            (length,) = struct.unpack(">H", d[p + 2 : p + 4])
            if marker == 0xE1 and d[p + 4 : p + 10] == b"Exif\x00\x00":
                return d[p + 4 : p + 2 + length]
            p += 2 + length
        return None
    if fmt == "png":
        p = 8
        while p + 8 <= len(d):
            (length,) = struct.unpack(">I", d[p : p + 4])
            typ = d[p + 4 : p + 8]
            if typ == b"eXIf":
                return d[p + 8 : p + 8 + length]
            if typ in (b"IDAT", b"IEND"):
                return None
            p += 12 + length
        return None
    if fmt == "webp":
        p = 12
        while p + 8 <= len(d):
            typ = d[p : p + 4]
            (length,) = struct.unpack("<I", d[p + 4 : p + 8])
            if typ == b"EXIF":
                return d[p + 8 : p + 8 + length]
            p += 8 + length + (length & 1)
        return None
    return None


_INVERSE = {6: 8, 8: 6}  # the other orientations are their own inverse


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Undoes EXIF orientation (same result as ``PIL.ImageOps.exif_transpose``)."""
    if orientation == 1:
        return a
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, -1)[::-1],
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops[orientation](a))


# ------------------------------------------------------------------ decoding
def _jpeg_scale(h: int, w: int, min_size: tuple[int, int] | None) -> int:
    if min_size is None:
        return 1
    mh, mw = min_size
    for f in _JPEG_FACTORS:
        if math.ceil(h / f) >= mh and math.ceil(w / f) >= mw:
            return f
    return 1


def _decode_jpeg(data: bytes, color: str, min_size: tuple[int, int] | None, orientation: int,
                 h: int, w: int, colorspace: str) -> tuple[np.ndarray | None, int]:
    """libjpeg-turbo decode -> ``(pixels, f)``, decoded at 1/f scale; ``(None, 1)`` for colour
    spaces it cannot convert (OpenCV decodes those)."""
    if colorspace in ("CMYK", "YCCK"):
        return None, 1
    if min_size is not None and orientation >= 5:
        min_size = (min_size[1], min_size[0])  # the stored image is transposed
    f = _jpeg_scale(h, w, min_size)
    kw = {}
    if f > 1:
        kw = {"min_height": math.ceil(h / f), "min_width": math.ceil(w / f)}
    if color == "unchanged":
        cs = "GRAY" if colorspace == "Gray" else "RGB"
    else:
        cs = {"rgb": "RGB", "bgr": "BGR", "gray": "GRAY"}[color]
    a = simplejpeg.decode_jpeg(data, colorspace=cs, **kw)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return a, f


def _decode_cv2(data: bytes, color: str) -> np.ndarray:
    buf = np.frombuffer(data, np.uint8)
    if color == "gray":
        a = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    elif color == "unchanged":
        a = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    else:
        a = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if a is None:
        raise ValueError("corrupt or truncated image data")
    if a.ndim == 3 and color != "bgr":
        if a.shape[2] == 3:
            a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
        elif a.shape[2] == 4:
            a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA)
    return a


def _tiff_straight_alpha(data: bytes) -> bool:
    """An RGBA TIFF whose alpha is unassociated (ExtraSamples = 2): OpenCV's reader premultiplies
    its colours (libtiff's RGBA interface: every 8-bit file and the 16-bit colour path), so a
    pixel stored as (255, 0, 0, 128) would come back (128, 0, 0), unlike the same image as PNG."""
    try:
        tags = _tiff_ifd0(data)
    except (ValueError, struct.error):
        return False
    return tags.get(338) == 2 and tags.get(277, 0) >= 4


def _decode_tiff_straight_alpha(data: bytes, color: str, orientation: int) -> np.ndarray:
    """The stored samples of an unassociated-alpha RGBA TIFF, oriented as OpenCV orients TIFFs.
    16-bit: OpenCV's IMREAD_UNCHANGED gives them. 8-bit: only Pillow does (OpenCV premultiplies
    there too), checked against OpenCV's premultiplied pixels; without Pillow the file is refused
    rather than decoded to other colours. Colour
    output from 16 bits rounds v / 257 as OpenCV's own 16-bit colour path does; gray is
    cv2.cvtColor of that colour image."""
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError("corrupt or truncated image data")
    if raw.ndim != 3 or raw.shape[2] != 4:
        raise ValueError(f"an RGBA TIFF decoded to shape {raw.shape}")
    if raw.dtype == np.uint16:
        rgba = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA)
    else:
        try:
            from PIL import Image
        except ImportError:
            raise ValueError("an RGBA TIFF with unassociated alpha: OpenCV's reader premultiplies its colours "
                             "by the alpha; install Pillow to read its stored colours") from None
        with Image.open(io.BytesIO(data)) as im:
            if im.mode != "RGBA":
                raise ValueError(f"an RGBA TIFF that Pillow reads as {im.mode}")
            stored = np.asarray(im)
        # Pillow 13 orients TIFFs on open, older ones do not: the candidate whose premultiplied
        # colours are OpenCV's exactly (libtiff: (c * a + 127) // 255, alpha as stored) is the one
        # oriented as OpenCV orients; none is a disagreement of the decoders, refused
        want = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA)
        rgba = None
        for cand in (stored, _apply_orientation(stored, orientation)):
            if cand.shape != want.shape or not np.array_equal(cand[:, :, 3], want[:, :, 3]):
                continue
            c = cand[:, :, :3].astype(np.uint32)
            if np.array_equal((c * cand[:, :, 3:] + 127) // 255, want[:, :, :3]):
                rgba = cand
                break
        if rgba is None:
            raise ValueError("Pillow and OpenCV read different pixels from this RGBA TIFF")
    if color == "unchanged":
        return np.ascontiguousarray(rgba)
    rgb = rgba[:, :, :3]
    if rgb.dtype == np.uint16:  # v / 257 never ends in .5 (257 is odd): any rounding agrees
        rgb = ((rgb.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)
    if color == "gray":
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(rgb[:, :, ::-1] if color == "bgr" else rgb)


def _is_pil_image(x: object) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert") and hasattr(x, "size")


def _from_pil(img, color: str, return_info: bool):
    """A PIL image as ``read_image`` returns pixels (PIL has already decoded it; no EXIF applied)."""
    mode = {"rgb": "RGB", "bgr": "RGB", "gray": "L"}.get(color)
    try:
        a = np.asarray(img.convert(mode) if mode else img)
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken images
        raise ImageDecodeError(f"<PIL {getattr(img, 'mode', '?')} image>: {e}") from None
    if color == "bgr":
        a = np.ascontiguousarray(a[:, :, ::-1])
    if not return_info:
        return a
    size = (int(a.shape[0]), int(a.shape[1]))
    return a, DecodeInfo(scale=1.0, full_size=size, stored_size=size)


def _check_header(data: bytes, name: str, max_pixels: int | None, partial: bool = False) -> tuple[str, int, int]:
    """``(format, h, w)`` of a file that passes the header checks; ``partial``: ``data`` is only the
    start of the file, so a header that does not fit in it is left to the full check."""
    try:
        fmt, h, w = image_size(data)
    except ValueError as e:
        if partial:
            return "", 0, 0
        raise ImageDecodeError(f"{name}: {e}") from None
    if h <= 0 or w <= 0:
        raise ImageDecodeError(f"{name}: header announces an empty image ({h}x{w})")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageDecodeError(
            f"{name}: {fmt} header announces {h}x{w} = {h * w} pixels, more than max_pixels={max_pixels}"
        )
    if fmt == "jpeg" and not partial:
        scans = data.count(b"\xff\xda")  # SOS markers (0xFF 0xDA never occurs inside entropy-coded data)
        if scans > MAX_JPEG_SCANS:
            raise ImageDecodeError(f"{name}: JPEG with {scans} scans, more than the limit of {MAX_JPEG_SCANS} "
                                   "(each scan is a pass over the whole image: pyimgcls.limits.MAX_JPEG_SCANS)")
    return fmt, h, w


def _png_chunks_fit(d: bytes) -> None:
    """Refuses a PNG whose chunks before the image data claim more bytes than the file holds (or
    more than PNG's 2**31 - 1 limit). libpng refuses such a file too, but OpenCV first spends
    seconds (and gigabytes) on a 200-byte file whose chunk length was corrupted."""
    p, n = 8, len(d)
    while p + 8 <= n:
        (length,) = struct.unpack(">I", d[p:p + 4])
        typ = d[p + 4:p + 8]
        if length > 0x7FFFFFFF or p + 12 + length > n:
            raise ValueError(f"truncated or corrupt PNG: chunk {typ!r} at byte {p} claims {length:,} bytes, "
                             f"the file has {n - p - 12:,} left")
        if typ in (b"IDAT", b"IEND"):
            return
        p += 12 + length


def _reason(e: BaseException, data: bytes, fmt: str) -> str:
    """A decoder's exception as one clear line."""
    if fmt == "tiff":
        try:
            tags = _tiff_ifd0(data)
        except (ValueError, struct.error):
            tags = {}
        if tags.get(339) == 3:
            return f"floating-point TIFF samples ({tags.get(258, '?')}-bit) are not supported; use 8 or 16-bit"
    if isinstance(e, MemoryError):
        return "out of memory"
    text = str(e).strip().splitlines()
    msg = text[-1] if text else type(e).__name__
    if type(e).__name__ == "error" and type(e).__module__.startswith("cv2"):
        if "CV_IO_MAX_IMAGE_WIDTH" in msg or "CV_IO_MAX_IMAGE_HEIGHT" in msg or "CV_IO_MAX_IMAGE_PIXELS" in msg:
            return "the image is larger on one side than OpenCV's decoder accepts"
        msg = "OpenCV: " + (msg.split(" error: ", 1)[-1] if " error: " in msg else msg)
    return msg


def read_image(
    src: ImageSource,
    *,
    color: str = "rgb",
    min_size: tuple[int, int] | None = None,
    exif: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, DecodeInfo]:
    """Decodes an image file into a NumPy array.

    Args:
        src: a path, ``bytes``, a binary file object or a PIL image (already decoded: its pixels
            are converted to ``color``).
        color: ``"rgb"`` / ``"bgr"`` -> (H, W, 3) uint8; ``"gray"`` -> (H, W) uint8;
            ``"unchanged"`` -> the file's own channels (1, 3 RGB or 4 RGBA) and depth (uint16 for
            16-bit PNG / TIFF).
        min_size: ``(h, w)``: a JPEG is decoded at the smallest SIMD DCT scale (1/2, 1/4, 1/8) that
            keeps both sides at least this large (after orientation); other formats ignore it.
            Faster, but the pixels differ from a full decode (see ``return_info`` for the scale).
        exif: apply the EXIF orientation tag (JPEG, PNG, WebP, TIFF); ``False`` returns the
            pixels as stored.
        max_pixels: refuse images whose header announces more pixels (checked before decoding;
            ``pyimgcls.limits``); ``None`` disables the check.
        max_bytes: refuse files larger than this before reading them; ``None`` disables it.
            Only regular files are read (a FIFO or a device is refused), and a large file's
            header is checked before the rest is read. Progressive JPEGs with more than
            ``pyimgcls.limits.MAX_JPEG_SCANS`` scans are refused before decoding.
        return_info: return ``(image, DecodeInfo)``: the decode scale and the full-resolution
            size, to map coordinates on the decoded image back to the file's pixels.

    Raises:
        ImageDecodeError: unreadable, corrupt, truncated, unsupported or too large image; the
            message names the source.
        TypeError: ``src`` of an unsupported type.
        ValueError: bad ``color`` or ``min_size``.
    """
    if color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}, got {color!r}")
    if _is_pil_image(src):
        return _from_pil(src, color, return_info)
    if min_size is not None:
        if len(min_size) != 2 or min(int(min_size[0]), int(min_size[1])) <= 0:
            raise ValueError(f"min_size must be (h, w) with positive sides, got {min_size!r}")
        min_size = (int(min_size[0]), int(min_size[1]))
    if max_bytes is not None and (isinstance(max_bytes, bool) or int(max_bytes) < 1):
        raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
    name = _describe(src)
    data = _read_bytes(src, max_bytes, max_pixels)
    if not data:
        raise ImageDecodeError(f"{name}: empty file")
    fmt, h, w = _check_header(data, name, max_pixels)
    orientation = _exif_orientation(data, fmt)
    try:
        a, f = None, 1
        if fmt == "jpeg":
            _, _, colorspace, _ = simplejpeg.decode_jpeg_header(data)
            a, f = _decode_jpeg(data, color, min_size, orientation if exif else 1, h, w, colorspace)
        elif fmt == "png" and _NATIVE_PNG is not None:
            a = _NATIVE_PNG(data, _PNG_OUT[color])  # None: a PNG it declines (OpenCV's below)
        elif fmt == "tiff" and _tiff_straight_alpha(data):
            a = _decode_tiff_straight_alpha(data, color, orientation)
        if a is None:
            if fmt == "png":
                _png_chunks_fit(data)
            a = _decode_cv2(data, color)
    except Exception as e:  # noqa: BLE001 - every decoder failure (cv2.error too) names the source
        raise ImageDecodeError(f"{name}: cannot decode {fmt}: {_reason(e, data, fmt)}") from None
    # what the decoder really produced must be what the header said (a file whose decoder reads
    # other dimensions than the header check is refused, not returned)
    dh, dw = a.shape[:2]
    if f == 1 and {(dh, dw), (dw, dh)}.isdisjoint({(h, w)}):
        raise ImageDecodeError(f"{name}: decoded {dh}x{dw} pixels, but the {fmt} header says {h}x{w}")
    if fmt == "tiff":
        # libtiff (inside OpenCV) always applies the orientation tag itself; undo it on request.
        a = _apply_orientation(a, _INVERSE.get(orientation, orientation)) if not exif else a
    else:
        a = _apply_orientation(a, orientation) if exif else a
    if not return_info:
        return a
    full = (int(a.shape[0]), int(a.shape[1])) if f == 1 else ((w, h) if exif and orientation >= 5 else (h, w))
    return a, DecodeInfo(scale=1.0 / f, full_size=full, stored_size=(h, w))
