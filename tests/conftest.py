import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _photos():
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")}
    for name, img in zip(("china", "flower"), load_sample_images().images):
        photos[name] = img
    return photos


@pytest.fixture(scope="session")
def photos():
    """Real RGB uint8 photos from scikit-image and scikit-learn (see shared/DATA.md)."""
    return _photos()


@pytest.fixture(scope="session")
def big_photo(photos):
    import cv2

    return np.ascontiguousarray(cv2.resize(photos["astronaut"], (1280, 960), interpolation=cv2.INTER_CUBIC))
