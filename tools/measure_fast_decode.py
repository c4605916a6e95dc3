"""Top-1 agreement of ``fast_decode=True`` (DCT-scaled JPEG decode) with the exact full decode, on
real photos from scikit-image and scikit-learn, re-encoded as large JPEGs.

    python tools/measure_fast_decode.py [--sizes 1920x1080,4000x3000] [--crops 6]

Each photo is cut into ``--crops`` overlapping crops (and their mirror images), each crop resized
to every size with OpenCV's INTER_CUBIC and saved as a quality-90 JPEG; both decodes go through
the embedded model. Prints the agreement per size and overall.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np


def photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = ["astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "immunohistochemistry", "retina",
             "hubble_deep_field", "camera", "coins", "moon", "page", "horse", "clock", "cat", "brick", "grass",
             "gravel", "text", "colorwheel"]
    out = {}
    for n in names:
        f = getattr(data, n, None)
        if f is None:
            continue
        try:
            img = f()
        except Exception:  # noqa: BLE001 - some need a download; skip them offline
            continue
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(1e-9, float(img.max() - img.min()))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out[n] = np.ascontiguousarray(img[:, :, :3])
    for n, img in zip(("china", "flower"), load_sample_images().images):
        out[n] = img
    return out


def variants(img: np.ndarray, crops: int):
    h, w = img.shape[:2]
    for k in range(crops):
        f = 0.6 + 0.4 * ((k * 7) % crops) / max(1, crops - 1)
        ch, cw = max(16, int(h * f)), max(16, int(w * f))
        y = (k * 37) % max(1, h - ch + 1)
        x = (k * 53) % max(1, w - cw + 1)
        c = img[y:y + ch, x:x + cw]
        yield c
        yield c[:, ::-1]


def main() -> int:
    import cv2
    from PIL import Image

    import pyimgcls

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1920x1080,4000x3000")
    ap.add_argument("--crops", type=int, default=6)
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    clf = pyimgcls.Classifier()
    total_same = total = 0
    for w, h in sizes:
        jpegs = []
        for img in photos().values():
            for v in variants(img, args.crops):
                r = cv2.resize(np.ascontiguousarray(v), (w, h), interpolation=cv2.INTER_CUBIC)
                buf = io.BytesIO()
                Image.fromarray(r).save(buf, format="JPEG", quality=90)
                jpegs.append(buf.getvalue())
        exact = [r.label for r in clf.predict(jpegs, fast_decode=False, top_k=1)]
        fast = [r.label for r in clf.predict(jpegs, fast_decode=True, top_k=1)]
        same = sum(a == b for a, b in zip(exact, fast))
        print(f"{w}x{h}: top-1 agreement {same}/{len(jpegs)} = {same / len(jpegs):.1%}")
        total_same += same
        total += len(jpegs)
    print(f"all: {total_same}/{total} = {total_same / total:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
