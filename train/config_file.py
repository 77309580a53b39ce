"""YAML configuration files for `vantage train --config FILE` (and the from-scratch CNN's `--config`).

A file holds the fields of a config dataclass (TrainConfig: nested `model:` and
`augment:` sections); flags given on the command line override the file, so a
config stays the one record of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vantage.train.trainer import TrainConfig


def config_mapping(path: str | Path | None, cls: type, **overrides: Any) -> dict:
    """The mapping of `cls` fields in the YAML file `path` (optional), with the given (non-empty) overrides applied."""
    raw = yaml.safe_load(Path(path).read_text()) if path else {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of {cls.__name__} fields")
    raw.update({k: v for k, v in overrides.items() if v is not None and v != [] and v != ""})
    missing = [k for k in ("data", "out") if not raw.get(k)]
    if missing:
        raise ValueError(f"training needs {' and '.join(missing)} (in the config file or as --{missing[0]})")
    unknown = set(raw) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown {cls.__name__} fields {sorted(unknown)}")
    return raw


def load_train_config(
    path: str | Path | None,
    data: list[str] | None = None,
    out: str | None = None,
    epochs: int | None = None,
    fusion: str | None = None,
) -> TrainConfig:
    """TrainConfig from a YAML file (optional) with command-line overrides."""
    raw = config_mapping(path, TrainConfig, data=list(data or []), out=out, epochs=epochs)
    if fusion:
        raw.setdefault("model", {})["fusion"] = fusion
    return TrainConfig.from_dict(raw)
