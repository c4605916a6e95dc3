"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (MIT): IDX files in
``/usr/share/datasets/fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``)."""

from __future__ import annotations

import gzip
import os

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def available() -> bool:
    return os.path.isfile(os.path.join(ROOT, "t10k-images-idx3-ubyte.gz"))


def _idx(path: str) -> np.ndarray:
    with gzip.open(path) as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(split: str = "t10k", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` of ``split`` (``"train"`` or ``"t10k"``)."""
    x = _idx(os.path.join(ROOT, f"{split}-images-idx3-ubyte.gz"))
    y = _idx(os.path.join(ROOT, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    return (x, y) if n is None else (x[:n], y[:n])


def write_pngs(folder: str, images: np.ndarray, labels: np.ndarray, start: int = 0) -> list[str]:
    """Writes ``folder/<class index>_<i>.png`` for each image; returns the paths."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, (im, y) in enumerate(zip(images, labels)):
        p = os.path.join(folder, f"{int(y)}_{start + i:05d}.png")
        cv2.imwrite(p, im)
        paths.append(p)
    return paths
