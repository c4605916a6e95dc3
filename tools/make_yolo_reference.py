"""Makes the Ultralytics reference for ``Detector``: a YOLO11n ONNX export and what Ultralytics'
own predict gives on real images. Run once in a tools environment (PyTorch + Ultralytics are never
project dependencies; Ultralytics pulls in the CPU onnxruntime, keep it in its own venv):

    python -m venv /work/venv-yolo-ul
    /work/venv-yolo-ul/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics onnx onnxruntime \
        scikit-image scikit-learn
    /work/venv-yolo-ul/bin/python tools/make_yolo_reference.py

Writes (under tests/assets/):

* ``yolo11n_random.onnx``: ``YOLO("yolo11n.yaml")`` (the real architecture, weights from a seeded
  random initialisation, nothing downloaded; see ``randomise``) exported by Ultralytics (``format="onnx"``, opset 17,
  ``dynamic=True``: batch, height and width left open; Ultralytics' metadata ``names``, ``imgsz``,
  ``stride``, ``task`` in the file).
* ``yolo11n_reference.npz`` (compressed), for each image (``names``): its original shape, the
  anchors of Ultralytics' raw output whose best class score passes ``conf`` (index, box, best
  score and its class; the other anchors cannot pass the threshold and the other class scores of
  an anchor are never used without ``multi_label``, so a tensor holding just these decodes to the
  same boxes),
  Ultralytics' final boxes / scores / classes in original-image pixels, and for the first images
  the letterboxed input tensor Ultralytics made (as uint8 levels). Also the raw ``(1, 300, 6)``
  output of an ``nms=True`` (end-to-end) export on the same images and Ultralytics' boxes from it
  (that file is not kept: 10 MB more).

Ultralytics' predict runs with ``rect=False``: on a model with open height / width its default
(``rect=True``) letterboxes to the smallest stride multiple instead of ``imgsz``; pyimgcls always
letterboxes to ``imgsz``, as Ultralytics does for fixed-size exports (its export default) and with
``rect=False``. The weights are random: boxes and classes mean nothing, only the arithmetic is
compared, at a ``conf`` low enough that every image has boxes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.join(HERE, "..", "tests", "assets")
SEED = 0
IMGSZ = 640
CONF = 0.1  # every image below has boxes at this threshold with these random weights (printed)
IOU = 0.7


def images() -> dict[str, np.ndarray]:
    """Real photos (RGB) and odd shapes cut from them with NumPy only (the tests rebuild them)."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from _helpers.yolo_reference import reference_images

    return reference_images()


def randomise(model, photos) -> None:
    """Random weights whose scores depend on the image, in a stable regime. Ultralytics' own
    initialisation gives the same class score to every anchor of a level (the head's bias
    dominates), so NMS would compare exact ties. Here the BatchNorm statistics are calibrated on
    the photos (one pass in training mode, cumulative averages), every BatchNorm scale is set to
    0.9 (at 1.0 this random network is chaotic: one uint8 step of input noise moved scores by up
    to 0.36; at 0.9 by about 0.006, boxes keeping IoU > 0.99) and the last convolution of each
    class and box branch is scaled by 4 (class bias -3), so scores and boxes vary with the image."""
    import cv2
    import torch

    xs = np.stack([cv2.resize(im, (IMGSZ, IMGSZ), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) for im in photos])
    xs = torch.from_numpy(xs.astype(np.float32) / 255)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
            mod.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(xs)
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.fill_(0.9)
        head = model.model[-1]
        for seq in head.cv3:
            seq[-1].weight.mul_(4.0)
            seq[-1].bias.fill_(-3.0)
        for seq in head.cv2:
            seq[-1].weight.mul_(4.0)
    model.eval()


