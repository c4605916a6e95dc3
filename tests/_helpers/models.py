"""Tiny ONNX models built with ``onnx.helper``, for shapes and formats no real model here covers."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_classifier(path, *, batch=None, layout="NCHW", dtype=TensorProto.FLOAT, size=32, classes=4,
                    softmax=False, meta=None, tail=(), out4d=False, seed=0, external_data=False):
    """A global-average-pool + Gemm classifier (random weights) written to ``path``.

    Args:
        tail: shape-only ops (``"Identity"``, ``"Flatten"``, ``"Reshape"``, ``"Squeeze"``) applied
            after the (optional) Softmax, in order.
        out4d: the output is ``(N, classes, 1, 1)`` instead of ``(N, classes)``.
        external_data: the weights go to ``weights.bin`` beside the model.
    """
    rng = np.random.default_rng(seed)
    shape = [batch or "N", 3, size, size] if layout == "NCHW" else [batch or "N", size, size, 3]
    nodes = []
    x = "x"
    if dtype == TensorProto.UINT8:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    nodes += [helper.make_node("ReduceMean", [x, "axes"], ["pooled"], keepdims=0),
              helper.make_node("Gemm", ["pooled", "w", "b"], ["z0"], transB=1)]
    cur = "z0"
    if softmax:
        nodes.append(helper.make_node("Softmax", [cur], ["p0"], axis=1))
        cur = "p0"
    inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes"),
             numpy_helper.from_array(rng.normal(size=(classes, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=classes).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([-1, classes], np.int64), "shape2d"),
             numpy_helper.from_array(np.array([-1, classes, 1, 1], np.int64), "shape4d")]
    for k, op in enumerate(tail):
        out = f"t{k}"
        if op == "Reshape":
            nodes.append(helper.make_node("Reshape", [cur, "shape2d"], [out]))
        elif op == "Flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], axis=1))
        else:
            nodes.append(helper.make_node(op, [cur], [out]))
        cur = out
    out_shape = [batch or "N", classes]
    if out4d:
        nodes.append(helper.make_node("Reshape", [cur, "shape4d"], ["logits"]))
        out_shape = [batch or "N", classes, 1, 1]
    else:
        nodes.append(helper.make_node("Identity", [cur], ["logits"]))
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", dtype, shape)],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    if external_data:  # the weight matrix goes to weights.bin; axes and shapes stay inline
        from onnx.external_data_helper import set_external_data

        w = next(t for t in m.graph.initializer if t.name == "w")
        with open(os.path.join(os.path.dirname(os.path.abspath(path)), "weights.bin"), "wb") as f:
            f.write(w.raw_data)
        set_external_data(w, "weights.bin", offset=0, length=len(w.raw_data))
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        with open(path, "wb") as f:
            f.write(m.SerializeToString())
    else:
        onnx.save(m, path)
    return path


def tiny_detector_output_model(path, *, anchors=64, classes=4):
    """A model whose output is shaped like a YOLOv8 detector's, ``(N, 4 + classes, anchors)``."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["flat"]),
             helper.make_node("Reshape", ["flat", "oshape"], ["out"])]
    inits = [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
             numpy_helper.from_array(rng.normal(size=(3, (4 + classes) * anchors)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([-1, 4 + classes, anchors], np.int64), "oshape")]
    g = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4 + classes, anchors])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, path)
    return path
