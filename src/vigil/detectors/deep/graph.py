"""A deep model's network as an ONNX graph: the check that lets a graph read from a model file
reach onnxruntime, and the session that scores it.

A graph is refused unless every operator is from the standard ONNX domains (no custom ops,
which would need code loaded from elsewhere), it holds no external data (a tensor stored as a
path to another file, which onnxruntime would open), no local functions and exactly the input
and output vigil exports: ``windows`` (float32, batch x window x channels) and ``error``
(float32, the same shape: each value's error).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil._optional import require
from vigil.errors import ModelFileError

#: The only operator domains a graph may use: the default ONNX operator set.
STANDARD_DOMAINS = ("", "ai.onnx")
INPUT, OUTPUT = "windows", "error"
#: Windows are given to onnxruntime in batches of a multiple of this (see :func:`run`).
BATCH_MULTIPLE = 16


def check_graph(data: bytes, name: str, window: int, channels: int) -> None:
    """Refuse (ModelFileError) a graph that is not a plain ONNX network of the expected shape.

    ``onnx`` parses the protobuf bytes (data, no code) so nothing reaches onnxruntime before
    the check passes.
    """
    onnx = require("onnx", "onnx", "scoring a deep model")
    try:
        model = onnx.load_from_string(bytes(data))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"graph {name!r} is not a readable ONNX model ({exc})") from None
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise ModelFileError(f"graph {name!r} imports the operator domain "
                                 f"{opset.domain[:60]!r}: only standard ONNX operators are "
                                 "allowed (custom ops would run code from outside the file)")
    if len(model.functions):
        raise ModelFileError(f"graph {name!r} defines local functions; vigil graphs have none")
    _check_nodes(model.graph, name, onnx)
    _check_signature(model.graph, name, window, channels)


def _check_nodes(graph: Any, name: str, onnx: Any) -> None:
    external = onnx.TensorProto.EXTERNAL
    tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        if node.domain not in STANDARD_DOMAINS:
            raise ModelFileError(f"graph {name!r}: node {node.op_type[:40]!r} is from the domain "
                                 f"{node.domain[:60]!r}; only standard ONNX operators are allowed")
        for attribute in node.attribute:
            if attribute.HasField("t"):
                tensors.append(attribute.t)
            tensors.extend(attribute.tensors)
            for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else \
                    attribute.graphs:
                _check_nodes(sub, name, onnx)
    for tensor in tensors:
        if tensor.data_location == external or len(tensor.external_data):
            raise ModelFileError(f"graph {name!r}: tensor {tensor.name[:60]!r} points to external "
                                 "data (a path outside the model file); refusing it")


def _check_signature(graph: Any, name: str, window: int, channels: int) -> None:
    def dims(value: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else None
                for d in value.type.tensor_type.shape.dim]

    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if [i.name for i in inputs] != [INPUT] or [o.name for o in graph.output] != [OUTPUT]:
        raise ModelFileError(f"graph {name!r} must take {INPUT!r} and give {OUTPUT!r}; it takes "
                             f"{[i.name[:40] for i in inputs]} and gives "
                             f"{[o.name[:40] for o in graph.output]}")
    wanted = [window, channels]
    if dims(inputs[0])[1:] != wanted or dims(graph.output[0])[1:] != wanted:
        raise ModelFileError(f"graph {name!r} takes windows of shape {dims(inputs[0])[1:]} and "
                             f"gives {dims(graph.output[0])[1:]}; the model needs {wanted} for "
                             "both: the file is damaged")


def session(data: bytes) -> Any:
    """An onnxruntime session on the CPU for a checked graph."""
    ort = require("onnxruntime", "onnx", "scoring a deep model")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no notes on stderr for every model
    return ort.InferenceSession(bytes(data), options, providers=["CPUExecutionProvider"])


def run(sess: Any, windows: np.ndarray) -> np.ndarray:
    """The graph's ``error`` for ``windows`` (float32, batch x window x channels).

    The batch is padded (with zero windows) to a multiple of ``BATCH_MULTIPLE``: onnxruntime's
    matrix kernels round a row differently when it falls in a short tail of the batch
    (measured: batches of 1, 2, 3, 5, ... rows, 255 or 903 rows give other last bits), so
    without padding a window's score would depend on how many windows it was scored with,
    and chunked scores would not equal whole ones.
    """
    n = len(windows)
    padded = -n % BATCH_MULTIPLE
    batch = np.empty((n + padded, *windows.shape[1:]), dtype=np.float32)
    batch[:n] = windows
    batch[n:] = 0.0
    return sess.run([OUTPUT], {INPUT: batch})[0][:n]
