"""Per-class mining statistics of the losses: ``MiningStats.class_valid`` / ``class_kept``
against slow references, one group and one pixel at a time."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segohem.losses import (
    BinaryOhemLoss,
    CrossEntropyLoss,
    OhemCELoss,
    TopKCELoss,
    WeightedSumLoss,
)
from tests._support.batches import make_batch
from tests._support.reference_losses import count_from_spec, f32, topk_coefficients

# ----------------------------------------------------------------------------- references


def group_masks(labels: torch.Tensor, ignore_index: int, per_image: bool) -> list[torch.Tensor]:
    """Boolean masks of the valid pixels of each mining group (the batch, or each image)."""
    valid = labels != ignore_index
    if not per_image:
        return [valid]
    masks = []
    for b in range(labels.shape[0]):
        mask = torch.zeros_like(valid)
        mask[b] = valid[b]
        masks.append(mask)
    return masks


def selection_class_reference(ce: torch.Tensor, labels: torch.Tensor, num_classes: int,
                              groups: list[torch.Tensor], count, thresh: float | None):
    """Per-class valid pixels and kept weight, one group and one pixel at a time.

    ``count(n_valid) -> k``; ``thresh`` (nats) keeps the pixels above it unless fewer than k
    are, then (and always for None) the k largest, ties sharing the rest."""
    valid, kept, fallbacks = [0.0] * num_classes, [0.0] * num_classes, []
    for mask in groups:
        values = ce[mask].tolist()
        classes = labels[mask].tolist()
        k = count(len(values))
        hard = [1.0 if thresh is not None and v > f32(thresh) else 0.0 for v in values]
        fallback = thresh is None or sum(hard) < k
        coef = topk_coefficients(values, k) if fallback else hard
        if values:
            fallbacks.append(fallback and k > 0)
        for c, w in zip(classes, coef, strict=True):
            valid[c] += 1
            kept[c] += w
    return torch.tensor(valid), torch.tensor(kept), fallbacks


def ohem_reference(logits, labels, thresh, n_min=None, per_image=False, ignore_index=255):
    ce = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    return selection_class_reference(
        ce, labels, logits.shape[1], group_masks(labels, ignore_index, per_image),
        lambda n: count_from_spec(n_min, n), -math.log(thresh) + 0.0)


def topk_reference(logits, labels, top_k, per_image=False, ignore_index=255):
    ce = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    return selection_class_reference(
        ce, labels, logits.shape[1], group_masks(labels, ignore_index, per_image),
        lambda n: max(math.floor(top_k * n), min(1, n)), None)


def binary_reference(labels, neg_ratio=3.0, min_neg=1 / 16, mine_positives=False,
                     pos_fraction=0.5, per_image=False, ignore_index=255):
    """[negatives, positives] valid and kept counts of BinaryOhemLoss, group by group."""
    valid, kept = [0.0, 0.0], [0.0, 0.0]
    for mask in group_masks(labels, ignore_index, per_image):
        n_pos = int(((labels == 1) & mask).sum())
        n_neg = int(((labels == 0) & mask).sum())
        kept_pos = (max(math.floor(pos_fraction * n_pos), min(1, n_pos)) if mine_positives
                    else n_pos)
        k_neg = min(max(math.floor(kept_pos * neg_ratio), count_from_spec(min_neg, n_pos + n_neg)),
                    n_neg)
        valid[0] += n_neg
        valid[1] += n_pos
        kept[0] += k_neg
        kept[1] += kept_pos
    return torch.tensor(valid), torch.tensor(kept)


def check_sums(stats):
    """The per-class vectors add up to the scalar statistics."""
    torch.testing.assert_close(stats.class_valid.sum(), stats.valid_pixels, rtol=0, atol=0)
    torch.testing.assert_close(stats.class_kept.sum(), stats.kept_pixels, rtol=1e-6, atol=1e-4)
    assert stats.class_valid.dtype == stats.class_kept.dtype == torch.float32
    assert set(stats.as_dict()) == {"kept_fraction", "fallback", "threshold", "valid_pixels",
                                    "kept_pixels"}


def batch(seed: int, classes: int = 5, absent: int | None = None, ignore_image: bool = False):
    """(3, C, 10, 12) logits with many exact ties (tie_step) and ~20 % ignored pixels; class
    ``absent`` never occurs; ``ignore_image``: image 1 is entirely ignored."""
    logits, labels = make_batch(seed, 3, classes, 10, 12, ignore_fraction=0.2, tie_step=0.5)
    if absent is not None:
        labels = torch.where(labels == absent, (absent + 1) % classes, labels)
    if ignore_image:
        labels[1] = 255
    return logits, labels


# ----------------------------------------------------------------------------- losses

OHEM_CASES = {
    # (thresh, n_min, per_image): whether the n_min fallback decides
    "threshold": (0.7, None, False, False),
    "fallback_ties": (0.05, 0.8, False, True),
    "per_image_threshold": (0.7, 3, True, False),
    "per_image_fallback": (0.05, 0.9, True, True),
}


@pytest.mark.parametrize("case", list(OHEM_CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ohem_class_counts_match_reference(case, seed):
    thresh, n_min, per_image, expect_fallback = OHEM_CASES[case]
    logits, labels = batch(seed, absent=3, ignore_image=seed == 1)
    loss_fn = OhemCELoss(thresh, n_min=n_min, per_image=per_image)
    loss_fn(logits, labels)
    stats = loss_fn.last_stats
    valid, kept, fallbacks = ohem_reference(logits, labels, thresh, n_min, per_image)
    torch.testing.assert_close(stats.class_valid, valid, rtol=0, atol=0)
    torch.testing.assert_close(stats.class_kept, kept, rtol=1e-6, atol=1e-5)
    check_sums(stats)
    assert stats.class_valid[3] == 0 and stats.class_kept[3] == 0  # the absent class
    assert float(stats.fallback) == pytest.approx(sum(fallbacks) / len(fallbacks))
    assert all(fallbacks) if expect_fallback else not any(fallbacks)


@pytest.mark.parametrize("per_image", [False, True])
def test_fallback_tie_shares_split_between_classes(per_image):
    """Equal logits: every pixel ties at the n_min-th loss, each keeps the share k / valid."""
    _, labels = batch(0, absent=3)
    logits = torch.zeros(3, 5, 10, 12)
    loss_fn = OhemCELoss(0.1, n_min=0.3, per_image=per_image)
    loss_fn(logits, labels)
    valid, kept, _ = ohem_reference(logits, labels, 0.1, 0.3, per_image)
    stats = loss_fn.last_stats
    assert float(stats.fallback) == 1.0
    torch.testing.assert_close(stats.class_valid, valid, rtol=0, atol=0)
    assert not torch.equal(stats.class_kept, stats.class_kept.round()), stats.class_kept
    torch.testing.assert_close(stats.class_kept, kept, rtol=1e-6, atol=1e-5)
    check_sums(stats)


def test_ignore_index_inside_the_class_range():
    logits, labels = make_batch(4, 2, 4, 9, 11)
    loss_fn = OhemCELoss(0.05, n_min=0.3, ignore_index=0)
    loss_fn(logits, labels)
    valid, kept, _ = ohem_reference(logits, labels, 0.05, 0.3, ignore_index=0)
    stats = loss_fn.last_stats
    assert stats.class_valid[0] == 0
    torch.testing.assert_close(stats.class_valid, valid, rtol=0, atol=0)
    torch.testing.assert_close(stats.class_kept, kept, rtol=1e-6, atol=1e-5)


def test_all_ignored_batch_gives_zero_counts():
    logits, labels = batch(0)
    loss_fn = OhemCELoss()
    loss_fn(logits, torch.full_like(labels, 255))
    assert torch.equal(loss_fn.last_stats.class_valid, torch.zeros(5))
    assert torch.equal(loss_fn.last_stats.class_kept, torch.zeros(5))


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("top_k", [0.2, 0.55])
def test_topk_class_counts_match_reference(per_image, top_k):
    logits, labels = batch(7, absent=0, ignore_image=per_image)
    loss_fn = TopKCELoss(top_k, per_image=per_image)
    loss_fn(logits, labels)
    valid, kept, _ = topk_reference(logits, labels, top_k, per_image)
    torch.testing.assert_close(loss_fn.last_stats.class_valid, valid, rtol=0, atol=0)
    torch.testing.assert_close(loss_fn.last_stats.class_kept, kept, rtol=1e-6, atol=1e-5)
    check_sums(loss_fn.last_stats)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("mine_positives", [False, True])
@pytest.mark.parametrize("foreground", [0.05, 0.4])
def test_binary_class_counts_match_reference(per_image, mine_positives, foreground):
    gen = torch.Generator().manual_seed(int(foreground * 100) + 2 * mine_positives + per_image)
    logits = torch.randn(3, 1, 10, 12, generator=gen)
    labels = (torch.rand(3, 10, 12, generator=gen) < foreground).long()
    labels[torch.rand(3, 10, 12, generator=gen) < 0.2] = 255
    loss_fn = BinaryOhemLoss(mine_positives=mine_positives, per_image=per_image)
    loss_fn(logits, labels)
    valid, kept = binary_reference(labels, mine_positives=mine_positives,
                                   per_image=per_image)
    torch.testing.assert_close(loss_fn.last_stats.class_valid, valid, rtol=0, atol=0)
    torch.testing.assert_close(loss_fn.last_stats.class_kept, kept, rtol=0, atol=0)
    check_sums(loss_fn.last_stats)


def test_weighted_sum_reports_the_mining_terms_counts():
    logits, labels = batch(3)
    loss_fn = WeightedSumLoss({"ohem": OhemCELoss(0.7), "ce": CrossEntropyLoss()})
    loss_fn(logits, labels)
    valid, kept, _ = ohem_reference(logits, labels, 0.7)
    torch.testing.assert_close(loss_fn.last_stats.class_kept, kept, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(loss_fn.last_stats.class_valid, valid, rtol=0, atol=0)


@pytest.mark.slow
def test_class_counts_compile_to_one_graph():
    """No sync in the new code: the forward with the per-class counts compiles to one graph
    (per-image mining adds group offsets to the histogram keys) and gives the eager counts."""
    logits, labels = batch(5, ignore_image=True)
    for factory in (lambda: OhemCELoss(0.05, n_min=0.9, per_image=True, check_labels=False),
                    lambda: TopKCELoss(0.3, check_labels=False)):
        torch._dynamo.reset()
        eager_fn, compiled_fn = factory(), factory()
        eager_fn(logits, labels)
        torch.compile(compiled_fn, fullgraph=True, backend="aot_eager")(logits, labels)
        torch.testing.assert_close(compiled_fn.last_stats.class_valid,
                                   eager_fn.last_stats.class_valid, rtol=0, atol=0)
        torch.testing.assert_close(compiled_fn.last_stats.class_kept,
                                   eager_fn.last_stats.class_kept, rtol=0, atol=0)
