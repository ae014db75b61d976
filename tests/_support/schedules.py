"""The former hand-written ``PolyLR`` schedule (a LambdaLR): the reference that
``segohem.train.optim.poly_lr`` (torch schedulers) must reproduce, and helpers to step schedules."""

import torch
from torch import nn


def old_poly_lr(step: int, total: int, power: float = 0.9, warmup: int = 0,
                start: float = 0.1, min_lr: float = 0.0, base_lr: float = 1.0) -> float:
    """The rate of the former hand-written ``PolyLR`` (a LambdaLR) at ``step``: the reference
    that ``poly_lr`` (torch schedulers) must reproduce."""
    warmup = min(warmup, total // 2)
    decay = max(total - warmup, 1)
    if step < warmup:
        value = start + (1.0 - start) * step / warmup
    else:
        value = max(1.0 - (step - warmup) / decay, 0.0) ** power
    return base_lr * max(value, min_lr / base_lr if base_lr > 0 else 0.0)


def lr_sequence(optimizer, schedule, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def sgd(lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def former_poly_state(steps: int, total: int, **kwargs) -> tuple[dict, dict]:
    """Optimizer and LambdaLR states as the former PolyLR saved them after ``steps`` steps."""
    optimizer = sgd()
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: old_poly_lr(t, total, base_lr=1.0, **kwargs))
    lr_sequence(optimizer, schedule, steps)
    return optimizer.state_dict(), schedule.state_dict()