def main() -> None:
    import torch
    import ultralytics
    from ultralytics import YOLO

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    work = tempfile.mkdtemp(prefix="yolo-ref-")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        model = YOLO("yolo11n.yaml")  # architecture from the packaged YAML, random weights
        randomise(model.model, list(images().values())[:6])
        path = os.path.abspath(model.export(format="onnx", opset=17, dynamic=True, simplify=False, imgsz=IMGSZ))
        torch.manual_seed(SEED)
        model_e2e = YOLO("yolo11n.yaml")
        model_e2e.model.load_state_dict(model.model.state_dict())
        e2e_dir = os.path.join(work, "e2e")
        os.makedirs(e2e_dir)
        os.chdir(e2e_dir)
        path_e2e = os.path.abspath(model_e2e.export(format="onnx", opset=17, dynamic=True, simplify=False,
                                                    imgsz=IMGSZ, nms=True, conf=CONF, iou=IOU))
        os.chdir(work)
        ref = _run(path, "v8")
        ref_e2e = _run(path_e2e, "e2e")
        out = {"ultralytics_version": np.array(ultralytics.__version__), "torch_version": np.array(torch.__version__),
               "conf": np.array(CONF), "iou": np.array(IOU), "imgsz": np.array(IMGSZ)}
        out.update(ref)
        out.update(ref_e2e)
        os.makedirs(ASSETS, exist_ok=True)
        dst = os.path.join(ASSETS, "yolo11n_random.onnx")
        shutil.copyfile(path, dst)
        np.savez_compressed(os.path.join(ASSETS, "yolo11n_reference.npz"), **out)
        print(f"wrote {dst} ({os.path.getsize(dst) / 1e6:.1f} MB) and yolo11n_reference.npz "
              f"({os.path.getsize(os.path.join(ASSETS, 'yolo11n_reference.npz')) / 1e6:.2f} MB)")
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def _run(path: str, tag: str) -> dict[str, np.ndarray]:
    """Ultralytics' predict on every image, and the same through its predictor's own stages
    (preprocess -> inference -> postprocess) to capture the tensor and the raw output."""
    from ultralytics import YOLO

    m = YOLO(path, task="detect")
    out: dict[str, np.ndarray] = {}
    ims = images()
    out["names"] = np.array(list(ims))
    kw = dict(conf=CONF, iou=IOU, imgsz=IMGSZ, max_det=300, rect=False, verbose=False)
    for k, (name, rgb) in enumerate(ims.items()):
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # Ultralytics takes arrays as OpenCV's BGR
        res = m.predict(bgr, **kw)[0]
        p = m.predictor
        t = p.preprocess([bgr])
        raw = p.inference(t)
        raw0 = raw[0] if isinstance(raw, (list, tuple)) else raw
        again = p.postprocess(raw, t, [bgr])[0]
        b = res.boxes
        assert np.array_equal(again.boxes.xyxy.cpu().numpy(), b.xyxy.cpu().numpy()), name
        raw0 = np.asarray(raw0.cpu().numpy() if hasattr(raw0, "cpu") else raw0, np.float32)[0]
        key = f"{tag}/{name}"
        out[f"{key}/shape"] = np.array(rgb.shape[:2])
        out[f"{key}/xyxy"] = b.xyxy.cpu().numpy().astype(np.float32)
        out[f"{key}/conf"] = b.conf.cpu().numpy().astype(np.float32)
        out[f"{key}/cls"] = b.cls.cpu().numpy().astype(np.int32)
        if tag == "v8":
            best = raw0[4:].max(axis=0)
            idx = np.nonzero(best > CONF)[0]
            out[f"{key}/anchors"] = idx.astype(np.int32)
            out[f"{key}/box"] = raw0[:4, idx].T.copy()                    # cx, cy, w, h
            out[f"{key}/best_score"] = best[idx]
            out[f"{key}/best_class"] = raw0[4:, idx].argmax(axis=0).astype(np.int16)
            out[f"{key}/num_anchors"] = np.array(raw0.shape)
            if k < 2:
                out[f"{key}/input_u8"] = np.round(t.cpu().numpy()[0] * 255).astype(np.uint8)
        else:
            out[f"{key}/raw"] = raw0
        print(f"{tag:4s} {name:10s} {rgb.shape[0]:5d}x{rgb.shape[1]:<5d} input {tuple(t.shape)} "
              f"boxes {len(b)}" + (f" candidates {len(idx)}" if tag == "v8" else ""))
    return out


if __name__ == "__main__":
    main()
