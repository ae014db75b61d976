"""CrossEntropyLoss: torch's cross-entropy, but 0 (not NaN) when every pixel is ignored."""

import pytest
import torch
import torch.nn.functional as F

from segohem.losses import CrossEntropyLoss
from tests._support.batches import make_batch


@pytest.mark.parametrize("weight", [None, [0.5, 1.0, 2.0, 0.0]])
def test_cross_entropy_equals_torch(weight):
    logits, labels = make_batch(0, 2, 4, 8, 8, ignore_fraction=0.3)
    w = None if weight is None else torch.tensor(weight)
    expected = F.cross_entropy(logits, labels, weight=w, ignore_index=255)
    assert CrossEntropyLoss(weight=weight)(logits, labels).item() == pytest.approx(
        expected.item(), rel=1e-6)
    assert isinstance(CrossEntropyLoss(), torch.nn.CrossEntropyLoss)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    labels = torch.full((1, 4, 4), 255)
    assert torch.isnan(F.cross_entropy(x, labels, ignore_index=255))  # what torch does
    value = CrossEntropyLoss()(x, labels)
    value.backward()
    assert value.item() == 0.0 and not x.grad.any()
