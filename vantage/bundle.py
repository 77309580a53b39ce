"""The model-bundle format: a folder with `model.onnx` and `vantage.json`.

The bundle is the only thing that travels from export to serving, so everything
the server needs to reproduce training's pre-processing and to name outputs is
recorded here. The same metadata is also written into the ONNX `metadata_props`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vantage.calibration import ConfidenceCalibration
from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD

FORMAT = "vantage-bundle"
FORMAT_VERSION = 1
METADATA_FILE = "vantage.json"
INPUT_NAME = "image"
# (N, K) float: all zeros = category unknown, a one-hot row = known category.
INPUT_HINT_NAME = "category_hint"
BASE_OUTPUT_NAMES: tuple[str, ...] = ("category_probs", "axis_angle", "rotation", "embedding")
# (N, H, 3) axis-angle, hypothesis 0 = axis_angle; (N, H) their shares of the pose probability mass
# (vantage.train.hypotheses). Bundles exported before them lack both (BundleMetadata.pose_hypotheses = 0).
HYPOTHESIS_OUTPUT_NAMES: tuple[str, ...] = ("pose_hypotheses", "hypothesis_scores")
OUTPUT_NAMES: tuple[str, ...] = BASE_OUTPUT_NAMES + HYPOTHESIS_OUTPUT_NAMES


class BundleError(Exception):
    """A bundle is missing, incomplete or of an unknown format."""


@dataclass
class BundleMetadata:
    """What a server needs to run a bundle exactly as it was trained."""

    categories: list[str]
    input_size: int
    fusion: str
    embedding_dim: int
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    crop_margin: float = 0.1
    onnx_file: str = "model.onnx"
    opset: int = 17
    name: str = "vantage"
    model_version: str = "1"
    versions: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # "flip": the graph also runs the mirrored crop and averages (vantage.train.test_time), twice the
    # backbone compute; "none": one pass.
    test_time: str = "none"
    # Members of a deep ensemble over one feature network (vantage.train.ensemble); 1 = a single network.
    ensemble_size: int = 1
    # H of the pose_hypotheses / hypothesis_scores outputs; 0: a bundle exported before they existed.
    pose_hypotheses: int = 0
    # ConfidenceCalibration.to_dict() of the hypothesis scores (`vantage calibrate`); empty: the
    # server reports the raw shares of probability mass.
    confidence_calibration: dict[str, Any] = field(default_factory=dict)
    # Accepted alternative graphs of the same model (int8/fp16 ONNX, TensorRT plans):
    # name → {"file", "runtime", "precision", measured accuracy/latency or agreement}.
    variants: dict[str, Any] = field(default_factory=dict)
    input_name: str = INPUT_NAME
    hint_name: str = INPUT_HINT_NAME
    output_names: list[str] = field(default_factory=lambda: list(BASE_OUTPUT_NAMES))
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def tensor_shapes(self) -> dict[str, list[int]]:
        """Per-item shape (batch dimension left out) of every graph input and output, by name."""
        k, s, h = len(self.categories), int(self.input_size), int(self.pose_hypotheses)
        shapes = {
            self.input_name: [3, s, s],
            self.hint_name: [k],
            "category_probs": [k],
            "axis_angle": [3],
            "rotation": [3, 3],
            "embedding": [int(self.embedding_dim)],
        }
        if h:
            shapes.update({"pose_hypotheses": [h, 3], "hypothesis_scores": [h]})
        return shapes

    def calibration(self) -> ConfidenceCalibration | None:
        """The calibration of the hypothesis scores, or None when the bundle reports raw scores."""
        return ConfidenceCalibration.from_dict(self.confidence_calibration) if self.confidence_calibration else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BundleMetadata":
        if data.get("format") != FORMAT:
            raise BundleError(f"not a Vantage bundle: format is {data.get('format')!r}, expected {FORMAT!r}")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {data['format_version']} is newer than this Vantage reads ({FORMAT_VERSION})"
            )
        known = set(cls.__dataclass_fields__)
        meta = cls(**{k: v for k, v in data.items() if k in known})
        try:
            meta.calibration()
        except (ValueError, TypeError) as exc:  # CalibrationError is a ValueError; so is float("x")
            raise BundleError(f"bad confidence_calibration {meta.confidence_calibration!r}: {exc}") from None
        if meta.confidence_calibration and not meta.pose_hypotheses:
            raise BundleError("confidence_calibration given for a bundle without pose hypotheses (nothing to calibrate)")
        return meta


def save_metadata(bundle_dir: str | Path, meta: BundleMetadata) -> Path:
    path = Path(bundle_dir) / METADATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(meta.to_json() + "\n")
    return path


def load_metadata(bundle_dir: str | Path) -> BundleMetadata:
    """Read and validate `vantage.json`; BundleError names the missing or bad file."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"model bundle folder {str(root)!r} does not exist")
    path = root / METADATA_FILE
    if not path.is_file():
        raise BundleError(f"model bundle {str(root)!r} has no {METADATA_FILE}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    meta = BundleMetadata.from_dict(data)
    if not (root / meta.onnx_file).is_file():
        raise BundleError(f"model bundle {str(root)!r} has no {meta.onnx_file}")
    return meta
