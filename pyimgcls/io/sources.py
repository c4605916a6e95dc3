"""Turning what users pass (paths, folders, bytes, arrays, PIL images, iterables) into images.

Listing is lazy: a folder of a million files yields its first image at once.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from .images import DecodeInfo, ImageDecodeError, read_image

__all__ = ["IMAGE_EXTENSIONS", "FolderListingError", "Item", "float_to_uint16", "iter_items", "load_item", "peek"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
_GLOB_CHARS = set("*?[")


@dataclass
class Item:
    """One input: ``source`` names it in results; ``payload`` is a path, bytes, array or PIL image."""

    source: str
    payload: Any


class FolderListingError:
    """The payload of an ``Item`` for a folder that could not be listed: loading it raises, so the
    folder gets an error entry instead of silently contributing nothing."""

    def __init__(self, folder: str, error: OSError) -> None:
        self.folder, self.error = folder, error

    def raise_error(self):
        reason = self.error.strerror or str(self.error)
        raise OSError(self.error.errno, f"cannot list folder {self.folder}: {reason}")


def _walk(folder: str, include_hidden: bool = False) -> Iterator[Item]:
    """Items for the image files under ``folder``, recursively, in sorted order, listed lazily; a
    folder that cannot be listed becomes an item that fails with the reason. Symbolic links to
    folders are followed, but each real folder is visited once (no loops, no duplicates), and the
    walk keeps its own stack (no recursion limit on deep trees)."""
    seen: set[tuple[int, int]] = set()

    def visible(e) -> bool:
        return include_hidden or not e.name.startswith(".")

    def listing(path: str):
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                return iter(()), None
            entries = sorted((e for e in os.scandir(path) if visible(e)), key=lambda e: e.name)
        except OSError as e:
            return None, e
        seen.add(key)
        return iter(entries), None

    it, err = listing(folder)
    if err is not None:
        yield Item(folder, FolderListingError(folder, err))
        return
    stack = [it]
    while stack:
        e = next(stack[-1], None)
        if e is None:
            stack.pop()
            continue
        try:
            is_dir = e.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            it, err = listing(e.path)
            if err is not None:
                yield Item(e.path, FolderListingError(e.path, err))
            else:
                stack.append(it)
        elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
            yield Item(e.path, e.path)


def float_to_uint16(x: np.ndarray) -> np.ndarray:
    """A float image with values in [0, 1] as uint16 (``round(v * 65535)``: 16 bits keep float
    inputs finer than uint8 could); NaN or values outside [0, 1] are refused."""
    if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
        bad = x[~np.isfinite(x)] if not np.isfinite(x).all() else np.array([x.min(), x.max()])
        raise ValueError(f"{x.dtype} images must hold values in [0, 1], got {bad.ravel()[:2].tolist()}")
    return np.rint(np.asarray(x, np.float64) * 65535.0).astype(np.uint16)


def _list_file(path: str) -> Iterator[Item]:
    """The paths of a list file, one per line (blank lines and ``#`` comments skipped), relative to
    the list's folder, read lazily."""
    base = os.path.dirname(os.path.abspath(path))
    try:
        f = open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise FileNotFoundError(e.errno, f"cannot read list file: {e.strerror}", path) from None
    with f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip() and not line.lstrip().startswith("#"):
                q = line if os.path.isabs(line) else os.path.join(base, line)
                yield Item(q, q)


def _is_pil(x: object) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert") and hasattr(x, "size")


def iter_items(inputs: Any, *, include_hidden: bool = False) -> Iterator[Item]:
    """Expands ``inputs`` into ``Item``s in order: one item per input, a folder expanded to its
    image files in sorted order (recursively).

    Accepts a path (a folder is walked recursively for image extensions, skipping hidden files
    and folders, whose names start with ``.``, unless ``include_hidden``; a glob pattern;
    ``@FILE`` for a list file of paths, one per line, relative to the list; any other path is
    one input, whatever its extension), ``bytes``, a NumPy image (H, W[, C]) or a batch
    (N, H, W, C), a PIL image, an ``Item`` (taken as it is: one input, no file-system check), or an
    iterable of these.
    """
    counter = 0

    def one(x: Any) -> Iterator[Item]:
        nonlocal counter
        if isinstance(x, Item):  # already one input (a caller that listed its files): as it is
            yield x
        elif isinstance(x, (str, os.PathLike)):
            p = os.fspath(x)
            if isinstance(p, str) and p.startswith("@") and len(p) > 1 and not os.path.exists(p):
                yield from _list_file(p[1:])
            elif os.path.isdir(p):
                yield from _walk(p, include_hidden)
            elif _GLOB_CHARS & set(p) and not os.path.exists(p):  # (the cheap test first: one stat per file)
                import glob

                try:
                    found = glob.glob(p, recursive=True, include_hidden=include_hidden)
                except TypeError:  # Python < 3.11: hidden names only by an explicit pattern
                    found = glob.glob(p, recursive=True)
                for f in sorted(found):
                    if os.path.isdir(f):
                        yield from one(f)
                    elif os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                        yield Item(f, f)
            else:
                yield Item(p, p)
        elif isinstance(x, (bytes, bytearray, memoryview)):
            yield Item(f"<bytes #{counter}>", bytes(x))
            counter += 1
        elif isinstance(x, np.ndarray):
            if x.ndim == 4:
                for im in x:
                    yield Item(f"<array #{counter}>", im)
                    counter += 1
            else:
                yield Item(f"<array #{counter}>", x)
                counter += 1
        elif _is_pil(x):
            yield Item(f"<PIL #{counter}>", x)
            counter += 1
        elif isinstance(x, Iterable):
            for y in x:
                if isinstance(y, (Item, str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)) or _is_pil(y):
                    yield from one(y)
                else:
                    yield Item(f"<{type(y).__name__} #{counter}>", y)
                    counter += 1
        else:
            yield Item(f"<{type(x).__name__} #{counter}>", x)
            counter += 1

    yield from one(inputs)


def load_item(item: Item, *, min_size: tuple[int, int] | None = None,
              return_info: bool = False) -> np.ndarray | tuple[np.ndarray, DecodeInfo]:
    """Decodes / validates one item into an (H, W[, C]) uint8 or uint16 array (RGB order).

    With ``return_info`` also the ``DecodeInfo`` (decode scale and full-resolution size).

    Raises:
        ImageDecodeError: unreadable or corrupt file / bytes.
        ValueError, TypeError: an array of the wrong shape or dtype, or an unsupported object.
    """
    x = item.payload
    if isinstance(x, (str, bytes, bytearray, memoryview)):
        return read_image(x, color="rgb", min_size=min_size, return_info=return_info)
    a = _load_in_memory(item, x)
    size = (int(a.shape[0]), int(a.shape[1]))
    return (a, DecodeInfo(scale=1.0, full_size=size, stored_size=size)) if return_info else a


def _load_in_memory(item: Item, x: Any) -> np.ndarray:
    if isinstance(x, FolderListingError):
        x.raise_error()
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "f":
            x = float_to_uint16(x)
        if x.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"array images must be uint8, uint16 or float in [0, 1], got {x.dtype}")
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] not in (1, 3, 4)) or 0 in x.shape[:2]:
            raise ValueError(f"array images must have shape (H, W) or (H, W, C) with C in 1, 3, 4; got {x.shape}")
        return x
    if _is_pil(x):
        try:
            return np.asarray(x.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - PIL raises many types for broken images
            raise ImageDecodeError(f"{item.source}: {e}") from None
    raise TypeError(f"unsupported input {type(x).__name__}: expected a path, bytes, a NumPy array or a PIL image")


def peek(items: Iterable[Item], n: int) -> tuple[Iterator[Item], bool]:
    """The whole input again as an iterator, its first ``n`` items read ahead, and whether it held
    fewer than ``n``. An error of the input iterator is raised again at its place, after those
    items. Each item read ahead is let go once taken again (a stream of large arrays)."""
    it = iter(items)
    head: deque[Item] = deque()
    try:
        for x in it:
            head.append(x)
            if len(head) >= n:
                return _replay(head, it), False
    except Exception as e:  # noqa: BLE001 - raised again where it happened
        return _replay(head, None, e), True
    return _replay(head, None), True


def _replay(head: deque[Item], rest: Iterator[Item] | None, err: BaseException | None = None) -> Iterator[Item]:
    while head:
        yield head.popleft()
    if err is not None:
        raise err
    if rest is not None:
        yield from rest
