"""segohem's per-pixel cross-entropy against torch's."""

import pytest
import torch
import torch.nn.functional as F

from segohem.losses._pixel_ce import lend_log_softmax, pixel_cross_entropy
from tests._support.batches import make_batch


@pytest.mark.parametrize("ignore_fraction", [0.0, 0.3, 1.0])
def test_matches_torch_values_bitwise_and_gradients(ignore_fraction):
    logits, labels = make_batch(0, 2, 7, 13, 11, ignore_fraction=ignore_fraction)
    coef = torch.rand(2, 13, 11)
    x1 = logits.clone().requires_grad_()
    ours = pixel_cross_entropy(x1, labels, labels != 255)
    (ours * coef).sum().backward()
    x2 = logits.clone().requires_grad_()
    theirs = F.cross_entropy(x2, labels, ignore_index=255, reduction="none")
    (theirs * coef).sum().backward()
    assert torch.equal(ours, theirs)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_get_half_precision_grads(dtype):
    logits, labels = make_batch(1, 2, 4, 6, 6)
    x = logits.to(dtype).requires_grad_()
    ce = pixel_cross_entropy(x, labels, labels != 255)
    assert ce.dtype == torch.float32
    ce.sum().backward()
    assert x.grad.dtype == dtype
    reference = F.cross_entropy(logits.to(dtype).float(), labels, reduction="none")
    torch.testing.assert_close(ce, reference)


def test_infinite_logits_on_ignored_pixels_stay_finite():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0, 0, 0] = -float("inf")  # e.g. a masked-out class at an ignored pixel
    labels = torch.tensor([[[255, 1], [2, 0]]])
    x = logits.requires_grad_()
    ce = pixel_cross_entropy(x, labels, labels != 255)
    ce.sum().backward()
    assert torch.isfinite(ce).all() and torch.isfinite(x.grad).all()
    assert ce[0, 0, 0] == 0


def test_second_backward_through_a_retained_graph_is_refused():
    logits, labels = make_batch(2, 1, 3, 4, 4)
    x = logits.requires_grad_()
    ce = pixel_cross_entropy(x, labels, labels != 255).sum()
    ce.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backpropagated only once"):
        ce.backward()


def test_a_lent_log_softmax_is_used_and_consumed_with_the_same_result():
    logits, labels = make_batch(3, 2, 5, 7, 9, ignore_fraction=0.3)
    valid = labels != 255
    coef = torch.rand(2, 7, 9)
    x1 = logits.clone().requires_grad_()
    own = pixel_cross_entropy(x1, labels, valid)
    (own * coef).sum().backward()
    x2 = logits.clone().requires_grad_()
    lent = F.log_softmax(logits, 1, dtype=torch.float32)
    lent.masked_fill_(~valid[:, None], -float("inf"))  # allowed: not read on ignored pixels
    with lend_log_softmax(x2, lent):
        ce = pixel_cross_entropy(x2, labels, valid)
        other = pixel_cross_entropy(x2.detach().clone(), labels, valid)  # another tensor
    (ce * coef).sum().backward()
    assert torch.equal(ce, own) and torch.equal(other, own)
    assert torch.equal(x2.grad, x1.grad)
    # Consumed: backward turned the lent buffer itself into the gradient.
    assert torch.equal(lent, x2.grad)
