"""OHEM cross-entropy plus a soft Dice term (``loss=ohem_dice``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segmentation_models_pytorch.losses import DiceLoss
from torch import Tensor

from segohem.losses._mining_ce import MiningOptions
from segohem.losses._validate import Count, check_non_negative
from segohem.losses.ohem import OhemCELoss

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11


class OhemDiceLoss(OhemCELoss):
    """``OhemCELoss`` + ``dice_weight`` x SMP's multiclass soft Dice loss.

    The OHEM term is exactly :class:`~segohem.losses.OhemCELoss` (same arguments, same
    mining, statistics and ``selected_pixels``). The Dice term is
    ``segmentation_models_pytorch.losses.DiceLoss("multiclass", ignore_index=ignore_index)``:
    per class, ``1 - 2 |P ∩ Y| / (|P| + |Y|)`` on the softmax probabilities over the whole
    batch, averaged over the classes (a class absent from the batch's labels counts 0),
    ignored pixels left out.

    Why both: a per-pixel loss, OHEM's included, weighs a class by its number of (hard)
    pixels, so a 2x2 speck or a 1-px wire among 10^5 background pixels hardly moves it;
    Dice weighs every class present in the batch alike, whatever its size. On held-out
    imbalanced sets (docs/benchmarks.md) the sum learns tiny classes that OHEM alone leaves
    near 0 IoU.

    Under DDP the Dice term is computed on each rank's shard (``sync_across_ranks`` applies
    to the OHEM term only). Shapes: ``logits (B, C, *spatial)`` any float dtype (float32
    inside), ``labels (B, *spatial)``; returns a float32 scalar.

    Args:
        thresh, n_min: those of :class:`~segohem.losses.OhemCELoss`.
        dice_weight: weight of the Dice term (finite, >= 0; 0 gives exactly ``OhemCELoss``).
        **options: the other arguments of ``OhemCELoss`` (``ignore_index``, ``weight``,
            ``per_image``, ``check_labels``, ``sync_across_ranks``).

    Attributes:
        last_stats: the OHEM term's :class:`~segohem.losses.MiningStats` of the last call.
        last_terms: ``{"ohem": ..., "dice": ...}`` detached unweighted terms of the last call.
    """

    def __init__(self, thresh: float = 0.7, n_min: Count = None, *, dice_weight: float = 0.5,
                 **options: Unpack[MiningOptions]) -> None:
        super().__init__(thresh, n_min, **options)
        self.dice_weight = check_non_negative(
            "dice_weight", dice_weight, hint=" (the weight of the Dice term; 0 turns it off)")
        self.dice = DiceLoss("multiclass", ignore_index=self.ignore_index)
        self.last_terms: dict[str, Tensor] = {}

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``. Returns a scalar."""
        ohem = super().forward(logits, labels)  # checks shapes and labels first
        if self.dice_weight == 0.0:
            self.last_terms = {"ohem": ohem.detach()}
            return ohem
        dice = self.dice(logits.float(), labels)
        self.last_terms = {"ohem": ohem.detach(), "dice": dice.detach()}
        return ohem + self.dice_weight * dice

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dice_weight={self.dice_weight}"
