"""Pose heads of both Mahendran et al. papers: key poses, losses, fusion, gradients and exported graphs."""

import warnings

import numpy as np
import pytest
import torch

from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME
from vantage.export.onnx_export import export_bundle, ort_session
from vantage.geometry import axis_angle_to_rotation, geodesic_distance, rotation_to_viewpoint, viewpoint_to_rotation
from vantage.train.geometry_torch import canonical_axis_angle, compose_axis_angle
from vantage.train.heads import HeadOutput, fuse, per_category
from vantage.train.keyposes import kmeans, pose_targets, soft_assignment
from vantage.train.losses import Targets, joint_loss
from vantage.train.model import JointPoseNet, ModelConfig
from vantage.train.trainer import mirror_rotation

CATS = ["car", "chair", "boat"]
BINS = 6


def _rotations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return viewpoint_to_rotation(rng.uniform(0, 360, n), rng.uniform(-20, 60, n), rng.normal(0, 8, n))


def _model(head: str, per_bin: bool = False, dependent: bool = True) -> tuple[JointPoseNet, Targets]:
    torch.manual_seed(0)
    cfg = ModelConfig(categories=list(CATS), input_size=64, head_hidden=(32, 16), pretrained=False, head=head,
                      num_bins=BINS, per_bin_delta=per_bin, category_dependent=dependent)
    model = JointPoseNet(cfg)
    rots = _rotations(48)
    centres = kmeans(pose_targets(rots, np.zeros((1, 3)), 1.0).axis_angle, BINS)
    if model.key_poses is not None:
        model.set_key_poses(centres)
    t = pose_targets(rots, centres, 2.0)
    targets = Targets(torch.tensor(rots, dtype=torch.float32),
                      *(torch.from_numpy(getattr(t, f)) for f in Targets._fields[1:]))
    return model, targets


def test_kmeans_key_poses_and_targets_follow_eq5_eq8_eq9():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    pts = np.concatenate([c + 0.05 * rng.normal(size=(30, 3)) for c in centres])
    found = kmeans(pts, 3, seed=0)
    assert np.allclose(np.sort(found[:, 0]), np.sort(centres[:, 0]), atol=0.05)
    assert np.array_equal(found, kmeans(pts, 3, seed=0)), "deterministic from its seed"
    p = soft_assignment(pts, found, gamma=4.0)
    assert np.allclose(p.sum(1), 1) and np.array_equal(p.argmax(1), ((pts[:, None] - found) ** 2).sum(-1).argmin(1))

    rots = _rotations(40)
    key = kmeans(pose_targets(rots, np.zeros((1, 3)), 1.0).axis_angle, 5)
    t = pose_targets(rots, key, 1.0)
    assert np.allclose(key[t.label] + t.delta_simple, t.axis_angle, atol=1e-5)  # Eq. 5
    back = axis_angle_to_rotation(key[t.label]) @ axis_angle_to_rotation(t.delta_log.astype(np.float64))
    assert geodesic_distance(back, rots).max() < 1e-3  # Eq. 7–8: R = R̃_l exp(δ)


def test_quaternion_log_maps_match_numpy():
    v = torch.randn(200, 3, dtype=torch.float64) * 2.5
    c = canonical_axis_angle(v)
    assert float(c.norm(dim=1).max()) <= np.pi + 1e-9
    assert np.allclose(axis_angle_to_rotation(c.numpy()), axis_angle_to_rotation(v.numpy()), atol=1e-9)
    a, b = torch.randn(200, 3, dtype=torch.float64), 0.3 * torch.randn(200, 3, dtype=torch.float64)
    want = axis_angle_to_rotation(a.numpy()) @ axis_angle_to_rotation(b.numpy())
    assert np.allclose(axis_angle_to_rotation(compose_axis_angle(a, b).numpy()), want, atol=1e-9)


def test_mirror_rotation_negates_azimuth_and_theta():
    r = viewpoint_to_rotation(np.array([30.0]), np.array([20.0]), np.array([10.0]))
    a, e, t = rotation_to_viewpoint(mirror_rotation(r))
    assert np.allclose([a[0] % 360, e[0], t[0]], [330.0, 20.0, -10.0], atol=1e-6)


