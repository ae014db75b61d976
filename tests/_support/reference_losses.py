"""Slow, obviously-correct reference implementations of segohem's losses.

Selection is done with Python lists and sorting, one pixel at a time; only the final
weighted mean is a torch expression so autograd gives the reference gradient. Per-pixel
losses come from the same float32 ``F.cross_entropy`` call the library uses, so the
hard/easy decisions see bit-identical values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def f32(value: float) -> float:
    """Round a Python float to float32, as a float32 tensor comparison does."""
    return float(torch.tensor(value, dtype=torch.float32))


def topk_coefficients(values: list[float], k: int) -> list[float]:
    """Weights that select the k largest values; ties at the k-th value share the rest."""
    if k <= 0:
        return [0.0] * len(values)
    kth = sorted(values, reverse=True)[k - 1]
    greater = sum(v > kth for v in values)
    equal = sum(v == kth for v in values)
    share = (k - greater) / equal
    return [1.0 if v > kth else share if v == kth else 0.0 for v in values]


def count_from_spec(spec, n_valid: int, divisor: int = 16) -> int:
    if spec is None:
        count = n_valid // divisor
    elif isinstance(spec, int):
        count = spec
    else:
        count = math.floor(spec * n_valid)
    return min(count, n_valid)


def _weighted_group_means(ce: Tensor, labels: Tensor, groups: list[list[int]],
                          coefs: list[list[float]], weight: Tensor | None,
                          n_valid: list[int]) -> Tensor:
    """Average over groups with valid pixels of sum(c * w * ce) / sum(c * w)."""
    flat_ce, flat_labels = ce.reshape(-1), labels.reshape(-1)
    per_group = []
    for index, coef in zip(groups, coefs, strict=True):
        num, den = flat_ce.sum() * 0.0, 0.0
        for i, c in zip(index, coef, strict=True):
            w = 1.0 if weight is None else float(weight[flat_labels[i]])
            num = num + c * w * flat_ce[i]
            den += c * w
        per_group.append(num / den if den > 0 else num * 0.0)
    used = [g for g, n in zip(per_group, n_valid, strict=True) if n > 0]
    if not used:
        return ce.sum() * 0.0
    return sum(used) / len(used)


def _groups(labels: Tensor, ignore_index: int, per_image: bool) -> list[list[int]]:
    flat = labels.reshape(-1).tolist()
    per = labels[0].numel()
    if per_image:
        ranges = [range(b * per, (b + 1) * per) for b in range(labels.shape[0])]
    else:
        ranges = [range(len(flat))]
    return [[i for i in r if flat[i] != ignore_index] for r in ranges]


def ohem_reference(logits: Tensor, labels: Tensor, thresh: float, n_min=None,
                   ignore_index: int = 255, weight: Tensor | None = None,
                   per_image: bool = False) -> Tensor:
    """OhemCELoss by the book: hard = ce > -log(thresh); else the n_min largest."""
    ce = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="none")
    flat = ce.detach().reshape(-1).tolist()
    t = f32(-math.log(thresh) + 0.0)
    groups = _groups(labels, ignore_index, per_image)
    coefs, n_valid = [], []
    for index in groups:
        values = [flat[i] for i in index]
        k = count_from_spec(n_min, len(values))
        hard = [1.0 if v > t else 0.0 for v in values]
        coefs.append(hard if sum(hard) >= k else topk_coefficients(values, k))
        n_valid.append(len(values))
    return _weighted_group_means(ce, labels, groups, coefs, weight, n_valid)


def topk_reference(logits: Tensor, labels: Tensor, fraction: float, ignore_index: int = 255,
                   weight: Tensor | None = None, per_image: bool = False) -> Tensor:
    """Mean of the floor(fraction * valid) largest losses (at least one)."""
    ce = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="none")
    flat = ce.detach().reshape(-1).tolist()
    groups = _groups(labels, ignore_index, per_image)
    coefs, n_valid = [], []
    for index in groups:
        values = [flat[i] for i in index]
        k = max(math.floor(fraction * len(values)), min(1, len(values)))
        coefs.append(topk_coefficients(values, k))
        n_valid.append(len(values))
    return _weighted_group_means(ce, labels, groups, coefs, weight, n_valid)


def bisenet_ohem(logits: Tensor, labels: Tensor, thresh: float, ignore_index: int = 255) -> Tensor:
    """CoinCheung/BiSeNet's OhemCELoss, verbatim apart from the device handling."""
    thresh_loss = -torch.log(torch.tensor(thresh, dtype=torch.float))
    n_min = labels[labels != ignore_index].numel() // 16
    loss = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none").view(-1)
    loss_hard = loss[loss > thresh_loss]
    if loss_hard.numel() < n_min:
        loss_hard, _ = loss.topk(n_min)
    return torch.mean(loss_hard)


