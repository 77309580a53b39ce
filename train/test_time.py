"""Flip test-time averaging, compiled into the bundle graph like the rest of the post-processing.

Every Vantage category is left-right symmetric (POSE.md's object frame mirrors
x ↦ −x), so the horizontally mirrored crop is a second look at the same object
whose pose maps back by R ↦ F·R·F. The poses of both crops (of each ensemble
member: the network's `looks_at`) are averaged on SO(3) over the largest group
that agrees within `agree_deg` (`voting_mean`; on a tie, the group of the plain crop
of member 0), because the midpoint of a front and a back view matches neither
(MEASURED.md's 2-NN finding). Category probabilities are averaged; the retrieval
embedding stays the plain crop's, the same descriptor the view index holds. Each
look's weighed poses (mirrored back the same way) are pooled into the graph's ranked
pose hypotheses (vantage.train.hypotheses).

Measured on the 192² reference recipe's 360 held-out CAD renders (docs/results/):
MedErr 17.2° → 15.2° with a 45° agreement threshold (30°: 15.3°, 90°: 15.8°,
always averaging: 19.0°; adding two more crop scales: 14.8°, not worth 3× the
compute). The price is a second backbone pass (the graph runs a doubled batch).

The vote over the reference recipe's four answers (two members × two crops) against
the mean anchored on member 0's plain crop, nested per crop, that it replaced: the
same checkpoints re-exported, MedErr / Acc@π/6 on held-out fold 1 18.2° / 0.639 vs
17.9° / 0.625, fold 2 20.3° / 0.567 vs 21.5° / 0.556 (symmetry-reduced Acc@π/6 0.778
vs 0.761 and 0.783 vs 0.772); weighting the votes by category or bin confidence was
no better, nor another threshold (20° to 90°: Acc@π/6 0.633-0.642 on fold 1,
0.550-0.567 on fold 2, 45° at or near the top of both).
"""

from __future__ import annotations

import torch
from torch import nn

from vantage.train.geometry_torch import mirror_axis_angle
from vantage.train.hypotheses import AGREE_DEG, Looks, conclude


class FlipAveraged(nn.Module):
    """A pose model (the bundle contract of `vantage.export.onnx_export.PoseModel`) that also looks at the mirror image.

    The wrapped network is the attribute `net`, so its backbone nodes export under
    `/net/features/` and `/net/trunk` (vantage.export.scopes).
    """

    test_time = "flip"  # recorded in the bundle metadata

    def __init__(self, net: nn.Module, agree_deg: float = AGREE_DEG) -> None:
        super().__init__()
        self.net = net
        self.config = net.config
        self.embedding_dim = net.embedding_dim
        self.ensemble_size = getattr(net, "ensemble_size", 1)
        self.agree_deg = agree_deg

    def forward(self, image: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        both = self.net.looks_at(torch.cat([image, image.flip(-1)]), torch.cat([category_hint, category_hint]))

        def halves(parts: list[torch.Tensor], mirror: bool = False) -> list[torch.Tensor]:
            split = [t.reshape(2, -1, *t.shape[1:]).unbind(0) for t in parts]
            return [p for p, _ in split] + [mirror_axis_angle(m) if mirror else m for _, m in split]

        probs, embedding = both.probs, both.embedding
        looks = Looks(probs.reshape(2, -1, probs.shape[-1]).mean(0), halves(both.answers, True),
                      halves(both.candidates, True), halves(both.weights), embedding.reshape(2, -1, embedding.shape[-1])[0])
        return conclude(looks, self.agree_deg)


TEST_TIME_MODES = ("none", "flip")


def with_test_time(net: nn.Module, mode: str) -> nn.Module:
    """The network as exported under a test-time mode (BundleMetadata.test_time): itself, or flip-averaged."""
    if mode not in TEST_TIME_MODES:
        raise ValueError(f"test-time mode must be one of {TEST_TIME_MODES}, got {mode!r}")
    return FlipAveraged(net) if mode == "flip" else net
