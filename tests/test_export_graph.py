"""The exported graph for the edge: allow-listed operators, opset, simplification, parity for any contract model."""

import warnings

import numpy as np
import onnx
import pytest
import torch
from export_fixtures import ContractModel, joint_model
from onnx import TensorProto, helper

from vantage.bundle import load_metadata
from vantage.export.onnx_export import OPSET, check_parity, export_bundle, parity_inputs
from vantage.export.ops import UnsupportedOpError, check_ops, violations

FACTORIES = {
    "joint-weighted": lambda: joint_model("weighted"),
    "joint-top1": lambda: joint_model("top1"),
    "contract-model": lambda: ContractModel(),
}


def _export(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(model, path)


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def exported(request, tmp_path_factory):
    model = FACTORIES[request.param]()
    bundle = _export(model, tmp_path_factory.mktemp(request.param))
    return request.param, model, bundle, onnx.load(str(bundle / "model.onnx"))


def test_graph_uses_only_allow_listed_operators(exported):
    name, _, _, proto = exported
    assert violations(proto) == []
    ops = {n.op_type for n in proto.graph.node}
    assert "ArgMax" not in ops and {"Softmax", "Sin", "Cos"} <= ops
    if name != "joint-weighted":  # top-1 selection is a comparison against the row maximum
        assert {"ReduceMax", "GreaterOrEqual"} <= ops


def test_graph_is_simplified_and_records_its_opset(exported):
    _, _, bundle, proto = exported
    meta = load_metadata(bundle)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET] == [meta.opset]
    nodes = meta.training["graph_nodes"]
    assert nodes["simplified"] == len(proto.graph.node) < nodes["exported"]
    assert not {"Identity", "Constant", "Pad"} & {n.op_type for n in proto.graph.node}, "folded by onnxslim"
    for value in (*proto.graph.input, *proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_simplified_graph_matches_pytorch_with_and_without_hint(exported):
    _, model, bundle, _ = exported
    meta = load_metadata(bundle)
    images, hints = parity_inputs(len(meta.categories), meta.input_size,
                                  np.random.default_rng(3).normal(size=(5, 3, meta.input_size, meta.input_size)))
    assert hints.sum(1).min() == 0 and hints.sum(1).max() == 1, "both the unknown and the known-category branch"
    diffs = check_parity(model, bundle / "model.onnx", images, hints)
    assert diffs["rotation"] < 1e-4 and diffs["category_probs"] < 1e-5 and diffs["embedding"] < 1e-4


def test_exporter_refuses_argmax_naming_the_node(tmp_path):
    with pytest.raises(UnsupportedOpError, match=r"ArgMax \(node /ArgMax[^)]*\): TensorRT mishandles"):
        _export(ContractModel(select="argmax"), tmp_path / "b")
    assert not (tmp_path / "b" / "model.onnx").exists()


def _graph(op: str, in_type: int, out_type: int, n_inputs: int = 2) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(n_inputs)]
    inputs = [helper.make_tensor_value_info(n, in_type, [2]) for n in names]
    node = helper.make_node(op, names, ["y"], name=f"/{op}")
    out = helper.make_tensor_value_info("y", out_type, [2])
    return helper.make_model(helper.make_graph([node], "g", inputs, [out]), opset_imports=[helper.make_opsetid("", OPSET)])


def test_element_types_follow_tensorrt_support_matrix():
    where = helper.make_graph(
        [helper.make_node("Where", ["c", "a", "b"], ["y"], name="/Where")], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [2]),
         *(helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in "ab")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    check_ops(helper.make_model(where, opset_imports=[helper.make_opsetid("", OPSET)]))
    check_ops(_graph("Equal", TensorProto.INT64, TensorProto.BOOL))
    assert violations(_graph("Equal", TensorProto.BOOL, TensorProto.BOOL)) == [
        "Equal on BOOL (node /Equal): TensorRT accepts BFLOAT16, FLOAT, FLOAT16, INT32, INT64"
    ]
    assert violations(_graph("Add", TensorProto.DOUBLE, TensorProto.DOUBLE))[0].startswith("Add on DOUBLE")
    with pytest.raises(UnsupportedOpError, match="Hardmax"):
        check_ops(_graph("Hardmax", TensorProto.FLOAT, TensorProto.FLOAT, n_inputs=1))


def test_maxpool_is_allowed_without_its_indices_output():
    pool = _graph("MaxPool", TensorProto.FLOAT, TensorProto.FLOAT, n_inputs=1)
    check_ops(pool)
    pool.graph.node[0].output.append("indices")
    assert violations(pool) == ["MaxPool with Indices (node /MaxPool): TensorRT computes the pooled output only"]


def test_resnet50_bundle_exports_and_matches_pytorch(tmp_path):
    """ResNet-50's stage 1 has a MaxPool; 32² crops keep the (random-init) export to seconds."""
    from vantage.train.model import JointPoseNet, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(categories=["car", "chair"], input_size=32, head_hidden=(16, 8), pretrained=False,
                      backbone="resnet50", tap=4)
    model = JointPoseNet(cfg).eval()
    bundle = _export(model, tmp_path / "resnet50")
    assert "MaxPool" in {n.op_type for n in onnx.load(str(bundle / "model.onnx")).graph.node}
    images, hints = parity_inputs(2, 32)
    diffs = check_parity(model, bundle / "model.onnx", images, hints)
    assert diffs["rotation"] < 1e-4 and diffs["category_probs"] < 1e-5 and diffs["embedding"] < 1e-4


@pytest.mark.slow
def test_every_pose_head_type_exports_within_the_allow_list():
    heads = pytest.importorskip("vantage.train.heads")
    from vantage.export.onnx_export import simplify, to_onnx_bytes
    from vantage.train.model import JointPoseNet, ModelConfig

    for head in heads.HEAD_TYPES:
        cfg = ModelConfig(categories=["car", "chair"], input_size=64, head_hidden=(16, 8), pretrained=False,
                          head=head, num_bins=4, fusion="top1")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = simplify(onnx.load_from_string(to_onnx_bytes(JointPoseNet(cfg))))
        assert violations(proto) == [], head
