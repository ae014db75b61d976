"""Bootstrapped cross-entropy: the mean of the largest top-k fraction of pixel losses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segohem.losses._mining_ce import MiningCrossEntropy, MiningOptions
from segohem.losses._validate import check_int, check_probability

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11


class TopKCELoss(MiningCrossEntropy):
    """Bootstrapped cross-entropy (DeepLab's ``top_k_percent_pixels``, detectron2's DeepLabCE).

    The loss is the mean cross-entropy of the ``k = floor(top_k * valid)`` largest
    per-pixel losses among the valid (non-ignored) pixels, with ``k >= 1`` whenever a
    valid pixel exists. Unlike detectron2, ignored pixels are not counted in
    ``valid`` (their zero losses never dilute the mean). Ties at the k-th value share the
    remaining rank, as in :class:`~segohem.losses.OhemCELoss`.

    With ``warmup_steps > 0`` the fraction falls linearly from 1.0 (plain CE) to ``top_k``
    over that many training-mode calls, as TensorFlow DeepLab's
    ``hard_example_mining_step``: ``fraction = 1 - (1 - top_k) * min(step / warmup_steps, 1)``.
    The call counter is the buffer ``step`` (saved in checkpoints, so a resumed run
    continues the schedule); calls in eval mode use the current fraction and do not count.
    It counts calls, not optimizer steps: when one instance is called several times per
    step (auxiliary heads, gradient accumulation), drive it with :meth:`set_step`.

    Shapes, dtypes, class weights, per-image mining, degenerate batches and the label check
    behave as in :class:`~segohem.losses.OhemCELoss`; no host-device sync apart from the
    optional label check.

    Args:
        top_k: final fraction of valid pixels kept, in (0, 1].
        warmup_steps: number of training calls over which the fraction decays to ``top_k``.
        **options: ``ignore_index``, ``weight``, ``per_image``, ``check_labels``,
            ``sync_across_ranks`` (:class:`~segohem.losses._mining_ce.MiningCrossEntropy`).
    """

    step: Tensor

    def __init__(self, top_k: float = 0.2, *, warmup_steps: int = 0,
                 **options: Unpack[MiningOptions]) -> None:
        super().__init__(**options)
        self.top_k = check_probability("top_k", top_k,
                                       hint=" It is the fraction of valid pixels kept.")
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def fraction(self) -> Tensor:
        """Current kept fraction as a float64 scalar tensor (``top_k`` after warm-up)."""
        if self.warmup_steps == 0:
            return torch.full((), self.top_k, dtype=torch.float64, device=self.step.device)
        progress = (self.step.to(torch.float64) / self.warmup_steps).clamp(max=1.0)
        # Exactly top_k once warm-up is over (1 - (1 - 0.2) * 1 is 0.19999999999999996).
        return torch.where(progress >= 1.0, self.top_k, 1.0 - (1.0 - self.top_k) * progress)

    def set_step(self, step: int) -> None:
        """Set the warm-up position, e.g. from ``trainer.global_step`` when the loss is
        called more than once per optimizer step (several heads, gradient accumulation)."""
        self.step.fill_(int(step))

    def loss_threshold(self) -> None:
        return None

    def min_kept(self, n_valid: Tensor) -> Tensor:
        k = torch.floor(n_valid.to(torch.float64) * self.fraction()).to(torch.int64)
        return torch.maximum(k, n_valid.clamp(max=1))

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``. Returns a float32 scalar."""
        loss = super().forward(logits, labels)
        if self.training and self.warmup_steps > 0:
            self.step.add_(1)
        return loss

    def extra_repr(self) -> str:
        return (f"top_k={self.top_k}, warmup_steps={self.warmup_steps}, "
                f"ignore_index={self.ignore_index}, per_image={self.per_image}")
