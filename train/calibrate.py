"""`vantage calibrate`: fit a bundle's pose-confidence calibration on labelled views and store it.

The views must be ones the model never trained on, ideally from the domain it will serve
(renders of held-out meshes, or labelled photos rendered into the same manifest format):
fitted on training views the map would inherit the overconfidence it is meant to remove.
Cross-fitting is supported: fit on (bundle, views) pairs of other folds of a recipe and
write into a bundle that saw neither (`--into`), so the bundle's own held-out views stay a
clean test of the calibration. Only `vantage.json` changes: model.onnx stays byte for byte as
exported (its sha256 ties view indexes to it; its metadata_props keep the export-time snapshot).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from vantage.bundle import load_metadata, save_metadata
from vantage.calibration import (PI6_DEG, CalibrationError, ConfidenceCalibration, calibration_error, check_within_deg,
                                 fit_calibration)
from vantage.geometry import axis_angle_to_rotation, geodesic_distance
from vantage.train.evaluate import bundle_runner


def raw_hypotheses(bundle: str | Path, data: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, H) raw hypothesis scores of a bundle on labelled views and (N, H) their errors in degrees."""
    bundle = Path(bundle)
    meta = load_metadata(bundle)
    if not meta.pose_hypotheses:
        raise CalibrationError(f"bundle {str(bundle)!r} was exported before pose hypotheses existed: no scores to "
                               "calibrate (export it again)")
    categories, samples, run = bundle_runner(bundle, data, calibrated=False)
    fused = run(np.zeros((len(samples), len(categories)), np.float32))
    true = np.stack([s.rotation for s in samples])
    poses = axis_angle_to_rotation(np.asarray(fused["pose_hypotheses"], np.float64))
    return np.asarray(fused["hypothesis_scores"], np.float64), geodesic_distance(poses, true[:, None])


def calibrate(fit_on: Sequence[tuple[str | Path, str | Path]], into: Sequence[str | Path] = (),
              within_deg: float = PI6_DEG, out: str | Path | None = None) -> dict:
    """Fit one calibration on every (bundle, views) pair and write it into `into` (default: those bundles).

    Returns the calibration and, on the fitting views, the answers' and all shown hypotheses'
    expected calibration error before and after (in-sample: a held-out check needs `into`
    bundles evaluated on their own views). With `out`, draws reliability.png there.
    """
    if not fit_on:
        raise ValueError("calibrate needs at least one (bundle, labelled views) pair")
    check_within_deg(within_deg)
    targets = [Path(b) for b in (into or [b for b, _ in fit_on])]
    for bundle in targets:  # checked before minutes of inference, not after
        if not load_metadata(bundle).pose_hypotheses:
            raise CalibrationError(f"bundle {str(bundle)!r} has no pose hypotheses to calibrate")
    pairs = [raw_hypotheses(b, d) for b, d in fit_on]
    scores = np.concatenate([s for s, _ in pairs])
    errors = np.concatenate([e for _, e in pairs])
    source = "; ".join(f"{b} on {d}" for b, d in fit_on)
    cal = fit_calibration(scores, errors, within_deg, source=f"fitted on {source}")
    after = cal.apply(scores)
    hits, shown = errors < within_deg, scores > 0
    report = {
        "calibration": cal.to_dict(),
        "ece_answer": {"raw": calibration_error(scores[:, 0], hits[:, 0]),
                       "calibrated": calibration_error(after[:, 0], hits[:, 0])},
        "ece_all": {"raw": calibration_error(scores[shown], hits[shown]),
                    "calibrated": calibration_error(after[shown], hits[shown])},
        "into": [],
    }
    for bundle in targets:
        save_metadata(bundle, replace(load_metadata(bundle), confidence_calibration=cal.to_dict()))
        report["into"].append(str(bundle))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        draw_reliability(scores[shown], after[shown], hits[shown], cal, Path(out) / "reliability.png")
    return report


def draw_reliability(raw: np.ndarray, calibrated: np.ndarray, hits: np.ndarray, cal: ConfidenceCalibration,
                     path: Path, bins: int = 10) -> None:
    """Reliability diagram: hit rate per band of score, raw and calibrated, against the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    edges = np.linspace(0, 1, bins + 1)
    for name, p in (("raw share of mass", raw), ("calibrated", calibrated)):
        idx = np.minimum((p * bins).astype(int), bins - 1)
        used = [b for b in range(bins) if np.any(idx == b)]
        ax.plot([p[idx == b].mean() for b in used], [hits[idx == b].mean() for b in used], "o-",
                label=f"{name} (ECE {calibration_error(p, hits, bins):.3f})")
    ax.plot(edges[[0, -1]], edges[[0, -1]], "k--", lw=1)
    ax.set_xlabel("score of a shown hypothesis"), ax.set_ylabel(f"share within {cal.within_deg:g}°")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{cal.views} labelled views", fontsize=9)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)
