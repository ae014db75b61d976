"""Plain cross-entropy, NaN-safe on batches without a valid pixel."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segohem.losses._validate import check_label_range, check_logits_labels, class_weight_tensor


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` with segmentation defaults.

    Same value and gradient as ``F.cross_entropy(logits, labels, weight, ignore_index=255)``
    (mean over valid pixels, ``sum w[y] * ce / sum w[y]`` with class weights), except that:
    it is computed in float32 (AMP safe); a batch without a valid pixel gives 0 with zero
    gradients instead of NaN; ``weight`` may be a list (e.g. from a config); labels
    outside ``[0, C)`` other than ``ignore_index`` raise a ``ValueError`` naming them
    (``check_labels=False`` skips that check and its host-device sync).

    Shapes: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``; returns a scalar.
    """

    def __init__(
        self,
        ignore_index: int = 255,
        weight: Sequence[float] | Tensor | None = None,
        check_labels: bool = True,
    ) -> None:
        super().__init__(weight=class_weight_tensor(weight), ignore_index=int(ignore_index),
                         reduction="sum")
        self.check_labels = bool(check_labels)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        labels = check_logits_labels(logits, labels)
        valid = labels != self.ignore_index
        if self.check_labels:
            check_label_range(labels, valid, logits.shape[1], self.ignore_index)
        total = F.cross_entropy(logits.float(), labels, weight=self.weight,
                                ignore_index=self.ignore_index, reduction="sum")
        if self.weight is None:
            count = valid.sum().to(torch.float32)
        else:
            count = torch.where(valid, self.weight[torch.where(valid, labels, 0)], 0.0).sum()
        return total / torch.where(count > 0, count, 1.0)
