"""Segmentation losses: OHEM cross-entropy (alone or with a Dice term), bootstrapped (top-k)
CE, binary OHEM, NaN-safe plain CE, minority-class rectification (CRL) and weighted sums of
losses (for SMP's Dice / Focal / Lovasz terms)."""

from segohem.losses._mining import MiningStats
from segohem.losses.binary import BinaryOhemLoss
from segohem.losses.ce import CrossEntropyLoss
from segohem.losses.crl import MinorityRectificationLoss, RectificationStats
from segohem.losses.ohem import OhemCELoss
from segohem.losses.ohem_dice import OhemDiceLoss
from segohem.losses.topk import TopKCELoss
from segohem.losses.weighted_sum import WeightedSumLoss

__all__ = [
    "BinaryOhemLoss",
    "CrossEntropyLoss",
    "MiningStats",
    "MinorityRectificationLoss",
    "OhemCELoss",
    "OhemDiceLoss",
    "RectificationStats",
    "TopKCELoss",
    "WeightedSumLoss",
]
