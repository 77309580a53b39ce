"""Training on real renders: the loss falls, checkpoints resume and load safely, YAML configs apply."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vantage.train.config_file import load_train_config
from vantage.train.data import (AugmentConfig, camera_effect, jitter_box, lower_resolution, occlude, photometric,
                                read_samples)
from vantage.train.meshes import builtin_specs
from vantage.train.render import RenderConfig, render_dataset
from vantage.train.trainer import (Phase, TrainConfig, _set_modes, balanced_epoch_length, balanced_order, load_model,
                                   set_trainable, train)

CATS = ["car", "chair", "aeroplane"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("renders")
    render_dataset(builtin_specs(2, categories=CATS), out, RenderConfig(views_per_model=12, seed=3), workers=1, progress=False)
    return out


def _cfg(dataset: Path, out: Path, epochs: int) -> TrainConfig:
    cfg = TrainConfig(data=[str(dataset)], out=str(out), epochs=epochs, batch_size=16, augmented_copies=1, progress=False)
    cfg.model.categories = list(CATS)
    return cfg


@pytest.fixture(scope="module")
def plain_run(dataset, tmp_path_factory) -> Path:
    """A plain 3-epoch run's folder, the baseline that tests of training options compare against."""
    out = tmp_path_factory.mktemp("plain")
    train(_cfg(dataset, out, epochs=3))
    return out


