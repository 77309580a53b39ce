"""The operators a Vantage graph may use: those TensorRT 10 and ONNX Runtime both run well.

Users deploy the same `model.onnx` on ONNX Runtime (CPU) and on TensorRT (GPU,
Jetson), so the exporter refuses a graph with any operator outside this list at
export time, naming the operator and its node, instead of letting a TensorRT
build fail on the user's device. The element types are those of the ONNX-TensorRT
10.x operator support matrix for the operator's first input (for `Where`: its
condition). ONNX Runtime's CPU provider runs all of them in float32.
MaxPool (ResNet-50's stage 1) is allowed with its pooled output only: TensorRT
does not produce the optional Indices output.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import TensorProto

_FLOAT = frozenset({"FLOAT", "FLOAT16", "BFLOAT16"})
_NUMERIC = _FLOAT | {"INT32", "INT64"}
_ANY = _NUMERIC | {"BOOL", "INT8", "UINT8"}

# op type → element types TensorRT 10 accepts for its first input.
ALLOWED_OPS: dict[str, frozenset[str]] = {
    **{op: _FLOAT for op in (
        "Acos", "Asin", "Atan", "AveragePool", "BatchNormalization", "Clip", "Conv", "Cos", "Erf", "Exp",
        "Gemm", "GlobalAveragePool", "HardSigmoid", "HardSwish", "LeakyRelu", "Log", "LogSoftmax", "MatMul",
        "MaxPool", "Pow", "Reciprocal", "ReduceL2", "ReduceMean", "Relu", "Sigmoid", "Sin", "Softmax", "Sqrt",
        "Tanh", "QuantizeLinear",
    )},
    **{op: _NUMERIC for op in (
        "Abs", "Add", "Div", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Min",
        "Mul", "Neg", "Pad", "ReduceMax", "ReduceMin", "ReduceSum", "Sub", "Sum",
    )},
    **{op: _ANY for op in (
        "Cast", "Concat", "Constant", "ConstantOfShape", "Expand", "Flatten", "Gather", "Identity", "Reshape",
        "Shape", "Slice", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze",
    )},
    "Where": frozenset({"BOOL"}),
    "Not": frozenset({"BOOL"}),
    "And": frozenset({"BOOL"}),
    "Or": frozenset({"BOOL"}),
    "DequantizeLinear": frozenset({"INT8"}),
}

# Why some operators that exporters like to emit are refused (shown in the error).
REFUSED_BECAUSE: dict[str, str] = {
    "ArgMax": "TensorRT mishandles ArgMax on some versions; select with a comparison one-hot "
    "(vantage.train.model.top1_weights) or a Gather",
    "ArgMin": "same as ArgMax: select with a comparison one-hot or a Gather",
    "NonZero": "data-dependent output shape; TensorRT needs static shapes per profile",
    "If": "data-dependent control flow; compute both branches and use Where",
    "Loop": "data-dependent control flow; unroll it in the model",
    "ConvInteger": "not supported by TensorRT, and 10-20x slower on ONNX Runtime (MEASURED.md)",
    "MatMulInteger": "not supported by TensorRT",
    "DynamicQuantizeLinear": "not supported by TensorRT",
}


class UnsupportedOpError(ValueError):
    """The graph uses an operator (or element type) outside the allow-list."""


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """All nodes of a graph, including those of subgraphs (If/Loop bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from iter_nodes(sub)


def _element_types(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor name → element type name, from shape inference, inputs and initializers."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.value_info, *g.input, *g.output)}
    types.update({init.name: init.data_type for init in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return {name: TensorProto.DataType.Name(t) for name, t in types.items() if t}


def violations(model: onnx.ModelProto) -> list[str]:
    """One line per node outside the allow-list (operator or its input's element type); empty if none."""
    types = _element_types(model)
    found = []
    for node in iter_nodes(model.graph):
        where = f"node {node.name or '(unnamed)'}"
        if node.domain not in ("", "ai.onnx") or node.op_type not in ALLOWED_OPS:
            op = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
            reason = REFUSED_BECAUSE.get(node.op_type, "not in the TensorRT / ONNX Runtime allow-list")
            found.append(f"{op} ({where}): {reason}")
            continue
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            found.append(f"MaxPool with Indices ({where}): TensorRT computes the pooled output only")
            continue
        first = types.get(node.input[0]) if node.input and node.input[0] else None
        if first is not None and first not in ALLOWED_OPS[node.op_type]:
            allowed = ", ".join(sorted(ALLOWED_OPS[node.op_type]))
            found.append(f"{node.op_type} on {first} ({where}): TensorRT accepts {allowed}")
    return found


def check_ops(model: onnx.ModelProto, what: str = "graph") -> None:
    """Raise UnsupportedOpError naming every offending operator; a no-op for a clean graph."""
    found = violations(model)
    if found:
        shown = "\n  ".join(found[:20]) + (f"\n  ... and {len(found) - 20} more" if len(found) > 20 else "")
        raise UnsupportedOpError(
            f"{what} uses operators outside the TensorRT / ONNX Runtime allow-list (vantage/export/ops.py):\n  {shown}"
        )