def test_bin_fusion_mixes_probabilities_and_deltas_per_category():
    bins = torch.randn(2, 3, BINS)
    delta = torch.randn(2, 3, BINS, 3)
    w = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    f = fuse(HeadOutput(bins=bins, delta=delta), w)
    assert torch.allclose(f.bins, (torch.softmax(bins, -1) * w[..., None]).sum(1))
    assert torch.allclose(f.delta, (delta * w[..., None, None]).sum(1))
    own = per_category(HeadOutput(bins=bins, delta=delta))
    assert torch.allclose(f.bins[1], own.bins[1, 2]) and torch.allclose(f.delta[1], own.delta[1, 2])


def test_category_independent_head_has_the_same_size():
    for head in ("regression_g", "bd_g"):
        dep, _ = _model(head)
        ind, _ = _model(head, dependent=False)
        n_dep = sum(p.numel() for p in dep.pose_heads.parameters())
        n_ind = sum(p.numel() for p in ind.pose_heads.parameters())
        assert len(ind.pose_heads) == 1 and abs(n_ind - n_dep) / n_dep < 0.05


VARIANTS = [
    ("regression_g", False, True), ("regression_e", False, False), ("classification", False, True),
    ("bd_s", False, True), ("bd_g", True, True), ("bd_le", False, False), ("bd_le", True, True),
    ("bd_p", False, True), ("bd_p", True, False), ("bd_g", False, False), ("bd_s", True, True),
]


@pytest.mark.parametrize("head,per_bin,dependent", VARIANTS)
def test_head_losses_gradients_and_export_parity(head, per_bin, dependent, tmp_path):
    model, t = _model(head, per_bin, dependent)
    model.train()
    feats = model.features(torch.randn(48, 3, 64, 64)).detach()
    logits, out = model.forward_features(feats)
    cat = torch.arange(48) % 3
    for oracle in (True, False):
        pose, ce, err = joint_loss(model, logits, out, t, cat, oracle, alpha=1.0)
        assert torch.isfinite(pose) and torch.isfinite(ce) and 0 <= float(err) <= np.pi
    (pose + 0.1 * ce).backward()
    head_grads = [p.grad for p in model.pose_heads.parameters()]
    assert all(g is not None for g in head_grads) and any(float(g.abs().sum()) > 0 for g in head_grads)
    assert float(model.trunk[0]._project_conv.weight.grad.abs().sum()) > 0, "pose loss reaches the trunk"

    model.eval()
    x = torch.randn(4, 3, 64, 64)
    hint = torch.zeros(4, 3)
    hint[1, 2] = 1
    with torch.no_grad():
        probs, y, rot, emb, hyps, scores = model(x, hint)
        _, raw = model.forward_features(model.features(x))
        own_y, _ = model.decode(per_category(raw))
    assert probs.shape == (4, 3) and y.shape == (4, 3) and rot.shape == (4, 3, 3) and emb.shape[0] == 4
    assert float(y.norm(dim=1).max()) <= np.pi + 1e-5
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-5)
    assert torch.allclose(y[1], own_y[1, 2], atol=1e-5), "a known category uses its own head"
    assert torch.equal(hyps[:, 0], y) and bool((scores >= 0).all()) and float(scores.sum(1).max()) <= 1 + 1e-5
    if head == "classification":
        assert torch.cdist(y, model.key_poses).min(1).values.max() < 1e-5, "C predicts a key pose"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_bundle(model, tmp_path / "b")
    sess = ort_session(bundle / "model.onnx")
    got = sess.run(None, {INPUT_NAME: x.numpy(), INPUT_HINT_NAME: hint.numpy()})
    assert np.abs(got[2] - rot.numpy()).max() < 1e-4 and np.abs(got[0] - probs.numpy()).max() < 1e-4
    if model.key_poses is not None:  # the dictionary travels with the checkpoint state
        assert torch.equal(model.state_dict()["key_poses"], model.key_poses)


def _pose_model(**options) -> JointPoseNet:
    torch.manual_seed(0)
    return JointPoseNet(ModelConfig(categories=list(CATS), input_size=64, head_hidden=(32, 16), pretrained=False,
                                    head="bd_p", num_bins=BINS, per_bin_delta=True, **options))