def test_training_reduces_pose_loss_and_resumes(dataset, tmp_path):
    ckpt = train(_cfg(dataset, tmp_path, epochs=4))
    log = json.loads((tmp_path / "log.json").read_text())
    assert [h["epoch"] for h in log] == [1, 2, 3, 4]
    assert log[-1]["pose_loss"] < log[0]["pose_loss"]
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "log.csv").is_file()

    # the checkpoint is plain tensors + strings: it loads with weights_only=True
    raw = torch.load(ckpt, weights_only=True)
    assert raw["epoch"] == 3
    model, info = load_model(ckpt)
    assert info["config"].model.categories == CATS and not model.training

    # an interrupted run resumes and ends exactly where the uninterrupted one did
    other = tmp_path / "interrupted"
    train(_cfg(dataset, other, epochs=4), stop_after=2)
    assert torch.load(other / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(_cfg(dataset, other, epochs=4))
    log2 = json.loads((other / "log.json").read_text())
    assert [h["epoch"] for h in log2] == [1, 2, 3, 4]
    for a, b in zip(log, log2):
        assert a["pose_loss"] == pytest.approx(b["pose_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="4-epoch schedule"):
        train(_cfg(dataset, other, epochs=6))


def test_a_run_with_an_average_loads_the_average_and_resumes_exactly(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path / "whole", epochs=3)
    cfg.average_epochs = 1.0
    raw = torch.load(train(cfg), weights_only=True)
    averaged = raw["averaged"]
    assert averaged.keys() and not any(k.startswith("features.") for k in averaged)
    model, _ = load_model(tmp_path / "whole" / "checkpoint.pt")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in averaged.items())
    assert any(not torch.equal(raw["model"][k], v) for k, v in averaged.items())  # the average is not the last step

    cut = _cfg(dataset, tmp_path / "cut", epochs=3)
    cut.average_epochs = 1.0
    train(cut, stop_after=1)
    resumed = torch.load(train(cut), weights_only=True)["averaged"]
    assert all(torch.allclose(resumed[k], v, atol=1e-5) for k, v in averaged.items())
    log = json.loads((tmp_path / "cut" / "log.json").read_text())
    assert [h["epoch"] for h in log] == [1, 2, 3]

    plain = _cfg(dataset, tmp_path / "plain", epochs=3)
    train(plain, stop_after=1)
    plain.average_epochs = 1.0
    with pytest.raises(ValueError, match="without a weight average"):
        train(plain)


def test_sharpness_aware_steps_train_other_weights_that_still_learn_and_a_negative_radius_is_refused(
        dataset, plain_run, tmp_path):
    plain = torch.load(plain_run / "checkpoint.pt", weights_only=True)
    cfg = _cfg(dataset, tmp_path / "sam", epochs=3)
    cfg.sam_rho = 0.05
    sam = torch.load(train(cfg), weights_only=True)
    log = json.loads((tmp_path / "sam" / "log.json").read_text())
    assert log[-1]["pose_loss"] < log[0]["pose_loss"]
    trained = [k for k in plain["model"] if not k.startswith("features.") and plain["model"][k].is_floating_point()]
    assert any(not torch.equal(plain["model"][k], sam["model"][k]) for k in trained)
    assert all(torch.equal(plain["model"][k], sam["model"][k]) for k in plain["model"] if k.startswith("features."))
    cfg.sam_rho = -0.1
    with pytest.raises(ValueError, match="sam_rho must be 0"):
        train(replace(cfg, out=str(tmp_path / "bad")))


def test_category_label_smoothing_trains_a_less_certain_category_network_and_a_bad_epsilon_is_refused(
        dataset, plain_run, tmp_path):
    smooth = replace(_cfg(dataset, tmp_path / "smooth", epochs=3), category_smoothing=0.5)
    train(smooth)
    logs = [json.loads((out / "log.json").read_text()) for out in (plain_run, tmp_path / "smooth")]
    assert logs[1][-1]["cat_acc"] > logs[1][0]["cat_acc"], "the smoothed category network still learns"
    # with ε = 0.5 over 3 categories the target's entropy (0.868 nats) bounds the CE from below; plain CE falls under it
    assert min(h["ce"] for h in logs[1]) > 0.868 > logs[0][-1]["ce"], [(p["ce"], s["ce"]) for p, s in zip(*logs)]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="category_smoothing must be in"):
            train(replace(smooth, out=str(tmp_path / "bad"), category_smoothing=bad))


def test_mixed_training_learns_other_weights_and_without_partners_is_the_plain_run(dataset, plain_run, tmp_path):
    plain = torch.load(plain_run / "checkpoint.pt", weights_only=True)["model"]
    # every view of the other instance is a partner (radius 180°): the run learns, on other weights
    mixed = replace(_cfg(dataset, tmp_path / "mixed", epochs=3), instance_mix=0.5, instance_mix_radius=180.0)
    state = torch.load(train(mixed), weights_only=True)["model"]
    log = json.loads((tmp_path / "mixed" / "log.json").read_text())
    assert log[-1]["pose_loss"] < log[0]["pose_loss"]
    trained = [k for k in plain if not k.startswith("features.") and plain[k].is_floating_point()]
    assert any(not torch.equal(plain[k], state[k]) for k in trained)
    # no partner within 0.001°: nothing is mixed, and the run is the plain run's exactly
    alone = replace(mixed, out=str(tmp_path / "alone"), instance_mix_radius=1e-3)
    state = torch.load(train(alone), weights_only=True)["model"]
    assert all(torch.equal(plain[k], state[k]) for k in plain)
    for bad in ({"instance_mix": 0.6}, {"instance_mix": -0.1}, {"instance_mix_radius": 0.0}):
        with pytest.raises(ValueError, match="instance_mix must be in"):
            train(replace(mixed, out=str(tmp_path / "bad"), **bad))
    with_maps = replace(mixed, out=str(tmp_path / "bad"), model=replace(mixed.model, coordinates=True))
    with pytest.raises(ValueError, match="model.coordinates or with instance_mix"):
        train(with_maps)


def test_an_instance_adversarial_run_learns_with_its_head_sized_to_the_instances_and_bad_settings_are_refused(
        dataset, plain_run, tmp_path):
    adversarial = replace(_cfg(dataset, tmp_path / "adv", epochs=3), instance_adversary=0.5)
    ckpt = torch.load(train(adversarial), weights_only=True)
    log = json.loads((tmp_path / "adv" / "log.json").read_text())
    assert log[-1]["pose_loss"] < log[0]["pose_loss"]
    # the instance head tells each view's instance among its category's two built-in ones: a cost above nothing
    assert log[-1]["instance_ce"] > 0 and json.loads((plain_run / "log.json").read_text())[-1]["instance_ce"] == 0
    # three categories of two instances each; the stored config rebuilds the head, which a loaded model keeps
    assert json.loads(ckpt["config"])["model"]["instance_classes"] == 6
    assert ckpt["model"]["instance_head.2.weight"].shape[0] == 6
    model, _ = load_model(tmp_path / "adv" / "checkpoint.pt")
    assert model.instance_head is not None
    for bad, message in (({"instance_adversary": -0.1}, "instance_adversary must be 0"),
                         ({"instance_mix": 0.5}, "instance_adversary or with instance_mix")):
        with pytest.raises(ValueError, match=message):
            train(replace(adversarial, out=str(tmp_path / "bad"), **bad))


def test_a_run_with_a_shared_head_input_trains_it_and_loads_back_with_it(dataset, plain_run, tmp_path):
    cfg = _cfg(dataset, tmp_path, epochs=3)
    cfg.model.shared_head_input = 32
    ckpt = train(cfg)
    log = json.loads((tmp_path / "log.json").read_text())
    assert log[-1]["pose_loss"] < log[0]["pose_loss"]
    model, info = load_model(ckpt)
    assert info["config"].model.shared_head_input == 32 and model.head_input is not None
    plain, _ = load_model(plain_run / "checkpoint.pt")
    assert plain.head_input is None
    # the shared layer is a part of the pose heads: it trains in the phases that train the pose, and only then
    for phase, on in ((Phase("pose", True, True, False, False), True), (Phase("category", False, False, True, False), False)):
        set_trainable(model, phase)
        assert all(p.requires_grad == on for p in model.head_input.parameters())
        _set_modes(model, phase)
        assert model.head_input.training == on


def test_balanced_order_equalises_categories():
    labels = np.array([0] * 90 + [1] * 10)
    order = balanced_order(labels, np.random.default_rng(0))
    counts = np.bincount(labels[order])
    assert counts[0] == counts[1]
    assert len(order) == balanced_epoch_length(labels) == 100
    assert balanced_epoch_length(np.array([0, 0, 1])) == 4


def test_schedule_covers_balanced_epochs_longer_than_the_data(dataset, tmp_path):
    """73 views of 3 categories make 75-index balanced epochs: at batch 73 two steps each, not one."""
    extra = tmp_path / "extra"
    render_dataset(builtin_specs(1, categories=["car"]), extra, RenderConfig(views_per_model=1, seed=4), workers=1,
                   progress=False)
    cfg = _cfg(dataset, tmp_path / "run", epochs=2)
    cfg.data.append(str(extra))
    cfg.batch_size = 73
    sched = torch.load(train(cfg), weights_only=True)["scheduler"]  # before: "Tried to step 3 times" mid-epoch 2
    assert sched["total_steps"] == sched["last_epoch"] == 4


def test_augmentation_changes_pixels_but_keeps_box_near(dataset):
    s = read_samples(dataset, CATS)[0]
    rng = np.random.default_rng(0)
    box = jitter_box(s.box, 0.08, rng)
    w = s.box[2] - s.box[0]
    assert all(abs(a - b) < 0.2 * w for a, b in zip(box, s.box))
    crop = np.full((32, 32, 3), 128, np.uint8)
    out = photometric(crop, AugmentConfig(noise_prob=1.0, jpeg_prob=1.0), rng)
    assert out.shape == crop.shape and out.dtype == np.uint8 and not np.array_equal(out, crop)


def test_occlusion_covers_one_rectangle_of_the_asked_area_and_is_off_by_default():
    crop = np.full((64, 64, 3), 128, np.uint8)
    cfg = AugmentConfig(occlude_prob=1.0, occlude_area=(0.1, 0.2))
    for seed in range(20):
        out = occlude(crop, cfg, np.random.default_rng(seed))
        ys, xs = np.nonzero((out != 128).any(2))
        covered = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert 0.08 * 64 * 64 <= covered <= 0.22 * 64 * 64 and np.array_equal(crop, np.full_like(crop, 128))
    rng = np.random.default_rng(0)
    assert occlude(crop, AugmentConfig(), rng) is crop and rng.random() == np.random.default_rng(0).random()
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg


def test_a_texture_occluder_is_a_smooth_patch_not_noise():
    crop = np.full((64, 64, 3), 128, np.uint8)
    roughness = {}
    for occluder in ("noise", "texture"):
        cfg = AugmentConfig(occlude_prob=1.0, occlude_area=(0.2, 0.3), occluder=occluder)
        steps = []
        for seed in range(10):
            out = occlude(crop, cfg, np.random.default_rng(seed))
            ys, xs = np.nonzero((out != 128).any(2))
            covered = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            assert 0.15 * 64 * 64 <= covered <= 0.32 * 64 * 64, occluder
            patch = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(int)
            steps.append(np.abs(np.diff(patch, axis=1)).mean())
        roughness[occluder] = np.median(steps)
    assert roughness["texture"] < 0.3 * roughness["noise"]  # neighbouring pixels alike, as on a real occluder
    with pytest.raises(ValueError, match="occluder must be one of"):
        AugmentConfig(occluder="cat")


def test_low_resolution_keeps_the_crop_size_but_not_its_fine_detail_and_is_off_by_default():
    crop = np.zeros((96, 96, 3), np.uint8)
    crop[::2] = 255  # one-pixel stripes: gone at any resolution below the crop's
    crop[40:56, 40:56] = (255, 0, 0)  # a coarse patch: survives
    cfg = AugmentConfig(lowres_prob=1.0, lowres_scale=(0.2, 0.4))
    for seed in range(5):
        out = lower_resolution(crop, cfg, np.random.default_rng(seed))
        assert out.shape == crop.shape and out.dtype == np.uint8
        assert np.abs(np.diff(out[8:30, 8:30, 1].astype(int), axis=0)).max() < 60  # stripes averaged away
        assert out[48, 48, 0] > 150 and out[48, 48, 1] < 100  # the patch's colour is still there
    rng = np.random.default_rng(0)
    assert lower_resolution(crop, AugmentConfig(), rng) is crop and rng.random() == np.random.default_rng(0).random()
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg


def test_camera_effects_spoil_the_whole_frame_between_the_mild_and_severe_levels_and_are_off_by_default():
    from vantage.train.corruptions import corrupt

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
    box = (20.0, 10.0, 70.0, 60.0)
    cfg = AugmentConfig(camera_prob=1.0, camera_effects=("dark",))
    for seed in range(10):
        out = camera_effect(image, box, cfg, np.random.default_rng(seed))
        # darker than severity 1 leaves the frame, brighter than severity 3
        assert corrupt(image, "dark", 3, rng, box).mean() - 2 < out.mean() < corrupt(image, "dark", 1, rng, box).mean() + 2
    mixed = AugmentConfig(camera_prob=1.0)
    assert all(not np.array_equal(camera_effect(image, box, mixed, np.random.default_rng(s)), image) for s in range(10))
    rng = np.random.default_rng(0)
    assert camera_effect(image, box, AugmentConfig(), rng) is image and rng.random() == np.random.default_rng(0).random()
    assert AugmentConfig.from_dict(mixed.to_dict()) == mixed and isinstance(mixed.to_dict()["camera_effects"], list)
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        AugmentConfig(camera_effects=("noise", "fog"))
    with pytest.raises(ValueError, match="at least one corruption"):
        AugmentConfig(camera_effects=())


def test_yaml_config_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 7, "model": {"fusion": "top1", "head_hidden": [64, 32]}}))
    cfg = load_train_config(path, data=["d"], out="o", epochs=None, fusion=None)
    assert cfg.epochs == 7 and cfg.model.fusion == "top1" and cfg.model.head_hidden == (64, 32)
    assert load_train_config(path, data=["d"], out="o", epochs=2, fusion="weighted").model.fusion == "weighted"
    cfg = load_train_config(path, data=["d"], out="o", epochs=2, sets=["model.head_hidden=[16, 8]", "epochs=5", "lr=1e-3"])
    assert cfg.model.head_hidden == (16, 8) and cfg.epochs == 5 and cfg.lr == 1e-3 and cfg.model.fusion == "top1"
    with pytest.raises(ValueError, match="TrainConfig has no setting 'epochz'"):
        load_train_config(path, data=["d"], out="o", sets=["epochz=3"])
    path.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        load_train_config(path, data=["d"], out="o")
    for shipped in Path(__file__).resolve().parents[1].glob("configs/*.yaml"):
        if shipped.name != "scratch_cnn.yaml":  # ScratchConfig fields: tests/test_scratch_train.py
            assert load_train_config(shipped, data=["d"], out="o").epochs > 0


