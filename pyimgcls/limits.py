"""The limits that protect the machine, in one place (README: "Limits").

Each has a documented default, and the functions that take input say which argument overrides it.
This module imports nothing from pyimgcls: every layer may read it.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "HEADER_FIRST_BYTES",
    "MAX_INPUT_PIXELS",
    "MAX_INPUT_SIDE",
    "MAX_JPEG_SCANS",
    "MAX_THREADS_PER_CORE",
]

#: ``read_image(max_pixels=...)``: images whose header announces more pixels are refused before
#: anything is decoded (about 179 Mpx, Pillow's decompression-bomb error threshold).
DEFAULT_MAX_PIXELS = 178_956_970

#: ``read_image(max_bytes=...)``: larger files are refused before they are read (1 GiB).
DEFAULT_MAX_BYTES = 1 << 30

#: A file larger than this has its header read and checked (``max_pixels``) before the rest is
#: read; smaller files are read whole in one call (1 MiB).
HEADER_FIRST_BYTES = 1 << 20

#: Progressive JPEGs with more scans than this are refused before decoding: each scan is a pass
#: over the whole image, and a small file can hold thousands of them (a normal progressive JPEG
#: has about 10). The same idea as libjpeg-turbo's ``djpeg -maxscans``.
MAX_JPEG_SCANS = 100

#: A model input (from the model or its metadata) may have at most this many pixels per image
#: and this long a side; a batch buffer is this times the batch size and the channels.
MAX_INPUT_PIXELS = 4096 * 4096
MAX_INPUT_SIDE = 16384

#: ``threads=`` is capped at this many threads per usable core (see ``runtime.threads``).
MAX_THREADS_PER_CORE = 4