def _assert_exports_with_parity(model: JointPoseNet, folder) -> None:
    """The model (in eval mode) exports to a bundle whose ONNX rotations match PyTorch's within 1e-4."""
    x, hint = torch.randn(3, 3, 64, 64), torch.zeros(3, 3)
    with torch.no_grad():
        rot = model(x, hint)[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_bundle(model, folder)
    got = ort_session(bundle / "model.onnx").run(None, {INPUT_NAME: x.numpy(), INPUT_HINT_NAME: hint.numpy()})
    assert np.abs(got[2] - rot.numpy()).max() < 1e-4


def test_pose_skip_feeds_the_tap_activations_to_the_heads_and_exports(tmp_path):
    model = _pose_model(pose_skip=True)
    trunk_channels = model.trunk[-1]._block_args.output_filters
    assert model.pose_reduce[0].in_channels == trunk_channels + model.features.out_channels
    model.set_key_poses(kmeans(pose_targets(_rotations(48), np.zeros((1, 3)), 1.0).axis_angle, BINS))
    model.eval()
    feats = model.features(torch.randn(4, 3, 64, 64)).detach().requires_grad_(True)
    _, out = model.forward_features(feats)
    skip = torch.autograd.grad(out.bins.sum(), feats)[0]
    # the skip is a path around the trunk: with the trunk's own path cut, the tap still moves the bins
    with torch.no_grad():
        model.trunk[-1]._project_conv.weight.zero_()
    _, cut = model.forward_features(feats)
    assert float(torch.autograd.grad(cut.bins.sum(), feats)[0].abs().sum()) > 0 and float(skip.abs().sum()) > 0

    _assert_exports_with_parity(model, tmp_path / "skip")


def test_a_shared_head_input_feeds_every_category_head_learns_from_each_and_exports(tmp_path):
    model = _pose_model(shared_head_input=24)
    plain = _pose_model()
    assert all(h.net[0].in_features == 24 and h.delta[0].in_features == 24 for h in model.pose_heads)
    assert model.head_input[0].in_features == plain.pose_heads[0].net[0].in_features
    assert plain.head_input is None and not any(k.startswith("head_input.") for k in plain.state_dict())
    model.set_key_poses(kmeans(pose_targets(_rotations(48), np.zeros((1, 3)), 1.0).axis_angle, BINS))
    feats = model.features(torch.randn(6, 3, 64, 64)).detach()
    model.train()
    _, out = model.forward_features(feats)
    assert out.bins.shape == (6, len(CATS), BINS) and out.delta.shape == (6, len(CATS), BINS, 3)
    shared = model.head_input[0].weight
    for c in range(len(CATS)):  # the one layer learns from every category's loss, not from one head's
        assert float(torch.autograd.grad(out.bins[:, c].sum(), shared, retain_graph=True)[0].abs().sum()) > 0

    model.eval()
    _assert_exports_with_parity(model, tmp_path / "shared")
    with pytest.raises(ValueError, match="shared_head_input must be 0"):
        ModelConfig(shared_head_input=-1)


def test_pose_dropout_acts_in_training_only_and_keeps_the_checkpoint_layout():
    model = _pose_model(pose_dropout=0.5)
    plain = _pose_model()
    assert set(model.state_dict()) == set(plain.state_dict()), "checkpoints without dropout still load"
    feats = model.features(torch.randn(8, 3, 64, 64)).detach()
    model.train()
    a, b = model.forward_features(feats)[1].bins, model.forward_features(feats)[1].bins
    assert not torch.allclose(a, b), "dropout draws a new mask per pass in training"
    plain.load_state_dict(model.state_dict())  # with the batch statistics the training passes updated
    model.eval(), plain.eval()
    assert torch.allclose(model.forward_features(feats)[1].bins, plain.forward_features(feats)[1].bins)
    with pytest.raises(ValueError, match="pose_dropout"):
        ModelConfig(pose_dropout=1.0)


def test_category_label_smoothing_spreads_the_cross_entropy_target_and_leaves_the_pose_loss():
    model, t = _model("bd_p", True, True)
    feats = model.features(torch.randn(48, 3, 64, 64)).detach()
    logits, out = model.forward_features(feats)
    cat = torch.arange(48) % 3
    pose, ce, _ = joint_loss(model, logits, out, t, cat, True, alpha=1.0)
    pose_s, ce_s, _ = joint_loss(model, logits, out, t, cat, True, alpha=1.0, smoothing=0.3)
    log_p = torch.log_softmax(logits, 1)
    uniform = -log_p.mean(1).mean()
    assert torch.allclose(ce_s, 0.7 * ce + 0.3 * uniform, atol=1e-5)
    assert torch.equal(pose, pose_s), "the oracle-fused pose loss does not see the category target"
    sure = torch.full((48, 3), -20.0)
    sure[torch.arange(48), cat] = 20.0  # certain and right: nothing to learn without smoothing, much with it
    assert float(joint_loss(model, sure, out, t, cat, True, 1.0)[1]) < 1e-6
    assert float(joint_loss(model, sure, out, t, cat, True, 1.0, smoothing=0.1)[1]) > 1.0