def test_protocols_flips_and_key_poses_in_checkpoint(dataset, tmp_path):
    from vantage.train.trainer import phase_of

    cfg = _cfg(dataset, tmp_path, epochs=3)
    cfg.protocol, cfg.flip, cfg.pose_first_fraction, cfg.category_fraction = "pose_first", True, 0.34, 0.34
    cfg.model.head, cfg.model.per_bin_delta, cfg.model.num_bins = "bd_g", True, 4
    ckpt = train(cfg)
    log = json.loads((tmp_path / "log.json").read_text())
    assert [h["phase"] for h in log] == ["pose (oracle category)", "category (trunk fixed)", "joint (fused)"]
    cached = torch.load(next(tmp_path.glob("features-*.pt")), weights_only=True)
    assert cached["flipped"][0].sum() == 0 and 0 < cached["flipped"][1].float().mean() < 1

    # the K-means dictionary is a checkpoint buffer, learnt on the (mirrored) training poses
    key = torch.load(ckpt, weights_only=True)["model"]["key_poses"]
    model, _ = load_model(ckpt)
    assert key.shape == (4, 3) and torch.equal(model.key_poses, key) and float(key.abs().sum()) > 0
    assert float(key.norm(dim=1).max()) <= np.pi

    balanced = TrainConfig(data=["d"], out="o", epochs=10, protocol="balanced")
    assert [phase_of(e, balanced).trunk for e in (0, 3, 4)] == [False, False, True]


