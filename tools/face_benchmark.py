"""The face benchmark of the README: FaceDetector's COCO AP on LFW faces pasted into real photos.

    python tools/face_benchmark.py [--images 200] [--seed 0] [--threads 0]

Builds the seeded benchmark (tests/_helpers/faces_data.py: lfw_subset faces, 30-200 px squares,
1-8 per 640x480 photo from scikit-image / scikit-learn), runs ``pyimgcls.FaceDetector`` with its
defaults, writes the COCO ground truth and results JSON to a temporary folder and evaluates them with
``pyimgcls.metrics.evaluate_coco`` and with pycocotools, checking that the two agree (to 1e-12).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from _helpers.faces_data import coco_ground_truth, face_benchmark  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from pyimgcls import FaceDetector
    from pyimgcls.metrics import evaluate_coco

    images, boxes = face_benchmark(args.images, args.seed)
    det = FaceDetector(threads=args.threads)
    t0 = time.perf_counter()
    results = []
    for i, r in enumerate(det.predict(images, errors="raise")):
        results += r.detections.to_coco(i, category_ids=[1])
    dt_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        gt_path, dt_path = os.path.join(d, "gt.json"), os.path.join(d, "dt.json")
        with open(gt_path, "w") as f:
            json.dump(coco_ground_truth(boxes), f)
        with open(dt_path, "w") as f:
            json.dump(results, f)
        ours = evaluate_coco(gt_path, dt_path)
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(dt_path), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    diff = float(np.abs(np.asarray(ev.stats) - ours.stats).max())
    print(f"\n{args.images} images, {sum(len(b) for b in boxes)} faces, {len(results)} detections, "
          f"{dt_s / args.images * 1e3:.1f} ms / image")
    print(ours)
    print(f"max |pyimgcls - pycocotools| over the 12 stats: {diff:.1e}")
    if diff > 1e-12:
        raise SystemExit("pyimgcls.metrics and pycocotools disagree")


if __name__ == "__main__":
    main()
