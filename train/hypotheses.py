"""From what a bundle's networks saw to what the bundle answers: the voted pose and ranked alternatives.

A model looks at a crop one or more times (ensemble members, the mirrored crop);
each look gives an answer (its most probable pose) and every pose it weighed with
its probability (`vantage.train.heads.candidates`: for Bin & Delta heads each key
pose + delta, weighted by the bin probabilities). `conclude` turns the looks into
the bundle graph's outputs: the vote over the answers (`voting_mean`), and
`POSE_HYPOTHESES` hypotheses, the answer first, each scored by its share of the
probability mass of all looks (`pose_modes`).

Why alternatives: a third of the misses on unseen meshes are front/back
confusions or a symmetric object's other turns, which the pose distribution
carries as a second mode. Measured on the reference bundle's 360 held-out CAD
views (fold 0, docs/results/reference.json "hypotheses"): Acc@π/6 0.669 for the
answer, 0.808 when the better of the first two hypotheses counts, 0.856 of three,
0.892 of four (MedErr 15.3°, 12.4°, 12.0°, 11.7°); and the answer's score is a
usable confidence (Acc@π/6 0.86 of the 195 views scoring ≥ 0.9, 0.59 at 0.7-0.9,
0.40 at 0.5-0.7, 0.22 at 0.3-0.5). Four hypotheses: the fourth still adds 0.04 at
a mean score of 0.008. The cost is a few small matrix products over 64 candidates:
the reference bundle on ORT CPU 15.25 ms at batch 1 with the hypothesis outputs vs
15.18-15.28 ms without (the same graph with them cut off), 73.5 vs 70.8-71.3 ms at batch 8.
The score ranks well but is not a calibrated probability: on meshes it never saw the
model is overconfident (0.86 hits where it put 0.9-1.0 of its mass near the answer).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from vantage.train.geometry_torch import axis_angle_to_rotation, pose_modes, voting_mean

# Poses within this angle agree: the vote's radius (vantage.train.test_time) and the hypotheses'. For the
# hypotheses, on folds 0 / 1 / 2, Acc@π/6 of the best of 2 at 30°, 45°, 60°, 90°: 0.817 / 0.808 / 0.800 /
# 0.811, 0.756 / 0.758 / 0.750 / 0.744, 0.747 / 0.753 / 0.753 / 0.769; of 4: 0.881 / 0.892 / 0.844 / 0.833,
# 0.858 / 0.833 / 0.822 / 0.775, 0.836 / 0.858 / 0.825 / 0.808. Wider radii lump modes together (higher
# scores, weaker alternatives), narrower ones split a mode: 45° is at or near the top, as for the vote.
AGREE_DEG = 45.0
POSE_HYPOTHESES = 4


class Looks(NamedTuple):
    """What one or more looks at a batch of crops produced (lists: one entry per look)."""

    probs: torch.Tensor  # (N, K) category probabilities, averaged over the looks
    answers: list[torch.Tensor]  # (N, 3) axis-angle, each look's answer
    candidates: list[torch.Tensor]  # (N, B, 3) axis-angle, each look's weighed poses
    weights: list[torch.Tensor]  # (N, B) their probabilities, summing to 1 per look
    embedding: torch.Tensor  # (N, D) the retrieval embedding of the plain crop


def conclude(looks: Looks, agree_deg: float = AGREE_DEG, count: int = POSE_HYPOTHESES) -> tuple[torch.Tensor, ...]:
    """The bundle graph's outputs: (category_probs, axis_angle, rotation, embedding, pose_hypotheses, hypothesis_scores)."""
    agree = math.radians(agree_deg)
    answers = looks.answers
    y = answers[0] if len(answers) == 1 else voting_mean(answers, agree)
    hyps, scores = pose_modes(y, torch.cat(looks.candidates, -2), torch.cat(looks.weights, -1), count, agree)
    return looks.probs, y, axis_angle_to_rotation(y), looks.embedding, hyps, scores
