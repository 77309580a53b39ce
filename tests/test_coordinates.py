"""Object-coordinate maps: rendered exactly, pooled over the network's crop, mirrored with it, and learned."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vantage.geometry import camera_position
from vantage.train.coordinates import (coordinate_target, mirror_target, missing_target, read_coordinates,
                                       write_coordinates)
from vantage.train.data import crop_and_box, crop_coordinates, read_samples
from vantage.train.losses import coordinate_loss
from vantage.train.meshes import builtin_specs
from vantage.train.model import JointPoseNet, ModelConfig
from vantage.train.render import RenderConfig, render_dataset
from vantage.train.trainer import TrainConfig, _cache_key, cached_features, train, training_samples

CATS = ["car", "chair"]


@pytest.fixture(scope="module")
def coord_renders(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coord_renders")
    render_dataset(builtin_specs(2, CATS), out, RenderConfig(views_per_model=4, seed=5, coordinates=True),
                   workers=1, progress=False)
    return out


def test_each_pixel_of_the_map_is_the_object_point_its_ray_meets(coord_renders):
    records = [json.loads(line) for line in (coord_renders / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 16 and all((coord_renders / r["coords"]).is_file() for r in records)
    for r in records[::3]:
        coords = read_coordinates(coord_renders / r["coords"])
        mask = cv2.imread(str(coord_renders / r["mask"]), cv2.IMREAD_GRAYSCALE) >= 128
        rotation, K = np.reshape(r["rotation"], (3, 3)), np.reshape(r["K"], (3, 3))
        centre = r["distance"] * np.asarray(camera_position(r["azimuth"], r["elevation"]))
        v, u = np.nonzero(mask)
        points = coords[v, u]
        assert np.linalg.norm(points, axis=1).max() <= 1.0 + 0.02  # POSE.md's normalised frame
        cam = rotation @ (points - centre).T
        uv = (K @ cam)[:2] / cam[2]
        err = np.hypot(uv[0] - (u + 0.5), uv[1] - (v + 0.5))
        assert np.median(err) < 0.5 and np.percentile(err, 95) < 1.0  # within the 8-bit code's precision
        assert np.abs(coords[~mask]).max() < 0.01


def test_maps_are_refused_for_cropped_renders_and_absent_unless_asked(tmp_path):
    with pytest.raises(ValueError, match="uncropped views only"):
        RenderConfig(coordinates=True, crop="square")
    render_dataset(builtin_specs(1, ["car"]), tmp_path, RenderConfig(views_per_model=2), workers=1, progress=False)
    assert not (tmp_path / "coords").exists()
    sample = read_samples(tmp_path, ["car"])[0]
    assert sample.coords_path is None
    target = crop_coordinates(sample, sample.box, 0.1, 4)
    assert np.array_equal(target, missing_target(4)) and (target[3] < 0).all()


def test_the_png_code_round_trips_within_its_step(tmp_path):
    coords = np.random.default_rng(0).uniform(-1, 1, (20, 30, 3)).astype(np.float32)
    write_coordinates(tmp_path / "c.png", coords)
    assert np.abs(read_coordinates(tmp_path / "c.png") - coords).max() <= 1 / 127.5 + 1e-6
    with pytest.raises(FileNotFoundError, match="object-coordinate map"):
        read_coordinates(tmp_path / "missing.png")


def test_the_target_is_each_cells_mean_object_point_and_cover():
    # a 120x120 image; the object fills the left half of the box [20, 100)², its x coordinate grows with u
    h = w = 120
    u = (np.arange(w) + 0.5)[None, :].repeat(h, 0)
    coords = np.stack([u / 100.0, np.zeros((h, w)), np.full((h, w), 0.5)], -1).astype(np.float32)
    mask = np.zeros((h, w), bool)
    mask[20:100, 20:60] = True
    target = coordinate_target(coords, mask, (20, 20, 100, 100), 0.0, 4)  # 4x4 cells of 20 px
    assert target.shape == (4, 4, 4)
    np.testing.assert_allclose(target[3], [[1, 1, 0, 0]] * 4, atol=1e-6)
    np.testing.assert_allclose(target[0, :, :2], [[0.3, 0.5]] * 4, atol=1e-5)  # cell-centre u 30 and 50
    np.testing.assert_allclose(target[2, :, :2], 0.5, atol=1e-6)
    assert np.all(target[:3, :, 2:] == 0)  # empty cells: no point


def test_a_mirrored_crop_gets_the_mirrored_target(coord_renders):
    sample = read_samples(coord_renders, CATS)[0]
    target = crop_coordinates(sample, sample.box, 0.1, 6)
    mirrored = mirror_target(target)
    np.testing.assert_array_equal(mirrored[3], target[3][:, ::-1])
    np.testing.assert_array_equal(mirrored[0], -target[0][:, ::-1])
    np.testing.assert_array_equal(mirrored[1:3], target[1:3][:, :, ::-1])
    np.testing.assert_array_equal(mirror_target(mirrored), target)


def test_the_target_follows_the_jittered_box_of_the_crop(coord_renders):
    from vantage.train.data import AugmentConfig

    sample = read_samples(coord_renders, CATS)[1]
    crop, box = crop_and_box(sample, 96, 0.1, AugmentConfig(box_jitter=0.3), np.random.default_rng(1))
    assert crop.shape == (96, 96, 3) and list(box) != list(sample.box)
    jittered, plain = crop_coordinates(sample, box, 0.1, 6), crop_coordinates(sample, sample.box, 0.1, 6)
    assert not np.allclose(jittered, plain)
    # the cover of the cells is the object's mask pooled over the same square crop
    mask = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    from vantage.imaging import crop_square

    pooled = crop_square((mask >= 128).astype(np.float32), box, 6, 0.1)
    np.testing.assert_allclose(jittered[3], pooled, atol=1e-5)


def test_the_loss_rewards_the_right_points_and_ignores_views_without_a_map():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.uniform(-0.8, 0.8, (3, 4, 5, 5)).astype(np.float32))
    target[:, 3] = torch.from_numpy(rng.uniform(0, 1, (3, 5, 5)).astype(np.float32))
    right = torch.cat([torch.atanh(target[:, :3]), torch.logit(target[:, 3:].clamp(1e-3, 1 - 1e-3))], 1)
    wrong = right.clone()
    wrong[:, :3] = -wrong[:, :3]
    assert coordinate_loss(right, target) < coordinate_loss(wrong, target) - 0.1
    missing = torch.from_numpy(missing_target(5))[None]
    with_missing = coordinate_loss(torch.cat([right, torch.randn(1, 4, 5, 5)]), torch.cat([target, missing]))
    assert with_missing.item() == pytest.approx(coordinate_loss(right, target).item(), rel=1e-5)
    pred = torch.zeros(1, 4, 5, 5, requires_grad=True)
    coordinate_loss(pred, target[:1]).backward()
    assert pred.grad.abs().sum() > 0


def _cfg(data: Path, out: Path, coordinates: bool) -> TrainConfig:
    model = ModelConfig(categories=list(CATS), input_size=128, head="bd_p", per_bin_delta=True, num_bins=4,
                        coordinates=coordinates)
    return TrainConfig(data=[str(data)], out=str(out), model=model, epochs=3, batch_size=8, augmented_copies=1,
                       flip=True, progress=False)


def test_a_model_with_the_head_learns_the_maps_and_exports_without_it(coord_renders, tmp_path):
    cfg = _cfg(coord_renders, tmp_path / "run", True)
    train(cfg)
    model = JointPoseNet(cfg.model)
    cache = cached_features(model, training_samples(cfg), cfg)
    grid = model.trunk_grid
    assert cache.coordinates.shape == (2, 16, 4, grid, grid)
    assert (cache.coordinates[:, :, 3] >= 0).all() and cache.coordinates[:, :, 3].amax() > 0.9
    # copy 0 is clean, copy 1 has mirrored crops (and targets: test_a_mirrored_crop_gets_the_mirrored_target)
    assert bool(cache.flipped[1].any()) and not bool(cache.flipped[0].any())
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert all(np.isfinite(h["coord_loss"]) and h["coord_loss"] > 0 for h in log)
    assert log[-1]["coord_loss"] < log[0]["coord_loss"]

    # the head is auxiliary: the network's answers do not depend on it, and it adds nothing to the graph
    from vantage.train.trainer import load_model

    trained, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    plain = JointPoseNet(ModelConfig.from_dict({**cfg.model.to_dict(), "coordinates": False})).eval()
    plain.load_state_dict({k: v for k, v in trained.state_dict().items() if not k.startswith("coordinate_head.")})
    x, hint = torch.randn(2, 3, 128, 128), torch.zeros(2, len(CATS))
    for a, b in zip(trained(x, hint), plain(x, hint)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="no object-coordinate head"):
        plain.forward_features(plain.features(x), coordinates=True)
    import onnx

    from vantage.export.onnx_export import export_bundle

    bundle = export_bundle(trained, tmp_path / "bundle")  # checks ORT parity with PyTorch
    graph = onnx.load(str(bundle / "model.onnx")).graph
    assert graph.initializer and not [i.name for i in graph.initializer if "coordinate" in i.name]


def test_a_model_with_the_head_refuses_renders_without_maps(tmp_path):
    render_dataset(builtin_specs(1, CATS), tmp_path / "plain", RenderConfig(views_per_model=2), workers=1, progress=False)
    with pytest.raises(ValueError, match="vantage render --coordinates"):
        train(_cfg(tmp_path / "plain", tmp_path / "run", True))


def test_the_feature_cache_of_a_model_with_the_head_is_its_own(coord_renders, tmp_path):
    samples = read_samples(coord_renders, CATS)
    with_head, without = _cfg(coord_renders, tmp_path, True), _cfg(coord_renders, tmp_path, False)
    assert _cache_key(with_head, samples) != _cache_key(without, samples)
