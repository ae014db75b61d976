"""A weighted sum of losses, e.g. ``OhemCELoss + 0.5 * smp.losses.DiceLoss``."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from segohem.losses._mining import MiningStats


class WeightedSumLoss(nn.Module):
    """``sum_i weights[name_i] * losses[name_i](logits, labels)``.

    Each term gets the same ``logits (B, C, H, W)`` (cast to float32 once, so terms such as
    SMP's ``DiceLoss`` are AMP safe too) and ``labels (B, H, W)``.

    Args:
        losses: name -> loss module (any ``(logits, labels) -> scalar`` callable module).
        weights: name -> weight; names left out weigh 1.0.

    Attributes:
        last_terms: name -> detached unweighted value of each term at the last call.
    """

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None):
        super().__init__()
        if not losses:
            raise ValueError("WeightedSumLoss needs at least one loss in `losses`.")
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(losses))
        if unknown:
            raise ValueError(f"weights given for {unknown}, which are not in losses "
                             f"{sorted(losses)}.")
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.losses}
        self.last_terms: dict[str, Tensor] = {}

    @property
    def last_stats(self) -> MiningStats | None:
        """Mining statistics of the first term that records them (None if none does)."""
        for loss in self.losses.values():
            stats = getattr(loss, "last_stats", None)
            if stats is not None:
                return stats
        return None

    def selected_pixels(self, logits: Tensor, labels: Tensor) -> Tensor | None:
        """Pixels kept by the first term that mines (see ``OhemCELoss.selected_pixels``),
        or None when no term selects pixels."""
        for loss in self.losses.values():
            if hasattr(loss, "selected_pixels"):
                return loss.selected_pixels(logits.float(), labels)
        return None

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = logits.float()
        total = torch.zeros((), device=logits.device)
        terms = {}
        for name, loss in self.losses.items():
            value = loss(logits, labels)
            terms[name] = value.detach()
            total = total + self.weights[name] * value
        self.last_terms = terms
        return total

    def extra_repr(self) -> str:
        return "weights=" + ", ".join(f"{k}: {v}" for k, v in self.weights.items())
