"""YAML configuration files for `vantage train --config FILE` (and the from-scratch CNN's `--config`), and
`--set KEY=VALUE` overrides of any setting of a config dataclass (`vantage recipe reference --set ...`).

A file holds the fields of a config dataclass (TrainConfig: nested `model:` and
`augment:` sections); flags given on the command line override the file, so a
config stays the one record of a run.
"""

from __future__ import annotations

import difflib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Sequence

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
    sets: Sequence[str] = (),
) -> TrainConfig:
    """TrainConfig from a YAML file (optional) with command-line overrides, `sets` (KEY=VALUE, `override`) last."""
    raw = config_mapping(path, TrainConfig, data=list(data or []), out=out, epochs=epochs)
    if fusion:
        raw.setdefault("model", {})["fusion"] = fusion
    return override(TrainConfig.from_dict(raw), sets)


def override(cfg: Any, sets: Sequence[str]) -> Any:
    """`cfg` (a config dataclass, changed in place and returned) with each `KEY=VALUE` applied.

    KEY is a dotted path to one existing setting (`train.model.pose_channels`), VALUE is read as YAML (`0.1`,
    `true`, `[-35, 75]`, `null`) and must fit the setting's current type, so that a typo or a wrong type fails
    here with the setting's name, not as a silent extra field or a crash minutes into a run. Why: every lever
    in docs/RESULTS.md is the recipe with a setting or two changed, and a user reruns it with these flags.
    """
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=20")
        *parents, name = key.split(".")
        owner = cfg
        for part in parents:
            owner = getattr(owner, _field(owner, part, key).name)
        field = _field(owner, name, key)
        current = getattr(owner, name)
        if is_dataclass(current):
            raise ValueError(f"--set {key}: a section, not a setting; set one of its fields: "
                             + ", ".join(f"{key}.{f.name}" for f in fields(current)))
        value = _coerce(yaml.safe_load(text), current, str(field.type), key)
        setattr(owner, name, value)
    return cfg


def _field(owner: Any, name: str, key: str) -> Any:
    """The dataclass field `name` of `owner`, or a ValueError naming the setting and the closest real ones."""
    known = {f.name: f for f in fields(owner)} if is_dataclass(owner) else {}
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3)
        raise ValueError(f"--set {key}: {type(owner).__name__} has no setting {name!r}"
                         + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    return known[name]


def _coerce(value: Any, current: Any, annotation: str, key: str) -> Any:
    """`value` as the type of the setting's `current` value (ints for floats, lists for tuples, element by
    element; a string where the annotation of a setting now null says `str`), or a ValueError saying what the
    setting takes."""
    def wrong(kind: str) -> ValueError:
        return ValueError(f"--set {key}: expected {kind}, got {value!r}")

    if value is None:
        if "None" in annotation or current is None:
            return None
        raise wrong(f"a value like {current!r} (this setting cannot be null)")
    if current is None:
        if annotation.startswith("str") and not isinstance(value, str):
            raise wrong("a str")
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(current, (int, float)):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                raise wrong("a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        if isinstance(current, int) and not float(value).is_integer():
            raise wrong("a whole number")
        return type(current)(value)
    if isinstance(current, (list, tuple)):
        if not isinstance(value, list):
            raise wrong(f"a list like {list(current)!r}")
        return type(current)(_coerce(v, current[0], "", key) if current else v for v in value)
    if not isinstance(value, type(current)):
        raise wrong(f"a {type(current).__name__}")
    return value
