"""Part of a graph in float16: chosen nodes compute in half precision, everything else stays float32.

onnxruntime's `convert_float_to_float16(node_block_list=...)` rounds every blocked
node's output through float16 anyway (and names its casts twice), which would put
the fusion and Rodrigues in half precision after all; so the conversion is done
here, on an explicit node selection: float inputs of selected nodes coming from
float32 nodes or graph inputs get a Cast to float16, and selected outputs read by
float32 nodes or graph outputs get a Cast back. The graph's inputs and outputs keep
float32. Operators with inputs that must stay float32 whatever the data type
(e.g. Resize scales) are not handled: the backbones exported here have none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_F32, _F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of float32 tensors, from shape inference, initializers and Constant nodes."""
    g = onnx.shape_inference.infer_shapes(model).graph
    names = {vi.name for vi in (*g.value_info, *g.input, *g.output) if vi.type.tensor_type.elem_type == _F32}
    names |= {init.name for init in g.initializer if init.data_type == _F32}
    for node in g.node:
        if node.op_type == "Constant" and any(a.name == "value" and a.t.data_type == _F32 for a in node.attribute):
            names.add(node.output[0])
    return names


def _half_attributes(node: onnx.NodeProto) -> None:
    """A selected node's own float32 constants (Constant, ConstantOfShape, Cast target) become float16."""
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == _F32:
            attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
        elif node.op_type == "Cast" and attr.name == "to" and attr.i == _F32:
            attr.i = _F16


def convert_to_fp16(model: onnx.ModelProto, in_fp16: Callable[[onnx.NodeProto], bool]) -> onnx.ModelProto:
    """A copy of `model` whose nodes selected by `in_fp16` compute in float16 (inputs/outputs stay float32)."""
    floats = _float_tensors(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {init.name: init for init in g.initializer}
    selected = [in_fp16(n) for n in g.node]
    half_made = {o for n, s in zip(g.node, selected) if s for o in n.output if o in floats}
    read_as_f32 = {o.name for o in g.output} | {
        i for n, s in zip(g.node, selected) if not s for i in n.input
    }
    half_name: dict[str, str] = {}  # float32 tensor → its float16 twin
    nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    for node, is_half in zip(list(g.node), selected):
        if not is_half:
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            if name not in floats:
                continue
            if name not in half_name and name not in half_made:
                half_name[name] = f"{name}__fp16"
                if name in inits:
                    half = numpy_helper.to_array(inits[name]).astype(np.float16)
                    new_inits.append(numpy_helper.from_array(half, half_name[name]))
                else:
                    nodes.append(helper.make_node("Cast", [name], [half_name[name]], name=f"{name}__to_fp16", to=_F16))
            node.input[i] = half_name.get(name, name)
        _half_attributes(node)
        nodes.append(node)
        for i, name in enumerate(node.output):
            if name in half_made and name in read_as_f32:
                half_name[name] = node.output[i] = f"{name}__fp16"
                nodes.append(helper.make_node("Cast", [half_name[name]], [name], name=f"{name}__to_fp32", to=_F32))
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    kept = [init for init in g.initializer if init.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.value_info[:]  # stale element types; ONNX Runtime re-infers them
    onnx.checker.check_model(out)
    return out
