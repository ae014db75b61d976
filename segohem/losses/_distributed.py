"""Cross-rank sums for mining on the global batch (``sync_across_ranks=True``).

Only fixed-size tensors travel: counts, two radix-select histograms of the loss values
(32 768 and 65 536 int64 bins) and the loss value; never pixels. ``all_reduce`` is issued on
the device's stream (NCCL) or as a blocking call (gloo, CPU); it never reads a value back
to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

Reduce = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class RankSum:
    """Sum over the ranks of the default process group."""

    world_size: int

    def __call__(self, tensor: Tensor) -> Tensor:
        out = tensor.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def rank_sum(enabled: bool) -> RankSum | None:
    """A :class:`RankSum` when ``enabled`` and a process group of >1 ranks is running, else
    None (single process: mining is already global)."""
    if not enabled:
        return None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return RankSum(dist.get_world_size())


def global_value_local_gradient(partial: Tensor, reduce: RankSum) -> Tensor:
    """The global loss as value, ``world_size * d(partial)`` as gradient.

    ``partial`` is this rank's share of the global loss (the shares sum to it). DDP averages
    gradients over the ranks, so scaling the local gradient by the world size makes the
    averaged gradient the gradient of the global loss; the value every rank reports is the
    global loss itself.
    """
    scaled = partial * reduce.world_size
    return scaled + (reduce(partial) - scaled.detach())

