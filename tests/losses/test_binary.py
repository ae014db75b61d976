"""BinaryOhemLoss: the 1:3 rule, min_neg floor, positive mining, balancing."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from segohem.losses import BinaryOhemLoss
from tests._support.batches import value_and_grad
from tests._support.reference_losses import binary_ohem_reference


def binary_batch(seed, batch, height, width, fg=0.2, ignore=0.1, tie_step=None):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, 1, height, width, generator=gen) * 2
    if tie_step:
        logits = torch.round(logits / tie_step) * tie_step
    u = torch.rand(batch, height, width, generator=gen)
    labels = (u < fg).long()
    labels[u > 1 - ignore] = 255
    return logits, labels


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    fg=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    ignore=st.sampled_from([0.0, 0.2, 1.0]),
    tie_step=st.sampled_from([None, 1.0]),
    neg_ratio=st.sampled_from([0.0, 1.0, 3.0, 2.5]),
    min_neg=st.one_of(st.none(), st.integers(0, 30), st.floats(0.01, 1.0)),
    mine_positives=st.booleans(),
    balance=st.booleans(),
    per_image=st.booleans(),
)
def test_property_matches_reference(seed, batch, size, fg, ignore, tie_step, neg_ratio, min_neg,
                                    mine_positives, balance, per_image):
    logits, labels = binary_batch(seed, batch, *size, fg=fg, ignore=ignore, tie_step=tie_step)
    options = dict(neg_ratio=neg_ratio, min_neg=min_neg, mine_positives=mine_positives,
                   balance=balance, per_image=per_image)
    value, grad = value_and_grad(BinaryOhemLoss(**options), logits, labels)
    ref_value, ref_grad = value_and_grad(
        lambda x, y: binary_ohem_reference(x, y, **options), logits, labels)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    torch.testing.assert_close(value, ref_value.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_keeps_all_positives_and_three_times_as_many_hardest_negatives():
    logits, labels = binary_batch(0, 2, 32, 32, fg=0.05, ignore=0.0)
    loss_fn = BinaryOhemLoss(neg_ratio=3.0, min_neg=0)
    _, grad = value_and_grad(loss_fn, logits, labels)
    kept = grad[:, 0] != 0
    positive, negative = labels == 1, labels == 0
    assert kept[positive].all()
    n_pos = int(positive.sum())
    assert int((kept & negative).sum()) == 3 * n_pos
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], positive.float(), reduction="none")
    assert bce[kept & negative].min() >= bce[~kept & negative].max()


def test_no_foreground_still_trains_on_min_neg():
    logits, labels = binary_batch(1, 2, 16, 16, fg=0.0, ignore=0.0)
    loss_fn = BinaryOhemLoss()  # min_neg = 1/16 of the valid pixels by default
    value, grad = value_and_grad(loss_fn, logits, labels)
    assert value.item() > 0
    assert int((grad != 0).sum()) == 512 // 16
    assert loss_fn.last_stats.fallback.item() == 1.0


def test_all_ignored_gives_zero_loss_with_zero_grad():
    logits = torch.randn(2, 1, 4, 4)
    labels = torch.full((2, 4, 4), 255)
    for loss_fn in [BinaryOhemLoss(), BinaryOhemLoss(balance=True, per_image=True)]:
        value, grad = value_and_grad(loss_fn, logits, labels)
        assert value.item() == 0.0 and not grad.any()


def test_balance_weighs_the_two_sides_equally():
    logits, labels = binary_batch(2, 1, 8, 8, fg=0.3, ignore=0.0)
    loss_fn = BinaryOhemLoss(neg_ratio=100.0, min_neg=0, balance=True)  # keeps all negatives
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], (labels == 1).float(), reduction="none")
    expected = 0.5 * bce[labels == 1].mean() + 0.5 * bce[labels == 0].mean()
    assert loss_fn(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bool_labels_and_rejects_other_values():
    logits = torch.randn(1, 1, 4, 4)
    assert torch.isfinite(BinaryOhemLoss()(logits, torch.rand(1, 4, 4) > 0.5))
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"\[7\]"):
        BinaryOhemLoss()(logits, labels)
    with pytest.raises(ValueError, match="1 channel"):
        BinaryOhemLoss()(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
