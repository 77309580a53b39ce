"""YAML configuration files for `vantage train --config FILE`.

A file holds TrainConfig fields (nested `model:` and `augment:` sections); flags
given on the command line override the file, so a config stays the one record of
a run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from vantage.train.trainer import TrainConfig


def load_train_config(
    path: str | Path | None,
    data: list[str] | None = None,
    out: str | None = None,
    epochs: int | None = None,
    fusion: str | None = None,
) -> TrainConfig:
    """TrainConfig from a YAML file (optional) with command-line overrides."""
    raw = yaml.safe_load(Path(path).read_text()) if path else {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
    if data:
        raw["data"] = list(data)
    if out:
        raw["out"] = out
    if epochs is not None:
        raw["epochs"] = epochs
    if fusion:
        raw.setdefault("model", {})["fusion"] = fusion
    missing = [k for k in ("data", "out") if not raw.get(k)]
    if missing:
        raise ValueError(f"training needs {' and '.join(missing)} (in the config file or as --{missing[0]})")
    unknown = set(raw) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown TrainConfig fields {sorted(unknown)}")
    return TrainConfig.from_dict(raw)