def binary_ohem_reference(logits: Tensor, labels: Tensor, neg_ratio: float, min_neg,
                          mine_positives: bool, balance: bool, ignore_index: int = 255,
                          pos_fraction: float = 0.5, per_image: bool = False) -> Tensor:
    """BinaryOhemLoss by the book, one group (batch or image) at a time."""
    bce = F.binary_cross_entropy_with_logits(
        logits.float()[:, 0], (labels == 1).float(), reduction="none")
    flat_bce = bce.reshape(-1)
    values_all = flat_bce.detach().tolist()
    flat_labels = labels.reshape(-1).tolist()
    per = labels[0].numel()
    ranges = ([range(b * per, (b + 1) * per) for b in range(labels.shape[0])] if per_image
              else [range(len(flat_labels))])
    results = []
    for r in ranges:
        pos = [i for i in r if flat_labels[i] == 1]
        neg = [i for i in r if flat_labels[i] == 0]
        if not pos and not neg:
            continue
        if mine_positives:
            k_pos = max(math.floor(pos_fraction * len(pos)), min(1, len(pos)))
            pos_coef = topk_coefficients([values_all[i] for i in pos], k_pos)
            kept_pos = k_pos
        else:
            pos_coef, kept_pos = [1.0] * len(pos), len(pos)
        by_ratio = math.floor(kept_pos * neg_ratio)
        floor_count = count_from_spec(min_neg, len(pos) + len(neg))
        k_neg = min(max(by_ratio, floor_count), len(neg))
        neg_coef = topk_coefficients([values_all[i] for i in neg], k_neg)
        zero = flat_bce.sum() * 0.0  # keeps the graph when nothing is kept
        pos_sum = sum((c * flat_bce[i] for i, c in zip(pos, pos_coef, strict=True)), zero)
        neg_sum = sum((c * flat_bce[i] for i, c in zip(neg, neg_coef, strict=True)), zero)
        if balance:
            sides = [s / n for s, n in ((pos_sum, kept_pos), (neg_sum, k_neg)) if n > 0]
            results.append(sum(sides) / len(sides) if sides else pos_sum * 0.0)
        else:
            total = kept_pos + k_neg
            results.append((pos_sum + neg_sum) / total if total else pos_sum * 0.0)
    if not results:
        return bce.sum() * 0.0
    return sum(results) / len(results)


def crl_reference(logits: Tensor, labels: Tensor, base: Tensor, k: int, rho: float,
                  margin: float, alpha: float, ignore_index: int = 255,
                  score: str = "log_prob") -> Tensor:
    """MinorityRectificationLoss by the book: Python lists for counts, class order, mining
    and triplets; torch only for the scores (log p or p, so autograd gives the gradient).

    ``base`` is the base loss value (a tensor with its graph)."""
    classes = logits.shape[1]
    scores = F.softmax if score == "prob" else F.log_softmax
    prob = scores(logits.float(), dim=1).permute(0, *range(2, logits.dim()), 1)
    prob = prob.reshape(-1, classes)                       # (N, C), pixel order = labels'
    rank = F.log_softmax(logits.float(), dim=1).permute(0, *range(2, logits.dim()), 1)
    rank = rank.reshape(-1, classes).detach().tolist()     # log p ranks the pixels
    flat = labels.reshape(-1).tolist()
    valid = [i for i, y in enumerate(flat) if y != ignore_index]
    counts = [sum(1 for i in valid if flat[i] == c) for c in range(classes)]
    order = sorted(range(classes), key=lambda c: (counts[c], c))
    minority, cumulative = set(), 0
    for c in order:
        cumulative += counts[c]
        if cumulative <= rho * len(valid) and counts[c] >= 2:
            minority.add(c)
    terms = []
    for c in sorted(minority):
        own = [i for i in valid if flat[i] == c]
        other = [i for i in valid if flat[i] != c]
        if not other:
            continue
        anchors = own  # every class-c pixel is an anchor (the library forms them once)
        positives = sorted(own, key=lambda i: rank[i][c])[:k]
        negatives = sorted(other, key=lambda i: -rank[i][c])[:k]
        triplets = [(a, p, n) for a in anchors for p in positives for n in negatives]
        a, p, n = (torch.tensor([t[j] for t in triplets]) for j in range(3))
        pa, pp, pn = prob[a, c], prob[p, c], prob[n, c]
        # signed distances d(a, x) = p_a - p_x on the class-c score
        terms.append(torch.relu(margin + (pa - pp) - (pa - pn)).mean())
    if not terms:
        return base
    return alpha * (sum(terms) / len(terms)) + (1.0 - alpha) * base
