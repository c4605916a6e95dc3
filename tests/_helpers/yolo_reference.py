"""The images of the Ultralytics YOLO reference (tools/make_yolo_reference.py), rebuilt the same
way in the tests: real photos, and odd shapes cut from them with NumPy only (no resampling, so
every environment makes the same pixels)."""

from __future__ import annotations

import numpy as np


def reference_images() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8 RGB image, in a fixed order."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    astronaut, coffee, chelsea, rocket = data.astronaut(), data.coffee(), data.chelsea(), data.rocket()
    ims = {"astronaut": astronaut, "coffee": coffee, "chelsea": chelsea, "rocket": rocket, "china": china,
           "flower": flower,
           "strip": astronaut[200:237],                                   # 37 x 512
           "tall": chelsea[:, 100:117],                                   # 300 x 17
           "big": np.tile(coffee, (3, 3, 1)),                             # 1200 x 1800
           "wide": np.concatenate([china, flower, china[:, ::-1]], 1),    # 427 x 1920
           "line": rocket[200:201],                                       # 1 x 640
           "odd": np.ascontiguousarray(astronaut[3:500:2, 7:399])}        # 249 x 392
    return {k: np.ascontiguousarray(v) for k, v in ims.items()}
