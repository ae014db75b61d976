"""TopKCELoss: bootstrapped CE and its warm-up schedule."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from segohem.losses import TopKCELoss
from tests._support.batches import make_batch, value_and_grad
from tests._support.reference_losses import topk_reference


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    classes=st.integers(1, 5),
    size=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    ignore_fraction=st.sampled_from([0.0, 0.4, 1.0]),
    tie_step=st.sampled_from([None, 1.0]),
    top_k=st.floats(0.01, 1.0),
    per_image=st.booleans(),
    weighted=st.booleans(),
)
def test_property_matches_reference(seed, batch, classes, size, ignore_fraction, tie_step,
                                    top_k, per_image, weighted):
    logits, labels = make_batch(seed, batch, classes, *size, ignore_fraction, tie_step)
    gen = torch.Generator().manual_seed(seed)
    weight = torch.rand(classes, generator=gen) if weighted else None
    loss_fn = TopKCELoss(top_k=top_k, weight=weight, per_image=per_image)
    value, grad = value_and_grad(loss_fn, logits, labels)
    ref_value, ref_grad = value_and_grad(
        lambda x, y: topk_reference(x, y, top_k, weight=weight, per_image=per_image),
        logits, labels)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    torch.testing.assert_close(value, ref_value.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_equals_mean_of_largest_fraction():
    logits, labels = make_batch(0, 2, 6, 32, 32, ignore_fraction=0.25)
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    valid = ce[labels != 255]
    k = int(0.2 * valid.numel())
    expected = valid.topk(k).values.mean()
    assert TopKCELoss(0.2)(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_top_k_one_is_plain_cross_entropy():
    logits, labels = make_batch(1, 2, 4, 9, 9, ignore_fraction=0.3)
    expected = F.cross_entropy(logits, labels, ignore_index=255)
    assert TopKCELoss(1.0)(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_warmup_schedule_and_counter():
    logits, labels = make_batch(2, 1, 3, 10, 10)
    loss_fn = TopKCELoss(top_k=0.2, warmup_steps=4)
    seen = []
    for _ in range(6):
        seen.append(loss_fn.fraction().item())
        value = loss_fn(logits, labels)
        expected = topk_reference(logits, labels, seen[-1])
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    assert loss_fn.step.item() == 6
    assert loss_fn.state_dict()["step"].item() == 6

    loss_fn.eval()
    loss_fn(logits, labels)
    assert loss_fn.step.item() == 6  # eval calls do not advance the schedule

    resumed = TopKCELoss(top_k=0.2, warmup_steps=4)
    resumed.load_state_dict(loss_fn.state_dict())
    assert resumed.fraction().item() == pytest.approx(0.2)


def test_all_ignored_gives_zero_loss_with_zero_grad():
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.full((2, 4, 4), 255)
    value, grad = value_and_grad(TopKCELoss(0.3), logits, labels)
    assert value.item() == 0.0 and not grad.any()


def test_keeps_at_least_one_pixel():
    logits, labels = make_batch(3, 1, 3, 1, 3)
    loss_fn = TopKCELoss(top_k=0.1)  # floor(0.1 * 3) = 0 -> 1
    value = loss_fn(logits, labels)
    ce = F.cross_entropy(logits, labels, reduction="none")
    assert value.item() == pytest.approx(ce.max().item())
    assert loss_fn.last_stats.kept_pixels.item() == 1


def test_after_warmup_keeps_exactly_top_k():
    # 1 - (1 - 0.2) * 1 is 0.19999999999999996 in floating point: 19 of 100 pixels.
    logits, labels = make_batch(4, 1, 3, 10, 10)
    warm = TopKCELoss(top_k=0.2, warmup_steps=4)
    warm.set_step(4)
    plain = TopKCELoss(top_k=0.2)
    assert warm(logits, labels).item() == plain(logits, labels).item()
    assert warm.last_stats.kept_pixels.item() == 20
    assert warm.fraction().item() == 0.2
    warm.set_step(2)
    assert warm.fraction().item() == pytest.approx(0.6)
