"""`--set KEY=VALUE` overrides of config dataclasses (vantage.train.config_file.override): how a lever reruns."""

from __future__ import annotations

import pytest

from vantage.train.config_file import override
from vantage.train.recipe import RecipeConfig


def _recipe() -> RecipeConfig:
    return RecipeConfig(models="repo", out="out")


def test_override_reaches_nested_settings_and_converts_to_their_types() -> None:
    cfg = override(_recipe(), ["train.instance_adversary=0.1", "train.model.pose_channels=32", "train.lr=1e-3",
                               "train_elevation_range=[-35, 75]", "train.flip=false", "photos=/photos",
                               "confidence_calibration=[[1, 0], [2, -1]]", "train.model.head_hidden=[64]"])
    assert cfg.train.instance_adversary == 0.1 and cfg.train.model.pose_channels == 32
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)  # YAML 1.1 reads 1e-3 as a string
    assert cfg.train_elevation_range == (-35.0, 75.0) and all(isinstance(v, float) for v in cfg.train_elevation_range)
    assert cfg.train.flip is False and cfg.photos == "/photos"
    assert cfg.confidence_calibration == ((1.0, 0.0), (2.0, -1.0)) and cfg.train.model.head_hidden == (64,)
    untouched = _recipe()
    assert cfg.train.epochs == untouched.train.epochs and cfg.train.model.num_bins == untouched.train.model.num_bins


def test_override_sets_a_nullable_setting_to_null_and_the_last_of_two_wins() -> None:
    cfg = override(_recipe(), ["confidence_calibration=null", "cad_views=80", "cad_views=320"])
    assert cfg.confidence_calibration is None and cfg.cad_views == 320


@pytest.mark.parametrize("item, message", [
    ("train.instance_adversry=0.1", "TrainConfig has no setting 'instance_adversry' (did you mean instance_adversary"),
    ("trian.epochs=3", "RecipeConfig has no setting 'trian' (did you mean train?)"),
    ("train.epochs.max=3", "int has no setting 'max'"),
    ("train.model=3", "train.model: a section, not a setting; set one of its fields: train.model.categories"),
    ("train.epochs=1.5", "train.epochs: expected a whole number, got 1.5"),
    ("train.epochs=.inf", "train.epochs: expected a whole number, got inf"),
    ("train.flip=1", "train.flip: expected true or false, got 1"),
    ("input_size=large", "input_size: expected a number, got 'large'"),
    ("train.model.head=[1]", "train.model.head: expected a str, got [1]"),
    ("train.model.head_hidden=3", "train.model.head_hidden: expected a list like [256, 128], got 3"),
    ("train_elevation_range=[low, 75]", "train_elevation_range: expected a number, got 'low'"),
    ("cad_views=null", "cad_views: expected a value like 160 (this setting cannot be null)"),
    ("photos=3", "photos: expected a str, got 3"),
    ("epochs", "--set 'epochs': expected KEY=VALUE"),
    ("=3", "--set '=3': expected KEY=VALUE"),
])
def test_override_refuses_unknown_sections_and_mistyped_values_by_name(item: str, message: str) -> None:
    cfg = _recipe()
    with pytest.raises(ValueError) as err:
        override(cfg, [item])
    assert message in str(err.value)
