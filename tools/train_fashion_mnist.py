"""Trains the small Fashion-MNIST CNN committed as ``tests/assets/fashion_mnist_cnn.onnx``.

The data: Debian's ``dataset-fashion-mnist`` (MIT; ``apt-get install -y dataset-fashion-mnist``), 60,000
training and 10,000 test images, 28x28 gray, in ``/usr/share/datasets/fashion-mnist/*-ubyte.gz``.

The model: two 3x3 conv + batch-norm + ReLU + 2x2 max-pool blocks (16 and 32 channels), a 64-unit hidden
layer and 10 logits; about 106k float32 parameters (about 0.43 MB of ONNX). Trained with Adam (lr 1e-3,
batch 64, 2 epochs, seed 0); about 0.90 test accuracy. The committed file was made with torch 2.13.0 (CPU)
and ``--threads 1`` (one thread trains faster than two on a loaded 2-core machine: about 1 minute an
epoch); PyTorch printed test accuracy 0.8991.

The export: ``torch.onnx.export`` (opset 17, a dynamic batch axis, input ``image`` (N, 1, 28, 28) float32,
output ``logits`` (N, 10)), then ``pyimgcls.annotate_model`` stores the class names and the
preprocessing (28x28 gray, ``(x / 255 - 0.2860) / 0.3530``, ``stretch`` at the same size: no resampling).

Needs PyTorch (CPU build) in its own environment, never in the project's dependencies::

    python -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch==2.13.0 numpy onnx
    /tmp/venv-torch/bin/python tools/train_fashion_mnist.py --pyimgcls-python "$(which python)"

``--pyimgcls-python`` is an interpreter with pyimgcls installed (the annotation step runs there; the
default is the same interpreter, when it has both).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "assets", "fashion_mnist_cnn.onnx")


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzip) as a NumPy array: images (N, 28, 28) uint8 or labels (N,) uint8."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    return np.frombuffer(data, np.uint8, offset=off).reshape(dims)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, f"{prefix}-labels-idx1-ubyte.gz"))
    return x, y


def build_model():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))


def train(epochs: int, threads: int, seed: int):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    x, y = load("train")
    xt = (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD
    xt = xt.unsqueeze(1)
    yt = torch.from_numpy(y.astype(np.int64))
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=g)
        t0, total = time.perf_counter(), 0.0
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}: loss {total / len(xt):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    xs, ys = load("test")
    with torch.no_grad():
        xe = ((torch.from_numpy(xs.astype(np.float32)) / 255.0 - MEAN) / STD).unsqueeze(1)
        acc = float((model(xe).argmax(1).numpy() == ys).mean())
    print(f"test accuracy (PyTorch): {acc:.4f}")
    return model


def export(model, path: str) -> None:
    import torch

    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, dummy, path, input_names=["image"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, dynamo=False)


ANNOTATE = """
import json, sys
import pyimgcls
src, dst, labels, mean, std = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
cfg = pyimgcls.PreprocessConfig(size=(28, 28), resize="stretch", interpolation="bilinear", channels=1,
                                mean=(mean,), std=(std,))
pyimgcls.annotate_model(src, dst, preprocess=cfg, labels=labels, output="logits")
"""


def main() -> int:
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pyimgcls-python", default=sys.executable,
                    help="an interpreter with pyimgcls installed, for the annotate_model step")
    ap.add_argument("--raw-out", default=None,
                    help="also write the plain export (before annotate_model) here; with --no-annotate, only it")
    ap.add_argument("--no-annotate", action="store_true", help="stop after the plain export (--raw-out)")
    ap.add_argument("--annotate-only", default=None, metavar="RAW",
                    help="skip training: annotate a plain export RAW into --out")
    args = ap.parse_args()
    if args.annotate_only:
        subprocess.run([args.pyimgcls_python, "-c", ANNOTATE, os.path.abspath(args.annotate_only),
                        os.path.abspath(args.out), json.dumps(CLASSES), repr(MEAN), repr(STD)], check=True,
                       cwd=tempfile.gettempdir())
        print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
        return 0
    model = train(args.epochs, args.threads, args.seed)
    if args.raw_out:
        export(model, args.raw_out)
        if args.no_annotate:
            return 0
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        export(model, raw)
        subprocess.run([args.pyimgcls_python, "-c", ANNOTATE, raw, os.path.abspath(args.out), json.dumps(CLASSES),
                        repr(MEAN), repr(STD)], check=True, cwd=tmp)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
