"""Deep ensembles of the joint network on one frozen feature network, exported as one graph.

Members trained from different seeds (`TrainConfig.member`) on the same cached
frozen features differ only after the tap, so the graph runs the feature network
once and each member's trunk block, category network and pose heads on its output
(ORT CPU, 192², 360 held-out renders: two members 37.5 ms at batch 8 vs 39.5 ms for one,
within timing noise; 11.3 vs 7.5 ms at batch 1; MedErr 16.2° vs 16.3°, and with flip
averaging 15.2° vs 15.7°). The
category probabilities are averaged; the poses are averaged on SO(3) over the
largest group that agrees within `agree_deg` (`voting_mean`), so two members that
confuse front and back do not meet halfway. Under flip averaging the vote runs over
every member's plain and mirrored answer at once (`looks_at`), so the others can
outvote member 0's plain answer, which a mean anchored on it, nested per crop, never
let them do (figures in vantage.train.test_time).

`exported_model` builds what the bundle graph computes from checkpoints: one
network or an ensemble, optionally flip-averaged (vantage.train.test_time);
`train_members` trains the members side by side.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from vantage.train.model import JointPoseNet
from vantage.train.hypotheses import AGREE_DEG, Looks, conclude
from vantage.train.test_time import with_test_time
from vantage.train.trainer import TrainConfig, load_model, prepare_feature_cache, train


class _Member(nn.Module):
    """A member's post-tap inference as a module call, so its nodes export under its own name scope."""

    def __init__(self, net: JointPoseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, feats: torch.Tensor, category_hint: torch.Tensor) -> Looks:
        return self.net.looks(feats, category_hint)


class PoseEnsemble(nn.Module):
    """Members sharing one feature network; the bundle graph contract of `PoseModel`.

    The shared network is registered first as `features`, so its nodes export under
    `/features/` and the members' trunks under `/members.<i>/trunk` (vantage.export.scopes).
    """

    def __init__(self, members: Sequence[JointPoseNet], agree_deg: float = AGREE_DEG) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for i, m in enumerate(members[1:], 1):
            if m.config.categories != first.config.categories or m.config.input_size != first.config.input_size:
                raise ValueError(f"member {i} has other categories or input size than member 0")
            mine, theirs = m.features.state_dict(), first.features.state_dict()
            if mine.keys() != theirs.keys() or any(not torch.equal(mine[k], theirs[k]) for k in mine):
                raise ValueError(f"member {i} has another feature network than member 0: ensemble members must "
                                 "share the frozen backbone (same backbone, tap and weights)")
        self.features = first.features
        self.members = nn.ModuleList(_Member(m) for m in members)
        self.config = first.config
        self.embedding_dim = first.embedding_dim
        self.ensemble_size = len(members)
        self.agree_deg = agree_deg

    def looks_at(self, image: torch.Tensor, category_hint: torch.Tensor) -> Looks:
        """Every member's look from one backbone pass: mean category probabilities, member 0's embedding."""
        feats = self.features(image)
        looks = [member(feats, category_hint) for member in self.members]
        return Looks(torch.stack([lk.probs for lk in looks]).mean(0), [a for lk in looks for a in lk.answers],
                     [c for lk in looks for c in lk.candidates], [w for lk in looks for w in lk.weights],
                     looks[0].embedding)

    def forward(self, image: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return conclude(self.looks_at(image, category_hint), self.agree_deg)


def exported_model(checkpoints: Sequence[str | Path], test_time: str = "none") -> tuple[nn.Module, dict]:
    """The module the bundle graph is exported from (one checkpoint's network or their ensemble,
    with the test-time mode) and the first checkpoint's training info (config, epoch, history)."""
    if not checkpoints:
        raise ValueError("no checkpoint given")
    loaded = [load_model(c) for c in checkpoints]
    nets = [net for net, _ in loaded]
    return with_test_time(nets[0] if len(nets) == 1 else PoseEnsemble(nets), test_time), loaded[0][1]


def train_members(cfg: TrainConfig, members: int) -> list[Path]:
    """Train `members` networks side by side, one process each, on one shared feature cache; their checkpoints.

    Training runs one thread per process (two threads per step were slower on a
    shared 2-core CPU), so a second member uses the otherwise idle core. The cache
    is computed first, once, here; member i writes to `cfg.out/member<i>` and only
    member 0 draws a progress bar. One member trains in this process, in `cfg.out`.
    The members are spawned processes, so a script that calls this needs Python's
    `if __name__ == "__main__":` guard.
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    if members == 1:
        return [train(cfg)]
    shared = replace(cfg, feature_cache=cfg.feature_cache or cfg.out)
    prepare_feature_cache(shared)
    cfgs = [replace(shared, out=str(Path(cfg.out) / f"member{i}"), member=i, progress=cfg.progress and i == 0)
            for i in range(members)]
    print(f"training {members} ensemble members side by side (progress of member 0)", flush=True)
    with ProcessPoolExecutor(members, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(train, cfgs))
