"""WeightedSumLoss: weighted sums of losses (OHEM + SMP's DiceLoss)."""

import pytest
import segmentation_models_pytorch as smp
import torch

from segohem.losses import OhemCELoss, WeightedSumLoss
from tests._support.batches import make_batch


def test_ohem_plus_half_dice():
    logits, labels = make_batch(1, 2, 4, 16, 16, ignore_fraction=0.1)
    dice = smp.losses.DiceLoss("multiclass", ignore_index=255)
    combined = WeightedSumLoss({"ohem": OhemCELoss(), "dice": dice}, weights={"dice": 0.5})
    value = combined(logits, labels)
    expected = OhemCELoss()(logits, labels) + 0.5 * dice(logits, labels)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(combined.last_terms) == {"ohem", "dice"}
    assert combined.last_stats is not None
    assert combined.last_stats.kept_fraction.item() > 0


def test_weighted_sum_all_ignored_is_finite():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    labels = torch.full((2, 8, 8), 255)
    combined = WeightedSumLoss({"ohem": OhemCELoss(),
                                "dice": smp.losses.DiceLoss("multiclass", ignore_index=255)})
    value = combined(x, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_weighted_sum_rejects_unknown_weights():
    with pytest.raises(ValueError, match="dice"):
        WeightedSumLoss({"ohem": OhemCELoss()}, weights={"dice": 0.5})
    with pytest.raises(ValueError, match="at least one"):
        WeightedSumLoss({})
