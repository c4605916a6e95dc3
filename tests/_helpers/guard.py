"""Arrays whose last byte is the last readable byte before an unmapped (PROT_NONE) page: a native kernel
that reads past the end of its input faults at once instead of reading a neighbour's bytes, which
only a sanitizer build would notice. Linux only (``mmap`` + ``mprotect`` through ctypes)."""

import ctypes
import mmap
import sys

import numpy as np

_keep: list = []  # the mappings live as long as the test process (arrays are views into them)


def guarded_available() -> bool:
    return sys.platform.startswith("linux")


def guarded_array(shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A C-contiguous array of ``shape`` ending exactly at a page boundary, followed by a page that
    faults on any access."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    page = mmap.PAGESIZE
    data_pages = max(1, -(-nbytes // page))
    m = mmap.mmap(-1, (data_pages + 1) * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(ctypes.c_void_p(base + data_pages * page), page, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    _keep.append(m)
    start = data_pages * page - nbytes
    return np.frombuffer(m, dtype=np.uint8, count=nbytes, offset=start).view(dtype).reshape(shape)
