"""Pose confidence calibration: turn a hypothesis' share of probability mass into a probability.

A bundle's hypothesis scores (vantage.train.hypotheses) rank poses well but are overconfident on
meshes the model never saw: of the reference bundle's answers scoring 0.7-0.9 on unseen CAD
meshes, 59% were within 30°. Platt scaling on the score's logit,

    P(hypothesis within `within_deg` of the truth) = σ(slope · logit(score) + bias),

fitted on labelled views the model did not train on (one map for the answer, one for the
alternatives), makes the score mean what a client reads into it: fitted on two folds of
held-out meshes, it calibrated the third (docs/RESULTS.md). Monotone (slope > 0), so the
ranking, and with it the answer, never changes.

Numpy only: the server applies it (vantage.json's `confidence_calibration`), the training side
fits it (`vantage calibrate`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PI6_DEG = 30.0  # Acc@π/6's threshold, the papers' hit
_EPS = 1e-4  # scores are clipped to [ε, 1 − ε] before the logit: a pooled mass can be exactly 0 or 1


class CalibrationError(ValueError):
    """The labelled views cannot give a calibration (too few, or the scores do not rank hits)."""


@dataclass(frozen=True)
class ConfidenceCalibration:
    """P(a hypothesis lies within `within_deg`) = σ(slope · logit(score) + bias), one (slope, bias) for the
    answer and one for the alternatives.

    Two maps because the answer is voted and its mass includes its own neighbourhood, while an
    alternative holds only what the higher ranks left: fitted apart on folds 1 and 2 of the
    reference recipe, the answers' calibration error on fold 0 was 0.071 against 0.095 with one
    map for every rank, and 0.039 vs 0.049, 0.063 vs 0.078 on folds 1 and 2, each fitted on the other
    two (alternatives: 0.019 vs 0.010, 0.023 vs 0.027, 0.024 vs 0.025).
    """

    answer: tuple[float, float]
    alternatives: tuple[float, float]
    within_deg: float = PI6_DEG
    views: int = 0  # labelled views it was fitted on
    source: str = ""  # what they were, for the people who read ModelInfo.metadata_json

    def __post_init__(self) -> None:
        for name in ("answer", "alternatives"):
            pair = tuple(float(v) for v in getattr(self, name))
            if len(pair) != 2:
                raise CalibrationError(f"{name} must be (slope, bias), got {getattr(self, name)!r}")
            if not pair[0] > 0:
                raise CalibrationError(f"a calibration must keep the ranking: the slope of the {name} must be "
                                       f"> 0, got {pair[0]}")
            object.__setattr__(self, name, pair)
        check_within_deg(self.within_deg)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of (N, H) scores, hypothesis 0 = the answer; a score of 0 (no mass: no
        such pose) stays 0."""
        s = np.asarray(scores, np.float64)
        if s.ndim != 2:
            raise CalibrationError(f"scores must be (N, H) with the answer first, got shape {s.shape}")
        slope = np.array([self.answer[0]] + [self.alternatives[0]] * (s.shape[1] - 1))
        bias = np.array([self.answer[1]] + [self.alternatives[1]] * (s.shape[1] - 1))
        p = 1.0 / (1.0 + np.exp(-(slope * _logit(s) + bias)))
        return np.where(s > 0, p, 0.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (pairs as lists), as vantage.json stores it."""
        return {**asdict(self), "answer": list(self.answer), "alternatives": list(self.alternatives)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConfidenceCalibration":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def check_within_deg(within_deg: float) -> None:
    """Refuse a hit threshold that is no angle between two rotations (before any work is done)."""
    if not 0 < float(within_deg) <= 180:
        raise CalibrationError(f"within_deg must be in (0, 180] degrees, got {within_deg}")


def _logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, _EPS, 1 - _EPS)
    return np.log(s / (1 - s))


def _platt(scores: np.ndarray, hits: np.ndarray, what: str) -> tuple[float, float]:
    """(slope, bias) maximising the logistic likelihood of `hits` given logit(scores): Newton's method
    (two parameters, a few steps), with a tiny ridge so that all-hits or all-misses data stays finite."""
    x = np.stack([_logit(scores), np.ones(len(scores))], 1)
    w = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        step = np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2), x.T @ (p - hits) + 1e-6 * w)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    if not w[0] > 0:
        raise CalibrationError(
            f"the scores of the {what} do not rank their hits (fitted slope {w[0]:.3f}): no monotone "
            "calibration exists; check that the views are labelled for this model")
    return float(w[0]), float(w[1])


def fit_calibration(scores: np.ndarray, errors_deg: np.ndarray, within_deg: float = PI6_DEG,
                    source: str = "", min_views: int = 20) -> ConfidenceCalibration:
    """Platt scaling of (N, H) hypothesis scores against whether each hypothesis was within `within_deg`.

    The answers (column 0) and the alternatives (the rest) are fitted apart; alternatives
    without mass (score 0) are left out, as the server never shows them. With fewer than
    `min_views` alternatives that have mass (or H = 1), the alternatives share the answers' map.
    """
    check_within_deg(within_deg)
    s = np.asarray(scores, np.float64)
    err = np.asarray(errors_deg, np.float64)
    if s.shape != err.shape or s.ndim != 2:
        raise CalibrationError(f"scores {s.shape} and errors {err.shape} must both be (N, H)")
    if len(s) < min_views:
        raise CalibrationError(f"calibration needs at least {min_views} labelled views, got {len(s)}")
    hit = (err < within_deg).astype(np.float64)
    answer = _platt(s[:, 0], hit[:, 0], "answers")
    shown = s[:, 1:] > 0
    alternatives = (_platt(s[:, 1:][shown], hit[:, 1:][shown], "alternatives") if shown.sum() >= min_views
                    else answer)
    return ConfidenceCalibration(answer=answer, alternatives=alternatives, within_deg=float(within_deg),
                                 views=len(s), source=source)


def calibration_error(probs: np.ndarray, hits: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |mean probability − hit rate| per equal-width bin, weighted by its share."""
    p = np.asarray(probs, np.float64).ravel()
    h = np.asarray(hits, np.float64).ravel()
    if not len(p):
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[idx == b].mean() - h[idx == b].mean()) * np.mean(idx == b)
                     for b in range(bins) if np.any(idx == b)))
