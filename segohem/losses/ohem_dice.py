"""OHEM cross-entropy plus a soft Dice term (``loss=ohem_dice``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segohem.losses._dice import soft_dice_from_sums
from segohem.losses._mining_ce import Mined, MiningOptions
from segohem.losses._validate import Count, check_non_negative, pixel_class_weights
from segohem.losses.ohem import OhemCELoss

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11


class OhemDiceLoss(OhemCELoss):
    """``OhemCELoss`` + ``dice_weight`` x SMP's multiclass soft Dice loss
    + ``ce_weight`` x plain cross-entropy over every valid pixel (a CE floor).

    The OHEM term is exactly :class:`~segohem.losses.OhemCELoss` (same arguments, same
    mining, statistics and ``selected_pixels``). The Dice term is the value of
    ``segmentation_models_pytorch.losses.DiceLoss("multiclass", ignore_index=ignore_index)``:
    per class, ``1 - 2 |P ∩ Y| / (|P| + |Y|)`` on the softmax probabilities over the whole
    batch, averaged over the classes (a class absent from the batch's labels counts 0),
    ignored pixels left out; computed from per-class sums of the OHEM term's own log-softmax
    (:mod:`segohem.losses._dice`: the whole loss 0.93x instead of 5.9x ``F.cross_entropy`` on
    CPU at 2x19x512x1024, docs/benchmarks.md; equal to SMP's value up to rounding).

    Why both: a per-pixel loss, OHEM's included, weighs a class by its number of (hard)
    pixels, so a 2x2 speck or a 1-px wire among 10^5 background pixels hardly moves it;
    Dice weighs every class present in the batch alike, whatever its size. On held-out
    imbalanced sets (docs/benchmarks.md) the sum learns tiny classes that OHEM alone leaves
    near 0 IoU.

    The CE floor is the mean cross-entropy over all valid pixels (class-weighted as
    ``F.cross_entropy``'s ``'mean'`` with ``weight``; 0 with zero gradients when none is
    valid), computed from the OHEM term's own per-pixel CE (no second pass). Why: the mined
    term gives no gradient at all to a pixel once ``p(true class) >= thresh``, so where a
    soft, low-contrast class is hard to tell from the pixels around it, the training can park
    every such pixel at the threshold and never sharpen the features that separate them;
    plain CE keeps pushing the confident pixels and learns the class (docs/benchmarks.md,
    "No class left behind").

    Under DDP the Dice term and the CE floor are computed on each rank's shard
    (``sync_across_ranks`` applies to the OHEM term only). Shapes: ``logits (B, C,
    *spatial)`` any float dtype (float32 inside), ``labels (B, *spatial)``; returns a float32
    scalar.

    Args:
        thresh, n_min: those of :class:`~segohem.losses.OhemCELoss`.
        dice_weight: weight of the Dice term (finite, >= 0).
        ce_weight: weight of the CE floor (finite, >= 0). With both weights 0 the loss is
            exactly ``OhemCELoss``.
        **options: the other arguments of ``OhemCELoss`` (``ignore_index``, ``weight``,
            ``per_image``, ``check_labels``, ``sync_across_ranks``).

    Attributes:
        last_stats: the OHEM term's :class:`~segohem.losses.MiningStats` of the last call.
        last_terms: detached unweighted terms of the last call: ``ohem``, and ``dice`` /
            ``ce`` when their weight is not 0.
    """

    def __init__(self, thresh: float = 0.7, n_min: Count = None, *, dice_weight: float = 0.5,
                 ce_weight: float = 1.0, **options: Unpack[MiningOptions]) -> None:
        super().__init__(thresh, n_min, **options)
        self.dice_weight = check_non_negative(
            "dice_weight", dice_weight, hint=" (the weight of the Dice term; 0 turns it off)")
        self.ce_weight = check_non_negative(
            "ce_weight", ce_weight,
            hint=" (the weight of plain CE over all valid pixels; 0 turns it off)")
        self.wants_prob_sums = self.dice_weight != 0.0
        self.last_terms: dict[str, Tensor] = {}

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``. Returns a scalar."""
        reduce = self._rank_sum()
        mined = self._mine(logits, labels, reduce)  # checks shapes and labels first
        total = self._mined_loss(mined, logits.shape[1], reduce)
        self.last_terms = {"ohem": total.detach()}
        if self.dice_weight != 0.0:
            dice = soft_dice_from_sums(mined.prob_sums, mined.ce, mined.labels, mined.valid)
            self.last_terms["dice"] = dice.detach()
            total = total + self.dice_weight * dice
        if self.ce_weight != 0.0:
            ce = self._mean_ce(mined, logits.shape[1])
            self.last_terms["ce"] = ce.detach()
            total = total + self.ce_weight * ce
        return total

    def _mean_ce(self, mined: Mined, num_classes: int) -> Tensor:
        """The CE floor: (class-weighted) mean of ``mined.ce`` over the valid pixels, 0 if none."""
        if self.weight is None:
            total, norm = mined.ce.sum(), mined.n_valid.sum().to(torch.float32)
        else:
            weights = pixel_class_weights(self.weight, mined.labels, mined.valid, num_classes)
            total, norm = (mined.ce * weights.reshape(mined.ce.shape)).sum(), weights.sum()
        return torch.where(norm > 0, total / norm.clamp_min(torch.finfo(torch.float32).tiny),
                           total * 0.0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dice_weight={self.dice_weight}, ce_weight={self.ce_weight}"
