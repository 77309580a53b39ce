"""Joint network fusion semantics and the exported bundle graph (real ONNX Runtime sessions)."""

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch

from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME, OUTPUT_NAMES, load_metadata
from vantage.geometry import axis_angle_to_rotation
from vantage.train.model import JointPoseNet, ModelConfig, fusion_weights, top1_weights
from vantage.export.onnx_export import check_parity, export_bundle, ort_session


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = JointPoseNet(ModelConfig(pretrained=False))
    # give BN layers non-trivial statistics so parity is not checked on a degenerate net
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 3, 128, 128), torch.zeros(8, 12))
    return m.eval()


def test_fusion_weights_follow_eq1_eq2_and_the_hint():
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    none = torch.zeros(2, 3)
    assert torch.allclose(fusion_weights(probs, none, "weighted"), probs)
    assert torch.equal(top1_weights(probs), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    hint = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    w = fusion_weights(probs, hint, "top1")
    assert torch.equal(w, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))


def test_forward_shapes_and_known_category_uses_its_head(model):
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        feats = model.features(x)
        _, heads = model.forward_features(feats)
        hint = torch.zeros(3, 12)
        hint[torch.arange(3), torch.tensor([4, 0, 11])] = 1
        probs, y, rot, emb, _, _ = model(x, hint)
    assert probs.shape == (3, 12) and torch.allclose(probs.sum(1), torch.ones(3))
    assert torch.allclose(y, heads.axis_angle[torch.arange(3), torch.tensor([4, 0, 11])], atol=1e-6)
    assert rot.shape == (3, 3, 3) and emb.shape == (3, model.embedding_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    np.testing.assert_allclose(rot.numpy(), axis_angle_to_rotation(y.double().numpy()), atol=1e-5)


def test_export_bundle_parity_metadata_and_determinism(model, tmp_path):
    a = export_bundle(model, tmp_path / "a", training={"note": "test"})
    b = export_bundle(model, tmp_path / "b", training={"note": "test"})
    onnx_a, onnx_b = (a / "model.onnx").read_bytes(), (b / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx_a).digest() == hashlib.sha256(onnx_b).digest(), "same model → same bytes"

    meta = load_metadata(a)
    assert meta.categories[0] == "aeroplane" and meta.input_size == 128 and meta.embedding_dim == model.embedding_dim
    proto = onnx.load(str(a / "model.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["vantage"])["categories"] == meta.categories
    assert [i.name for i in proto.graph.input] == [INPUT_NAME, INPUT_HINT_NAME]
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    ops = {n.op_type for n in proto.graph.node}
    assert "ArgMax" not in ops and "Softmax" in ops

    sess = ort_session(a / "model.onnx")
    for n in (1, 5):  # dynamic batch
        outs = sess.run(None, {INPUT_NAME: np.zeros((n, 3, 128, 128), np.float32), INPUT_HINT_NAME: np.zeros((n, 12), np.float32)})
        assert outs[2].shape == (n, 3, 3)
    rng = np.random.default_rng(5)
    imgs = rng.normal(size=(6, 3, 128, 128)).astype(np.float32)
    hints = np.zeros((6, 12), np.float32)
    hints[3, 7] = 1
    diffs = check_parity(model, a / "model.onnx", imgs, hints)
    assert diffs["rotation"] < 1e-4 and diffs["category_probs"] < 1e-4
