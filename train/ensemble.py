"""Deep ensembles of the joint network on one or more frozen feature networks, exported as one graph.

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

Members may also sit on different feature networks (another EfficientNet-Lite:
`train_members(backbones=...)`, `RecipeConfig.member_backbones`), whose frozen
features differ and so may err apart: the graph then runs each distinct network
once (the first as `features`, the others as `more_features.<j>`), and members
that share one share its pass. A Lite0 and a Lite1 member in the reference recipe
were no better than two Lite0 members (figures in `RecipeConfig.member_backbones`).

`exported_model` builds what the bundle graph computes from checkpoints: one
network or an ensemble, optionally flip-averaged (vantage.train.test_time);
`train_members` trains the members side by side.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from vantage.train.model import JointPoseNet, ModelConfig
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


def _same_network(a: nn.Module, b: nn.Module) -> bool:
    """Same layout and the same weights: one pass of either gives both members' features."""
    mine, theirs = a.state_dict(), b.state_dict()
    return mine.keys() == theirs.keys() and all(
        mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k]) for k in mine)


class PoseEnsemble(nn.Module):
    """Members on one or more frozen feature networks; the bundle graph contract of `PoseModel`.

    Member 0's network is registered first as `features`, so its nodes export under
    `/features/`, any other distinct network's under `/more_features.<j>/`, and the
    members' trunks under `/members.<i>/trunk` (vantage.export.scopes).
    """

    def __init__(self, members: Sequence[JointPoseNet], agree_deg: float = AGREE_DEG) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        networks: list[nn.Module] = []
        feature_index = []
        for i, m in enumerate(members):
            if m.config.categories != first.config.categories or m.config.input_size != first.config.input_size:
                raise ValueError(f"member {i} has other categories or input size than member 0")
            j = next((j for j, net in enumerate(networks) if _same_network(net, m.features)), len(networks))
            if j == len(networks):
                networks.append(m.features)
            feature_index.append(j)
        self.features = networks[0]
        self.more_features = nn.ModuleList(networks[1:])
        self.members = nn.ModuleList(_Member(m) for m in members)
        self.feature_index = tuple(feature_index)  # member i looks at network feature_index[i]
        self.config = first.config
        self.embedding_dim = first.embedding_dim
        self.ensemble_size = len(members)
        self.agree_deg = agree_deg

    def looks_at(self, image: torch.Tensor, category_hint: torch.Tensor) -> Looks:
        """Every member's look, one pass per distinct feature network: mean category probabilities,
        member 0's embedding (so an index built on member 0's network serves the ensemble)."""
        feats = [net(image) for net in (self.features, *self.more_features)]
        looks = [member(feats[j], category_hint) for member, j in zip(self.members, self.feature_index)]
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


def member_configs(cfg: TrainConfig, members: int, backbones: Sequence[str] = ()) -> list[TrainConfig]:
    """Member i's training configuration: `cfg` with its seed (`member`), its run folder
    `cfg.out/member<i>`, the shared feature cache, and `backbones[i]` (at that backbone's
    default tap) where given; only member 0 draws a progress bar."""
    if backbones and len(backbones) != members:
        raise ValueError(f"{len(backbones)} backbones for {members} members: give one per member or none")
    shared = replace(cfg, feature_cache=cfg.feature_cache or cfg.out)
    return [replace(shared, out=str(Path(cfg.out) / f"member{i}"), member=i, progress=cfg.progress and i == 0,
                    model=replace(cfg.model, backbone=backbones[i], tap=None) if backbones else cfg.model)
            for i in range(members)]


def distinct_models(cfgs: Sequence[TrainConfig]) -> list[ModelConfig]:
    """The members' different architectures, once each (members alike by default share one)."""
    return list({json.dumps(c.model.to_dict()): c.model for c in cfgs}.values())


def train_members(cfg: TrainConfig, members: int, backbones: Sequence[str] = ()) -> list[Path]:
    """Train `members` networks side by side, one process each, on shared feature caches; their checkpoints.

    Training runs one thread per process (two threads per step were slower on a
    shared 2-core CPU), so a second member uses the otherwise idle core. Each
    distinct feature network's cache is computed first, once, here (its key names the
    network, so several live in one folder); member i writes to `cfg.out/member<i>`
    (`member_configs`). One member without `backbones` trains in this process, in
    `cfg.out`. The members are spawned processes, so a script that calls this needs
    Python's `if __name__ == "__main__":` guard.
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    if members == 1 and not backbones:
        return [train(cfg)]
    cfgs = member_configs(cfg, members, backbones)
    for model in distinct_models(cfgs):
        prepare_feature_cache(replace(cfgs[0], out=cfg.out, model=model))
    print(f"training {members} ensemble members side by side (progress of member 0)", flush=True)
    with ProcessPoolExecutor(members, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(train, cfgs))
