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
import time
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
# How long the end of a run waits for gloo's worker threads to let go of this process's tensors.
RELEASE_TIMEOUT_S = 60.0

# Tensors handed to collectives, kept until gloo's worker threads have dropped them (`_wait_released`).
_handed: list[torch.Tensor] = []

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
        _wait_released()
    finally:
        dist.destroy_process_group()


def _hand(*tensors: torch.Tensor) -> None:
    """Remember tensors given to a collective, forgetting those the worker threads have let go."""
    _handed[:] = [t for t in _handed if t._use_count() > 1]
    _handed.extend(tensors)


def _wait_released(timeout_s: float = RELEASE_TIMEOUT_S) -> None:
    """Sleep (GIL released) until gloo's worker threads have dropped every tensor handed to them.

    A gloo worker thread releases a finished collective after `wait()` has returned, and
    the final barrier keeps the collectives still in flight when it was issued (the
    replica check just before it) until it is released itself. Releasing a tensor that
    Python has seen takes the GIL; once the interpreter is finalising, CPython ends a
    thread that asks for it (pthread_exit), and unwinding gloo's C++ frames that way
    aborts the process ("terminate called without an active exception": a torchrun job
    failing after training had finished: 3 of 285 runs of the two-process test on two loaded cores).
    """
    deadline = time.monotonic() + timeout_s
    while any(t._use_count() > 1 for t in _handed) and time.monotonic() < deadline:
        time.sleep(0.001)
    _handed.clear()


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

    def forward(self, feats: torch.Tensor, coordinates: bool = False, reversal: float | None = None) -> tuple:
        return self.model.forward_features(feats, coordinates, reversal)


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
    _hand(t)
    dist.all_reduce(t)
    return dict(zip(values, t.tolist()))


def check_replicas(params: Iterable[torch.Tensor], ranks: Ranks, epoch: int) -> None:
    """Raise if the processes' trained parameters differ: their gradients were not synchronised."""
    if not ranks.distributed:
        return
    params = list(params)
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().cpu().numpy().tobytes())
    # on the parameters' device: NCCL gathers CUDA tensors only
    mine = torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8).to(params[0].device)
    gathered = [torch.empty_like(mine) for _ in range(ranks.world)]
    _hand(mine, *gathered)
    dist.all_gather(gathered, mine)
    digests = [bytes(g.tolist()).hex() for g in gathered]
    if len(set(digests)) > 1:
        raise RuntimeError(f"model replicas diverged in epoch {epoch + 1}: parameter digests {digests}")
