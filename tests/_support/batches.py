"""Test data builders."""

import torch


def make_batch(seed: int, batch: int, classes: int, height: int, width: int,
               ignore_fraction: float = 0.0, tie_step: float | None = None,
               scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(B, C, H, W)`` float32 logits and ``(B, H, W)`` labels with some 255s.

    ``tie_step`` rounds logits to multiples of it, which makes many per-pixel losses
    exactly equal (ties at the n_min-th value).
    """
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, height, width, generator=gen) * scale
    if tie_step is not None:
        logits = torch.round(logits / tie_step) * tie_step
    labels = torch.randint(0, classes, (batch, height, width), generator=gen)
    if ignore_fraction > 0:
        drop = torch.rand(batch, height, width, generator=gen) < ignore_fraction
        labels[drop] = 255
    return logits, labels


def value_and_grad(loss_fn, logits: torch.Tensor, labels: torch.Tensor):
    """``(loss value, d loss / d logits)`` of one forward + backward on a fresh leaf."""
    x = logits.detach().clone().requires_grad_()
    value = loss_fn(x, labels)
    value.backward()
    return value.detach(), x.grad

