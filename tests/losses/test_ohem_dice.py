"""OhemDiceLoss: exactly OhemCELoss + dice_weight x SMP's multiclass Dice + ce_weight x plain
cross-entropy over all valid pixels (the CE floor of issue 19)."""

import pytest
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from segohem.losses import OhemCELoss, OhemDiceLoss
from tests._support.batches import make_batch, value_and_grad


def plain_ce(x, y, weight=None):
    """F.cross_entropy's mean over valid pixels, 0 (with zero gradients) when none is valid."""
    if (y != 255).sum() == 0:
        return x.sum() * 0.0
    return F.cross_entropy(x, y, ignore_index=255,
                           weight=None if weight is None else torch.tensor(weight))


@pytest.mark.parametrize(("ignore", "dice_weight", "ce_weight", "n_min"), [
    (0.0, 0.5, 0.0, None), (0.3, 1.0, 0.0, 20), (0.3, 0.25, 0.0, 0.5), (1.0, 0.5, 0.0, None),
    (0.0, 0.5, 1.0, None), (0.3, 0.5, 1.0, 20), (0.3, 0.0, 2.0, None), (1.0, 0.5, 1.0, None)])
def test_is_ohem_plus_weighted_smp_dice_plus_weighted_ce(ignore, dice_weight, ce_weight, n_min):
    logits, labels = make_batch(1, 2, 5, 9, 11, ignore_fraction=ignore)
    loss = OhemDiceLoss(0.7, n_min, dice_weight=dice_weight, ce_weight=ce_weight)
    dice = DiceLoss("multiclass", ignore_index=255)

    def reference(x, y):
        return (OhemCELoss(0.7, n_min)(x, y) + dice_weight * dice(x, y)
                + ce_weight * plain_ce(x, y))

    value, grad = value_and_grad(loss, logits, labels)
    ref_value, ref_grad = value_and_grad(reference, logits, labels)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    expected_terms = {"ohem"} | ({"dice"} if dice_weight else set()) | (
        {"ce"} if ce_weight else set())
    assert set(loss.last_terms) == expected_terms
    total = sum(w * loss.last_terms[k] for k, w in
                (("ohem", 1.0), ("dice", dice_weight), ("ce", ce_weight)) if k in loss.last_terms)
    torch.testing.assert_close(total, value)


def test_class_weights_weigh_the_ce_floor_as_f_cross_entropy():
    logits, labels = make_batch(4, 2, 4, 8, 8, ignore_fraction=0.2)
    weight = [1.0, 2.0, 0.5, 3.0]
    loss = OhemDiceLoss(0.7, dice_weight=0.0, ce_weight=1.0, weight=weight)
    value, grad = value_and_grad(loss, logits, labels)
    ref_value, ref_grad = value_and_grad(
        lambda x, y: OhemCELoss(0.7, weight=weight)(x, y) + plain_ce(x, y, weight), logits, labels)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)


def test_zero_weights_are_exactly_ohem_and_statistics_pass_through():
    logits, labels = make_batch(2, 2, 4, 8, 8, ignore_fraction=0.2)
    loss = OhemDiceLoss(0.6, 10, dice_weight=0.0, ce_weight=0.0)
    ohem = OhemCELoss(0.6, 10)
    value, grad = value_and_grad(loss, logits, labels)
    ohem_value, ohem_grad = value_and_grad(ohem, logits, labels)
    assert torch.equal(value, ohem_value) and torch.equal(grad, ohem_grad)
    assert torch.equal(loss.last_stats.kept_pixels, ohem.last_stats.kept_pixels)
    assert torch.equal(loss.last_stats.class_kept, ohem.last_stats.class_kept)
    assert torch.equal(loss.selected_pixels(logits, labels), ohem.selected_pixels(logits, labels))


def test_the_ce_floor_moves_pixels_the_mined_term_leaves_alone():
    """Why the floor exists: a pixel with p(true class) >= thresh gets no gradient from the
    mined term; with the floor it is still pushed towards its class."""
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0] = 2.0  # p(class 0) = 0.88 > thresh on every pixel
    labels = torch.zeros(1, 1, 4, dtype=torch.long)
    labels[0, 0, 0] = 1  # one hard pixel keeps the mined term alive
    _, grad_mined = value_and_grad(OhemDiceLoss(0.7, 0, dice_weight=0.0, ce_weight=0.0),
                                   logits, labels)
    _, grad_floor = value_and_grad(OhemDiceLoss(0.7, 0, dice_weight=0.0, ce_weight=1.0),
                                   logits, labels)
    easy = labels[0, 0] == 0
    assert torch.all(grad_mined[0, :, 0][:, easy] == 0)
    assert torch.all(grad_floor[0, 0, 0][easy] < 0)  # descent raises the true-class logit


def test_defaults_are_the_shipped_default_loss():
    loss = OhemDiceLoss()
    assert (loss.thresh, loss.n_min, loss.dice_weight, loss.ce_weight) == (0.7, None, 0.5, 1.0)


@pytest.mark.parametrize("name", ["dice_weight", "ce_weight"])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.5"])
def test_bad_weight_names_the_value(name, bad):
    with pytest.raises(ValueError, match=f"{name} must be"):
        OhemDiceLoss(**{name: bad})


def test_bad_labels_fail_with_the_ohem_message():
    logits, labels = make_batch(3, 1, 3, 4, 4)
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match="7"):
        OhemDiceLoss()(logits, labels)


@pytest.mark.parametrize(("batch", "classes", "spatial", "scale", "per_image"), [
    (1, 2, (5, 7), 1.0, False), (3, 9, (6, 5), 8.0, True), (2, 4, (3, 4, 5), 2.0, False),
    (2, 19, (16, 16), 30.0, False)])
def test_dice_term_equals_smp_dice_loss(batch, classes, spatial, scale, per_image):
    """The fused Dice term (per-class sums from the CE kernel) against SMP's DiceLoss:
    saturated logits (scale 30), absent classes, per-image mining, 3-D inputs."""
    gen = torch.Generator().manual_seed(classes)
    logits = torch.randn(batch, classes, *spatial, generator=gen) * scale
    labels = torch.randint(0, max(classes - 1, 1), (batch, *spatial), generator=gen)  # last absent
    labels[torch.rand(labels.shape, generator=gen) < 0.2] = 255
    loss = OhemDiceLoss(0.7, dice_weight=1.0, ce_weight=0.0, per_image=per_image)
    smp = DiceLoss("multiclass", ignore_index=255)
    value, grad = value_and_grad(loss, logits, labels)
    ref_value, ref_grad = value_and_grad(
        lambda x, y: OhemCELoss(0.7, per_image=per_image)(x, y) + smp(x.flatten(2), y.flatten(1)),
        logits, labels)
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)
