"""Learning-rate schedules."""

from __future__ import annotations

import warnings

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class PolyLR(LambdaLR):
    """Polynomial decay with linear warm-up, stepped once per iteration.

    ``lr(t) = base_lr * f(t)`` where, for ``t < warmup_steps``,
    ``f = warmup_start_factor + (1 - warmup_start_factor) * t / warmup_steps``, and after it
    ``f = (1 - (t - warmup_steps) / (total_steps - warmup_steps)) ** power``, floored so
    that the rate never goes below ``min_lr`` (in lr units).

    Args:
        optimizer: the wrapped optimizer.
        total_steps: number of optimizer steps of the whole run (Lightning's
            ``trainer.estimated_stepping_batches``).
        power: decay exponent (0.9 is the DeepLab / mmsegmentation default).
        warmup_steps: linear warm-up length in steps. A warm-up longer than half the run is
            shortened to ``total_steps // 2`` with a warning, so short runs (``debug=limit``,
            smoke tests) still decay.
        warmup_start_factor: fraction of the base rate at step 0.
        min_lr: lower bound of the rate.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, power: float = 0.9,
                 warmup_steps: int = 0, warmup_start_factor: float = 0.1,
                 min_lr: float = 0.0) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
        if not 0.0 <= warmup_start_factor <= 1.0:
            raise ValueError(f"warmup_start_factor must be in [0, 1], got {warmup_start_factor}.")
        if warmup_steps < 0 or power <= 0 or min_lr < 0:
            raise ValueError(f"need warmup_steps >= 0, power > 0, min_lr >= 0; got "
                             f"{warmup_steps}, {power}, {min_lr}.")
        warmup = int(warmup_steps)
        if warmup > total_steps // 2:
            warnings.warn(
                f"scheduler.warmup_steps={warmup} is more than half of this run's {total_steps} "
                f"optimizer steps; warming up for {total_steps // 2} steps instead so the rate "
                f"still decays. Set scheduler.warmup_steps <= {total_steps // 2} to silence this.",
                UserWarning, stacklevel=2)
            warmup = total_steps // 2
        decay = max(int(total_steps) - warmup, 1)
        base_lrs = [group["lr"] for group in optimizer.param_groups]

        def factor(step: int, base_lr: float) -> float:
            if step < warmup:
                value = warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup
            else:
                value = max(1.0 - (step - warmup) / decay, 0.0) ** power
            return max(value, min_lr / base_lr if base_lr > 0 else 0.0)

        super().__init__(optimizer, [lambda s, b=b: factor(s, b) for b in base_lrs])