def test_feature_cache_key_follows_the_labels_not_only_the_paths(dataset, tmp_path):
    """A folder rendered again with other settings keeps its file names; its cached features must not be reused."""
    from dataclasses import replace

    from vantage.train.data import read_samples
    from vantage.train.trainer import _cache_key

    cfg = _cfg(dataset, tmp_path, epochs=1)
    samples = read_samples(dataset, list(CATS))
    key = _cache_key(cfg, samples)
    assert _cache_key(cfg, list(samples)) == key
    moved = [replace(samples[0], box=tuple(v + 1.0 for v in samples[0].box))] + samples[1:]
    turned = [replace(samples[0], rotation=samples[0].rotation.T.copy())] + samples[1:]
    assert len({key, _cache_key(cfg, moved), _cache_key(cfg, turned)}) == 3



def test_a_shared_feature_cache_is_filled_before_the_run_folder_exists(dataset, tmp_path):
    """Ensemble members share a cache folder apart from their run: preparing it must not need the run folder."""
    from vantage.train.trainer import prepare_feature_cache

    cfg = _cfg(dataset, tmp_path / "runs" / "not_yet", epochs=1)
    cfg.feature_cache = str(tmp_path / "cache")
    prepare_feature_cache(cfg)
    cached = list((tmp_path / "cache").glob("features-*.pt"))
    assert len(cached) == 1 and torch.load(cached[0], weights_only=True)["features"].shape[1] == len(
        read_samples(dataset, list(CATS)))

