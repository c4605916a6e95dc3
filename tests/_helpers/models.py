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


def bright_box_detector(path, *, size=(160, 160), classes=2, layout="v8", anchors=8, metadata=None,
                        dynamic_batch=True, threshold=0.8):
    """A YOLO-layout "detector" with real geometry: it finds the bounding box of the model-input
    pixels whose three channels all exceed ``threshold`` (a white rectangle on a darker image)
    and reports it on anchor 0 as class 0, score 0.9 (0 when nothing is bright); the other
    anchors are zeros.

    Layouts: ``"v8"`` ``(N, 4 + classes, anchors)``, ``"v5"`` ``(N, anchors, 5 + classes)``
    (objectness 1) and ``"end2end"`` ``(N, anchors, 6)`` (x1, y1, x2, y2, score, class).
    ``metadata``: dict written into ``metadata_props`` (Ultralytics' keys, ``pyimgcls.*``).
    """
    H, W = size
    N = "N" if dynamic_batch else 1
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("ReduceMin", ["x", "ax1"], ["g"], keepdims=0),               # (N, H, W)
        helper.make_node("Greater", ["g", "thr"], ["mb"]),
        helper.make_node("Cast", ["mb"], ["m"], to=f),
        helper.make_node("ReduceMax", ["m", "ax1"], ["col"], keepdims=0),             # (N, W)
        helper.make_node("ReduceMax", ["m", "ax2"], ["row"], keepdims=0),             # (N, H)
        helper.make_node("ReduceMax", ["col", "ax1"], ["anyb"], keepdims=1),          # (N, 1)
        helper.make_node("ArgMax", ["col"], ["x1i"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["col"], ["x2i"], axis=1, keepdims=1, select_last_index=1),
        helper.make_node("ArgMax", ["row"], ["y1i"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["row"], ["y2i"], axis=1, keepdims=1, select_last_index=1),
    ]
    for n in ("x1", "x2", "y1", "y2"):
        nodes.append(helper.make_node("Cast", [n + "i"], [n + "f"], to=f))
    nodes += [
        helper.make_node("Add", ["x2f", "one"], ["x2"]),
        helper.make_node("Add", ["y2f", "one"], ["y2"]),
        helper.make_node("Mul", ["anyb", "score"], ["s"]),                            # (N, 1)
        helper.make_node("Mul", ["anyb", "zero"], ["z"]),
    ]
    if layout == "end2end":
        cols = ["x1f", "y1f", "x2", "y2", "s", "z"]
    else:
        nodes += [helper.make_node("Add", ["x1f", "x2"], ["sx"]), helper.make_node("Mul", ["sx", "half"], ["cx"]),
                  helper.make_node("Add", ["y1f", "y2"], ["sy"]), helper.make_node("Mul", ["sy", "half"], ["cy"]),
                  helper.make_node("Sub", ["x2", "x1f"], ["bw"]), helper.make_node("Sub", ["y2", "y1f"], ["bh"])]
        cols = ["cx", "cy", "bw", "bh"] + (["anyb"] if layout == "v5" else []) + ["s"] + ["z"] * (classes - 1)
        if layout == "v5":
            cols = ["cx", "cy", "bw", "bh", "anyb", "score_n"] + ["z"] * (classes - 1)
            nodes.append(helper.make_node("Mul", ["anyb", "score"], ["score_n"]))
    nodes.append(helper.make_node("Concat", cols, ["row0"], axis=1))                  # (N, K)
    k = len(cols)
    if layout == "v8":
        nodes += [helper.make_node("Unsqueeze", ["row0", "ax2"], ["r3"]),             # (N, K, 1)
                  helper.make_node("Pad", ["r3", "pads"], ["out"])]
        pads = [0, 0, 0, 0, 0, anchors - 1]
        oshape = [N, k, anchors]
    else:
        nodes += [helper.make_node("Unsqueeze", ["row0", "ax1"], ["r3"]),             # (N, 1, K)
                  helper.make_node("Pad", ["r3", "pads"], ["out"])]
        pads = [0, 0, 0, 0, anchors - 1, 0]
        oshape = [N, anchors, k]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "ax1"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             numpy_helper.from_array(np.array(threshold, np.float32), "thr"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             numpy_helper.from_array(np.array(0.9, np.float32), "score"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(pads, np.int64), "pads")]
    g = helper.make_graph(nodes, "bright_box", [helper.make_tensor_value_info("x", f, [N, 3, H, W])],
                          [helper.make_tensor_value_info("out", f, oshape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    for key, value in (metadata or {}).items():
        m.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path
