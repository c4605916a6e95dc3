"""Fashion-MNIST (Debian ``dataset-fashion-mnist``) as an ImageFolder of PNGs, the committed CNN
(``tests/assets/fashion_mnist_cnn.onnx``, made by ``tools/train_fashion_mnist.py``) and the plain
peer pipeline a user would otherwise write: PIL decode, NumPy preprocessing, ONNX Runtime per batch."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
MODEL = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets",
                                     "fashion_mnist_cnn.onnx"))
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# folder names: "/" cannot be in one; the class map sends T-shirt_top back to T-shirt/top
FOLDERS = [c.replace("/", "_") for c in CLASSES]


def available() -> bool:
    return os.path.isfile(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))


SKIP_REASON = "Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist; .ci/run installs it)"


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str = "t10k", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images (N, 28, 28) uint8 and labels (N,) int64 of ``split`` (``"train"`` or ``"t10k"``)."""
    x = read_idx(os.path.join(DATA, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    return (x, y) if n is None else (x[:n], y[:n])


def load_test_split(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images (N, 28, 28) uint8 and labels (N,) int64."""
    return load("t10k", n)


def write_pngs(folder: str, images: np.ndarray, labels: np.ndarray, start: int = 0) -> list[str]:
    """Writes ``folder/<class index>_<i>.png`` for each image (a flat folder, no class folders); returns the paths."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, (im, y) in enumerate(zip(images, labels)):
        p = os.path.join(folder, f"{int(y)}_{start + i:05d}.png")
        cv2.imwrite(p, im)
        paths.append(p)
    return paths


def write_image_folder(root, n: int | None = None) -> tuple[list[str], np.ndarray, str]:
    """Writes the first ``n`` test images as ``root/images/<folder>/<index>.png`` and a class map
    ``root/class_map.csv``. Returns (paths in the ImageFolder's sorted order, their labels, the map)."""
    from PIL import Image

    x, y = load_test_split(n)
    img_root = os.path.join(os.fspath(root), "images")
    for f in FOLDERS:
        os.makedirs(os.path.join(img_root, f), exist_ok=True)
    items = []
    for i in range(len(x)):
        p = os.path.join(img_root, FOLDERS[y[i]], f"{i:05d}.png")
        Image.fromarray(x[i], mode="L").save(p, compress_level=1)
        items.append((FOLDERS[y[i]], f"{i:05d}.png", p, y[i]))
    items.sort(key=lambda t: (t[0], t[1]))  # ImageFolder order: sorted folders, sorted files
    cmap = os.path.join(os.fspath(root), "class_map.csv")
    with open(cmap, "w", encoding="utf-8") as f:
        f.write("dataset,model\n")
        for folder, name in zip(FOLDERS, CLASSES):
            if folder != name:
                f.write(f"{folder},{name}\n")
    return [t[2] for t in items], np.asarray([t[3] for t in items], np.int64), cmap


def model_preprocess() -> tuple[float, float]:
    """The mean and std the model declares (its pyimgcls.preprocess metadata)."""
    import onnx

    m = onnx.load(MODEL, load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    cfg = json.loads(meta["pyimgcls.preprocess"])
    return float(cfg["mean"][0]), float(cfg["std"][0])


def plain_logits(paths: list[str], batch_size: int = 256, *, sklearn_report: bool = False, y_true=None):
    """The peer: PIL decode ("L"), NumPy ``(x / 255 - mean) / std``, ONNX Runtime per batch
    (one thread), softmax in NumPy. Returns (N, 10) float32 logits (and scikit-learn's report)."""
    import onnxruntime as ort
    from PIL import Image

    mean, std = model_preprocess()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = []
    for s in range(0, len(paths), batch_size):
        batch = np.stack([np.asarray(Image.open(p).convert("L"), np.float32) for p in paths[s:s + batch_size]])
        batch = ((batch / np.float32(255.0) - np.float32(mean)) / np.float32(std))[:, None]
        out.append(sess.run(None, {name: batch})[0])
    logits = np.concatenate(out) if out else np.zeros((0, 10), np.float32)
    if sklearn_report:
        from sklearn.metrics import classification_report

        rep = classification_report(y_true, logits.argmax(1), output_dict=True, zero_division=0)
        return logits, rep
    return logits


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
