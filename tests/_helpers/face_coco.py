"""A small real face-detection set: scikit-image's astronaut (one face), chelsea (none) and LFW faces
laid out on gray canvases, with COCO ground truth (25 boxes)."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image


def face_dataset(root):
    """Five images (one without faces), 25 face boxes, COCO JSON; returns its path."""
    from skimage import data as d

    os.makedirs(root, exist_ok=True)
    imgs, anns = [], []

    def add(name, arr, boxes):
        Image.fromarray(arr).save(os.path.join(root, name), quality=92)
        iid = len(imgs) + 1
        imgs.append({"id": iid, "file_name": name, "width": arr.shape[1], "height": arr.shape[0]})
        for b in boxes:  # annotation ids from 1 (pycocotools treats id 0 specially)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1, "bbox": [float(v) for v in b],
                         "area": float(b[2] * b[3]), "iscrowd": 0})

    add("astronaut.jpg", d.astronaut(), [(179, 60, 89, 113)])
    add("chelsea.jpg", d.chelsea(), [])
    faces = d.lfw_subset()[:24]
    for m in range(3):
        canvas = np.full((300, 500, 3), 128, np.uint8)
        boxes = []
        for t in range(8):
            f = np.asarray(Image.fromarray((faces[m * 8 + t] * 255).astype(np.uint8)).resize((100, 100),
                                                                                              Image.BICUBIC))
            y, x = 20 + (t // 4) * 140, 10 + (t % 4) * 122
            canvas[y:y + 100, x:x + 100] = f[:, :, None]
            boxes.append((x + 10 + 3 * (t % 3), y + 8, 80 - 4 * (t % 2), 90))
        add(f"mosaic{m}.jpg", canvas, boxes)
    path = os.path.join(root, "instances_val.json")
    with open(path, "w") as f:
        json.dump({"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "face"}]}, f)
    return path
