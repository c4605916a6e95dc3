"""Shared inputs for the benchmark suite; peers are pinned to one thread like us."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

cv2.setNumThreads(1)
# the peers' pipelines (tests/_helpers/peers.py) come in through pytest's pythonpath setting


@pytest.fixture(scope="session")
def photo_1280():
    from skimage import data

    return np.ascontiguousarray(cv2.resize(data.astronaut(), (1280, 960), interpolation=cv2.INTER_CUBIC))


@pytest.fixture(scope="session")
def jpeg_1280(photo_1280):
    buf = io.BytesIO()
    Image.fromarray(photo_1280).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def mixed_photos():
    """64 photos of mixed sizes (640x480 .. 1920x1080) made from the example photos."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    base = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), *load_sample_images().images]
    sizes = [(640, 480), (1280, 960), (1920, 1080), (800, 600)]
    out = []
    for i in range(64):
        w, h = sizes[i % len(sizes)]
        img = base[i % len(base)]
        if i % 3 == 0:
            img = img[:, ::-1]
        out.append(np.ascontiguousarray(cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_LINEAR)))
    return out