def test_symmetric_meshes_get_canonical_labels(tmp_path):
    """A round bottle's views all get azimuth 0, a table's the equivalent pose nearest the front."""
    from dataclasses import replace

    from vantage.geometry import geodesic_distance, rotation_to_viewpoint
    from vantage.train.symmetry import symmetry_group
    from vantage.train.trainer import training_rotations

    cats = ["bottle", "diningtable"]
    render_dataset(builtin_specs(1, categories=cats), tmp_path, RenderConfig(image_size=64, views_per_model=8, seed=4),
                   workers=1, progress=False)
    samples = read_samples(tmp_path, cats)
    cfg = TrainConfig(data=[str(tmp_path)], out=str(tmp_path / "run"), canonical_symmetric_poses=True)
    raw = np.stack([s.rotation for s in samples])
    np.testing.assert_array_equal(training_rotations(samples, replace(cfg, canonical_symmetric_poses=False)), raw)
    rots = training_rotations(samples, cfg)
    azimuth, elevation, theta = rotation_to_viewpoint(rots)
    _, elevation0, theta0 = rotation_to_viewpoint(raw)
    np.testing.assert_allclose(elevation, elevation0, atol=1e-6)
    np.testing.assert_allclose(theta, theta0, atol=1e-6)
    bottle = np.array([s.category == 0 for s in samples])
    assert all(s.z_symmetry.continuous for s, b in zip(samples, bottle) if b)
    np.testing.assert_allclose((azimuth[bottle] + 180) % 360 - 180, 0.0, atol=1e-6)
    table = [s for s in samples if s.category == 1]
    assert table[0].z_symmetry.angles and not table[0].z_symmetry.continuous
    assert np.all(np.abs((azimuth[~bottle] + 180) % 360 - 180) <= 95)  # its turns are 170°, 180° and 190°
    for s, r in zip(table, rots[~bottle]):  # each label is one of the poses the image cannot tell apart
        assert geodesic_distance(r[None], s.rotation[None] @ symmetry_group(list(s.z_symmetry.angles))).min() < 1e-3
    assert np.abs((rotation_to_viewpoint(raw[~bottle])[0] + 180) % 360 - 180).max() > 95, "nothing was turned"

    old = [replace(s, z_symmetry=None) for s in samples]  # a manifest written before z_symmetry was recorded
    with pytest.raises(ValueError, match="render .* again"):
        training_rotations(old, cfg)
