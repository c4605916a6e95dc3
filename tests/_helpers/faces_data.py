"""A face-detection benchmark built from real parts, seeded: ``skimage.data.lfw_subset()`` faces pasted
into scikit-image and scikit-learn photos at known boxes.

``face_benchmark(n_images=200, seed=0)`` gives ``(images, boxes)``: 640x480 RGB uint8 photos (a random
crop of a background photo, resized) with 1-8 faces each, every face an LFW crop (the first 100 entries
of ``lfw_subset`` are faces) upscaled to a square of 30-200 px, pasted without overlap; ``boxes[i]`` is
the (n, 4) float64 xyxy of the pasted squares. Backgrounds are photos without faces (astronaut is left out).
``coco_ground_truth`` / ``coco_results`` write the COCO JSON both evaluators read.
"""

from __future__ import annotations

import functools

import numpy as np

BACKGROUNDS = ("chelsea", "coffee", "rocket", "camera", "coins", "moon", "page", "horse", "clock",
               "immunohistochemistry", "hubble_deep_field", "retina")


@functools.lru_cache(maxsize=1)
def _backgrounds() -> tuple[np.ndarray, ...]:
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    out = []
    for name in BACKGROUNDS:
        a = getattr(sd, name)()
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        a = a.astype(np.uint8)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        out.append(np.ascontiguousarray(a[:, :, :3]))
    out.extend(np.asarray(im, np.uint8) for im in load_sample_images().images)
    for a in out:
        a.flags.writeable = False  # shared by every call (cached)
    return tuple(out)


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """``lfw_subset``: (100, 25, 25) faces and (100, 25, 25) non-faces, uint8."""
    import skimage.data as sd

    x = (sd.lfw_subset() * 255).round().astype(np.uint8)
    return x[:100], x[100:]


def face_benchmark(n_images: int = 200, seed: int = 0, size: tuple[int, int] = (480, 640)):
    import cv2

    rng = np.random.default_rng(seed)
    backs = _backgrounds()
    faces, _ = lfw_faces()
    H, W = size
    images, boxes = [], []
    for _ in range(n_images):
        bg = backs[rng.integers(len(backs))]
        bh, bw = bg.shape[:2]
        ch = int(rng.integers(min(bh, bw) // 2, min(bh, bw) + 1))
        cw = min(bw, int(ch * W / H))
        y0, x0 = int(rng.integers(0, bh - ch + 1)), int(rng.integers(0, bw - cw + 1))
        img = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], (W, H), interpolation=cv2.INTER_AREA)
        placed: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, 9))):
            for _try in range(50):
                s = int(rng.integers(30, 201))
                x, y = int(rng.integers(0, W - s + 1)), int(rng.integers(0, H - s + 1))
                if all(x + s <= a or a + c <= x or y + s <= b or b + c <= y for a, b, c, _ in placed):
                    break
            else:
                continue
            face = faces[rng.integers(len(faces))]
            patch = cv2.resize(face, (s, s), interpolation=cv2.INTER_CUBIC)
            img[y:y + s, x:x + s] = patch[:, :, None]
            placed.append((x, y, s, s))
        images.append(img)
        boxes.append(np.array([[x, y, x + s, y + s] for x, y, s, _ in placed], np.float64).reshape(-1, 4))
    return images, boxes


def coco_ground_truth(boxes: list[np.ndarray]) -> dict:
    anns = []
    for i, b in enumerate(boxes):
        for x1, y1, x2, y2 in b.tolist():
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    return {"images": [{"id": i, "width": 640, "height": 480} for i in range(len(boxes))],
            "annotations": anns, "categories": [{"id": 1, "name": "face"}]}


def record_network_inputs(det, photos) -> list:
    """Runs ``det.detect`` on each photo and returns what its three networks were given, in order:
    ``[(k, input), ...]`` with k 0 / 1 / 2 for P-Net / R-Net / O-Net (copies). The sessions' ``run``
    is restored afterwards, also on an error."""
    calls: list = []
    nets = [det._pnet, det._rnet, det._onet]
    orig = [s.run for s in nets]
    try:
        for k, s in enumerate(nets):
            s.run = (lambda f, k: (lambda x: calls.append((k, x.copy())) or f(x)))(orig[k], k)
        for p in photos:
            det.detect(p)
    finally:
        for s, f in zip(nets, orig):
            s.run = f
    return calls
