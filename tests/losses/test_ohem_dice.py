"""OhemDiceLoss: exactly OhemCELoss + dice_weight x SMP's multiclass Dice."""

import pytest
import torch
from segmentation_models_pytorch.losses import DiceLoss

from segohem.losses import OhemCELoss, OhemDiceLoss
from tests._support.batches import make_batch, value_and_grad


@pytest.mark.parametrize(("ignore", "dice_weight", "n_min"), [
    (0.0, 0.5, None), (0.3, 1.0, 20), (0.3, 0.25, 0.5), (1.0, 0.5, None)])
def test_is_ohem_plus_weighted_smp_dice(ignore, dice_weight, n_min):
    logits, labels = make_batch(1, 2, 5, 9, 11, ignore_fraction=ignore)
    loss = OhemDiceLoss(0.7, n_min, dice_weight=dice_weight)
    dice = DiceLoss("multiclass", ignore_index=255)

    def reference(x, y):
        return OhemCELoss(0.7, n_min)(x, y) + dice_weight * dice(x, y)

    value, grad = value_and_grad(loss, logits, labels)
    ref_value, ref_grad = value_and_grad(reference, logits, labels)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)
    assert torch.isfinite(value)
    assert set(loss.last_terms) == {"ohem", "dice"}
    torch.testing.assert_close(loss.last_terms["ohem"] + dice_weight * loss.last_terms["dice"],
                               value)


def test_zero_weight_is_exactly_ohem_and_statistics_pass_through():
    logits, labels = make_batch(2, 2, 4, 8, 8, ignore_fraction=0.2)
    loss, ohem = OhemDiceLoss(0.6, 10, dice_weight=0.0), OhemCELoss(0.6, 10)
    value, grad = value_and_grad(loss, logits, labels)
    ohem_value, ohem_grad = value_and_grad(ohem, logits, labels)
    assert torch.equal(value, ohem_value) and torch.equal(grad, ohem_grad)
    assert torch.equal(loss.last_stats.kept_pixels, ohem.last_stats.kept_pixels)
    assert torch.equal(loss.last_stats.class_kept, ohem.last_stats.class_kept)
    assert torch.equal(loss.selected_pixels(logits, labels), ohem.selected_pixels(logits, labels))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.5"])
def test_bad_dice_weight_names_the_value(bad):
    with pytest.raises(ValueError, match="dice_weight must be"):
        OhemDiceLoss(dice_weight=bad)


def test_bad_labels_fail_with_the_ohem_message():
    logits, labels = make_batch(3, 1, 3, 4, 4)
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match="7"):
        OhemDiceLoss()(logits, labels)
