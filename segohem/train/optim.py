"""Learning-rate schedules (torch's own schedulers) and their continuation on resume."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, LinearLR, LRScheduler, PolynomialLR, SequentialLR


def poly_lr(optimizer: Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
            warmup_start_factor: float = 0.1, min_lr: float = 0.0) -> SequentialLR:
    """Linear warm-up then polynomial decay, stepped once per optimizer step.

    ``lr(t) = max(base_lr * f(t), min_lr)`` at step ``t`` where, for ``t < warmup_steps``,
    ``f = warmup_start_factor + (1 - warmup_start_factor) * t / warmup_steps``, and after it
    ``f = (1 - (t - warmup_steps) / (total_steps - warmup_steps)) ** power`` (0 from
    ``total_steps`` on). Built as torch's ``SequentialLR`` of ``LinearLR`` (warm-up) and
    ``PolynomialLR`` (decay), with ``ConstantLR`` phases where the ``min_lr`` floor holds
    (and for step 0 of a warm-up from 0, which ``LinearLR`` cannot start at).

    Args:
        optimizer: the wrapped optimizer (its current ``lr`` per group is ``base_lr``).
        total_steps: optimizer steps of the whole run (Lightning's
            ``trainer.estimated_stepping_batches``).
        power: decay exponent (0.9 is the DeepLab / mmsegmentation default).
        warmup_steps: linear warm-up length in steps. A warm-up longer than half the run is
            shortened to ``total_steps // 2`` with a warning, so short runs (``debug=limit``,
            smoke tests) still decay.
        warmup_start_factor: fraction of the base rate at step 0, in [0, 1].
        min_lr: lower bound of the rate (lr units); at most the optimizer's ``lr``, and with
            ``min_lr > 0`` all parameter groups must share one ``lr``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    if not 0.0 <= warmup_start_factor <= 1.0:
        raise ValueError(f"warmup_start_factor must be in [0, 1], got {warmup_start_factor}.")
    if warmup_steps < 0 or power <= 0 or min_lr < 0:
        raise ValueError(f"need warmup_steps >= 0, power > 0, min_lr >= 0; got "
                         f"{warmup_steps}, {power}, {min_lr}.")
    total, warmup = int(total_steps), int(warmup_steps)
    if warmup > total // 2:
        warnings.warn(
            f"scheduler.warmup_steps={warmup} is more than half of this run's {total} "
            f"optimizer steps; warming up for {total // 2} steps instead so the rate "
            f"still decays. Set scheduler.warmup_steps <= {total // 2} to silence this.",
            UserWarning, stacklevel=2)
        warmup = total // 2
    decay = max(total - warmup, 1)
    floor = _floor_factor(optimizer, min_lr)

    def warm(t: int) -> float:
        return warmup_start_factor + (1.0 - warmup_start_factor) * t / warmup

    def poly(t: int) -> float:
        return max(1.0 - (t - warmup) / decay, 0.0) ** power

    schedulers: list[LRScheduler] = []
    milestones: list[int] = []

    def phase(start: int, scheduler: LRScheduler) -> None:
        if schedulers:
            milestones.append(start)
        schedulers.append(scheduler)

    if warmup:  # floored while warm(t) <= floor (always at step 0 of a warm-up from 0)
        rises = next((t for t in range(warmup) if warm(t) > floor), warmup)
        if rises > 0:
            phase(0, ConstantLR(optimizer, factor=floor, total_iters=sys.maxsize))
        if rises < warmup:
            phase(rises, LinearLR(optimizer, start_factor=warm(rises), end_factor=1.0,
                                  total_iters=warmup - rises))
    floored = (next(t for t in range(warmup, warmup + decay + 1) if poly(t) <= floor)
               if floor > 0 else None)
    if floored is None or floored > warmup:
        phase(warmup, PolynomialLR(optimizer, total_iters=decay, power=power))
    if floored is not None:
        phase(floored, ConstantLR(optimizer, factor=floor, total_iters=sys.maxsize))
    return SequentialLR(optimizer, schedulers, milestones)


def _floor_factor(optimizer: Optimizer, min_lr: float) -> float:
    """``min_lr`` as a fraction of the optimizer's (one) base rate; 0 without a floor."""
    if min_lr == 0:
        return 0.0
    rates = {float(group["lr"]) for group in optimizer.param_groups}
    if len(rates) > 1:
        raise ValueError(f"scheduler.min_lr={min_lr} needs one learning rate for all parameter "
                         f"groups, got {sorted(rates)}.")
    rate = rates.pop()
    if min_lr > rate:
        raise ValueError(f"scheduler.min_lr={min_lr} is above the optimizer's lr={rate}.")
    return min_lr / rate if rate > 0 else 0.0


def state_at_step(build: Callable[[Optimizer], LRScheduler], base_lrs: Sequence[float],
                  step: int) -> dict[str, Any]:
    """The ``state_dict`` of ``build(optimizer)`` after ``step`` steps, for an optimizer whose
    parameter groups start at ``base_lrs``; its rates are ``state["_last_lr"]``.

    Resuming uses it to continue the schedule of the *current* run at the saved step: torch's
    chainable schedulers save their plan (e.g. ``total_iters``) with the step, so loading the
    saved state as it is would keep the plan of the run that wrote it (a run resumed with more
    epochs would stay at the end of its old decay). It also reads the ``LambdaLR`` state of
    the former ``segohem.train.optim.PolyLR``. ``build`` runs on a stand-in optimizer."""
    optimizer = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr}
                                 for lr in base_lrs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warm-up note, and stepping without optimizer.step
        scheduler = build(optimizer)
        for _ in range(int(step)):
            scheduler.step()
    return scheduler.state_dict()


def resume_schedule(checkpoint: dict[str, Any], build: Callable[[Optimizer], LRScheduler]
                    ) -> None:
    """Let a resumed fit continue *this* run's LR schedule at the saved step (as the former
    LambdaLR-based ``PolyLR`` did): ``checkpoint``'s scheduler state and its optimizer's saved
    rates are replaced, in place, by those of ``build`` (the schedule for this run's total
    steps: more epochs on resume, a longer schedule) at the saved step
    (:func:`state_at_step`). Reads checkpoints of ``PolyLR`` too; a checkpoint with several
    optimizers or schedulers, or without ``initial_lr``, is left as it is."""
    schedulers = checkpoint.get("lr_schedulers") or []
    optimizers = checkpoint.get("optimizer_states") or []
    if len(schedulers) != 1 or len(optimizers) != 1 or "last_epoch" not in schedulers[0]:
        return
    groups = optimizers[0]["param_groups"]
    if any("initial_lr" not in group for group in groups):
        return
    state = state_at_step(build, [group["initial_lr"] for group in groups],
                          schedulers[0]["last_epoch"])
    schedulers[0] = state
    for group, lr in zip(groups, state["_last_lr"], strict=True):
        group["lr"] = lr
