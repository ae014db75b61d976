"""Plain cross-entropy, NaN-safe on batches without a valid pixel."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segohem.losses._mining_ce import checked_pixel_cross_entropy
from segohem.losses._validate import (
    check_logits_labels,
    class_weight_tensor,
    pixel_class_weights,
)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` with segmentation defaults.

    Same value and gradient as ``F.cross_entropy(logits, labels, weight, ignore_index=255)``
    (mean over valid pixels, ``sum w[y] * ce / sum w[y]`` with class weights), except that:
    it is computed in float32 (AMP safe); a batch without a valid pixel gives 0 with zero
    gradients instead of NaN; ``weight`` may be a list (e.g. from a config); labels
    outside ``[0, C)`` other than ``ignore_index`` raise a ``ValueError`` naming them
    (``check_labels=False`` skips that check and its host-device sync). It uses segohem's
    per-pixel cross-entropy (:mod:`segohem.losses._pixel_ce`), which allocates no
    ``(B, C, H, W)`` tensor in backward, so the graph can be backpropagated only once.

    Shapes: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``; returns a scalar.
    """

    def __init__(
        self,
        ignore_index: int = 255,
        weight: Sequence[float] | Tensor | None = None,
        check_labels: bool = True,
    ) -> None:
        super().__init__(weight=class_weight_tensor(weight), ignore_index=int(ignore_index))
        self.check_labels = bool(check_labels)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        labels = check_logits_labels(logits, labels)
        valid = labels != self.ignore_index
        ce = checked_pixel_cross_entropy(logits, labels, valid, self.ignore_index,
                                         self.check_labels).reshape(-1)
        if self.weight is None:  # ce is 0 on ignored pixels
            return ce.sum() / torch.count_nonzero(valid).clamp_min(1)
        pixel_weight = pixel_class_weights(self.weight, labels, valid, logits.shape[1])
        pixel_weight = pixel_weight.reshape(-1)
        total = pixel_weight.sum()
        return torch.dot(ce, pixel_weight) / torch.where(total > 0, total, 1.0)

    @torch.no_grad()
    def selected_pixels(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``(B, *spatial)`` float32: 1 on every valid pixel (plain CE keeps them all)."""
        labels = check_logits_labels(logits, labels)
        return (labels != self.ignore_index).to(torch.float32)
