"""Tiny ONNX models built with ``onnx.helper``, for shapes and formats no real model here covers."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_classifier(path, *, batch=None, layout="NCHW", dtype=TensorProto.FLOAT, size=32, classes=4,
                     softmax=False, meta=None):
    """A global-average-pool + Gemm classifier (random weights, seed 0) written to ``path``."""
    rng = np.random.default_rng(0)
    shape = [batch or "N", 3, size, size] if layout == "NCHW" else [batch or "N", size, size, 3]
    nodes = []
    x = "x"
    if dtype == TensorProto.UINT8:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    nodes += [helper.make_node("ReduceMean", [x, "axes"], ["pooled"], keepdims=0),
              helper.make_node("Gemm", ["pooled", "w", "b"], ["logits" if not softmax else "z"], transB=1)]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["logits"], axis=1))
    inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes"),
             numpy_helper.from_array(rng.normal(size=(classes, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=classes).astype(np.float32), "b")]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", dtype, shape)],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch or "N", classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, path)
    return path
