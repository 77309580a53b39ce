"""Data-parallel training under `torchrun` (DistributedDataParallel): gloo on CPU, NCCL on GPUs.

torchrun starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK.
Every process draws the same seeded epoch order, takes its share of each global
batch of `TrainConfig.batch_size` (`shard`), and DDP averages the gradients, so
the optimiser takes the steps of a single process on the same schedule; a run
resumes exactly with the same process count. By design, batch-norm statistics and
dropout masks are per process (SyncBatchNorm does not run on CPU). Rank 0 alone
builds the feature cache, logs and writes the checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

# Rank 0 alone builds the feature cache while the others wait at a barrier: minutes on a large dataset.
BARRIER_TIMEOUT = timedelta(hours=2)

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job; the defaults are a plain single-process run."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0 (also after the process group is gone)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def process_group(device: torch.device) -> Iterator[Ranks]:
    """Join the torchrun job for the block (NCCL on CUDA, gloo on CPU); a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield Ranks()
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield Ranks(dist.get_rank(), world)
        dist.barrier()  # the checkpoint rank 0 writes exists for every process once train() returns
    finally:
        dist.destroy_process_group()


def main_first(ranks: Ranks, make: Callable[[], T]) -> T:
    """`make()` on rank 0, then on the others: they read what rank 0 wrote (the feature cache)."""
    if ranks.main:
        result = make()
    if ranks.distributed:
        dist.barrier()
    if not ranks.main:
        result = make()
    return result


def shard(start: int, stop: int, ranks: Ranks) -> np.ndarray:
    """This process's positions of the global batch [start, stop): contiguous, sizes differ by ≤ 1."""
    return np.array_split(np.arange(start, stop), ranks.world)[ranks.rank]


def seed_dropout(seed: int, epoch: int, ranks: Ranks) -> None:
    """Ranks above 0 draw their own dropout masks, seeded per epoch so a resume needs no state of
    theirs; rank 0 keeps the stream the checkpoint stores (a single process is unchanged)."""
    if ranks.rank:
        torch.manual_seed(int(np.random.SeedSequence([seed, epoch, ranks.rank]).generate_state(1)[0]))


class _ForwardFeatures(nn.Module):
    """`forward_features` of a model as a module's forward, the call DDP synchronises."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor) -> tuple:
        return self.model.forward_features(feats)


def forward_features(model: nn.Module, ranks: Ranks) -> Callable:
    """`model.forward_features`, wrapped in DDP when distributed.

    Wrap again whenever `requires_grad` changes (the trainer wraps every epoch): DDP
    synchronises only the parameters that were trainable when it was built.
    """
    if not ranks.distributed:
        return model.forward_features
    return nn.parallel.DistributedDataParallel(_ForwardFeatures(model))


def all_sum(values: dict[str, float], ranks: Ranks, device: torch.device) -> dict[str, float]:
    """Per-key sums over all processes (epoch metrics)."""
    if not ranks.distributed:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, t.tolist()))


def check_replicas(params: Iterable[torch.Tensor], ranks: Ranks, epoch: int) -> None:
    """Raise if the processes' trained parameters differ: their gradients were not synchronised."""
    if not ranks.distributed:
        return
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().cpu().numpy().tobytes())
    digests: list[str | None] = [None] * ranks.world
    dist.all_gather_object(digests, h.hexdigest())
    if len(set(digests)) > 1:
        raise RuntimeError(f"model replicas diverged in epoch {epoch + 1}: parameter digests {digests}")
