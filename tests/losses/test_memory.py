"""Memory: the losses allocate no (B, C, H, W) tensor beyond the one CE must save.

A dispatch mode records every tensor an op returns whose storage is new (not one of the
op's inputs, not a view); counting those of at least B*C*H*W elements is a device-free
check of the "extra memory is O(B*H*W)" promise.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from segohem.losses import CrossEntropyLoss, OhemCELoss, OhemDiceLoss, TopKCELoss
from tests._support.batches import make_batch


class LargeAllocations(TorchDispatchMode):
    """Records (op name, numel) of new storages with at least ``min_numel`` elements."""

    def __init__(self, min_numel: int):
        super().__init__()
        self.min_numel = min_numel
        self.records: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if (isinstance(t, torch.Tensor) and t.numel() >= self.min_numel
                    and t.untyped_storage().data_ptr() not in inputs):
                self.records.append((str(func), t.numel()))
        return out


def large_allocations(loss_fn, logits, labels) -> list[tuple[str, int]]:
    x = logits.detach().clone().requires_grad_()
    with LargeAllocations(logits.numel()) as mode:
        loss_fn(x, labels).backward()
    return mode.records


@pytest.mark.parametrize("loss_fn", [
    OhemCELoss(),
    OhemCELoss(0.01, per_image=True),
    TopKCELoss(0.3),
    CrossEntropyLoss(weight=[1, 2, 3, 4, 1, 1, 1, 1]),
    OhemDiceLoss(),  # the default: Dice from per-class sums, CE floor from the same CE
], ids=["ohem", "ohem_fallback_per_image", "topk", "ce_weighted", "ohem_dice_default"])
def test_only_the_log_softmax_is_batch_by_class_sized(loss_fn):
    # 2*8*128*128 elements: more than the fixed-size radix histograms (3 * 2**15 bins).
    logits, labels = make_batch(0, 2, 8, 128, 128, ignore_fraction=0.2)
    records = large_allocations(loss_fn, logits, labels)
    assert [name for name, _ in records] == ["aten._log_softmax.default"], records


def test_torch_cross_entropy_allocates_three_for_comparison():
    logits, labels = make_batch(0, 2, 8, 128, 128, ignore_fraction=0.2)
    records = large_allocations(
        lambda x, y: F.cross_entropy(x, y, ignore_index=255), logits, labels)
    assert len(records) >= 3, records  # log_softmax, nll_loss grad, log_softmax grad
