"""Pixel selection and reduction shared by the mining losses.

All functions work on losses laid out as ``(G, P)``: ``G`` mining groups (1 for the
whole batch, ``B`` for per-image mining) of ``P`` pixels each. Everything stays on
the device: counts are tensors, branches are ``torch.where``; nothing reads a value
back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from segohem.losses._distributed import RankSum
from segohem.losses._select import kth_largest, row_histogram
from segohem.losses._validate import Count


@dataclass(frozen=True)
class MiningStats:
    """Mining statistics of one loss call, as detached float32 scalar tensors (pixel
    counts are exact up to 2**24 pixels, ample for logging beyond that)."""

    kept_fraction: Tensor
    """Kept pixels / valid pixels (tied boundary pixels count fractionally); 0 if none valid."""
    fallback: Tensor
    """1.0 if the ``n_min`` fallback was used (per-image mining: the fraction of images
    with valid pixels that used it)."""
    threshold: Tensor
    """Effective loss threshold: pixels with a loss above it were kept (in nats; per-image
    mining: mean over images with valid pixels)."""
    valid_pixels: Tensor
    """Number of non-ignored pixels in the call."""
    kept_pixels: Tensor
    """Number of kept pixels (tied boundary pixels count fractionally)."""
    class_valid: Tensor | None = None
    """``(C,)`` float32 valid (non-ignored) pixels of each class in the call; sums to
    ``valid_pixels``. None for a loss that does not report classes. Always this process's own
    pixels, also with ``sync_across_ranks`` (then they sum to ``valid_pixels`` over the ranks):
    :class:`~segohem.train.module.SegmentationModule` sums them over the ranks once per epoch."""
    class_kept: Tensor | None = None
    """``(C,)`` float32 kept weight of each class (tied boundary pixels count fractionally);
    sums to ``kept_pixels`` (over the ranks with ``sync_across_ranks``, as ``class_valid``).
    None for a loss that does not report classes."""

    def as_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """The scalar statistics keyed ``prefix + name``, e.g. for
        ``LightningModule.log_dict`` (the per-class vectors are left out)."""
        return {prefix + key: value for key, value in vars(self).items()
                if value is not None and value.dim() == 0}


@dataclass(frozen=True)
class Selection:
    """Which pixels a mining step keeps, per group (``G`` groups of ``P`` pixels)."""

    weights: Tensor
    """``(G, P)`` float32 in [0, 1]: 1 for pixels above ``threshold``, the tie share for
    pixels equal to it, else 0. Excluded (zero-loss) pixels may get a non-zero weight
    when ``threshold`` is 0; their loss and gradient are 0, so it does not matter, but
    mask it before using the map for anything else."""
    threshold: Tensor
    """``(G,)`` float32 effective threshold (kept pixels have a loss above it, or equal
    to it in the top-k fallback)."""
    fallback: Tensor
    """``(G,)`` bool, True where the top-k rule decided instead of the threshold."""
    kept: Tensor
    """``(G,)`` float32 number of kept pixels (``k`` in the fallback, else the hard count)."""
    tie_share: Tensor
    """``(G,)`` float32 weight of the pixels equal to ``threshold`` (0 outside the fallback):
    every weight in ``weights`` is 0, 1 or this value."""


def resolve_count(spec: Count, n_valid: Tensor, default_divisor: int = 16) -> Tensor:
    """Turn a :data:`Count` into per-group pixel counts.

    Args:
        spec: None -> ``n_valid // default_divisor``; int -> that many pixels;
            float in (0, 1] -> ``floor(spec * n_valid)`` (evaluated in float64).
        n_valid: ``(G,)`` int64 valid pixels per group.

    Returns:
        ``(G,)`` int64 counts clamped to ``[0, n_valid]``.
    """
    if spec is None:
        count = torch.div(n_valid, default_divisor, rounding_mode="floor")
    elif isinstance(spec, int):
        count = torch.full_like(n_valid, spec)
    else:
        count = torch.floor(n_valid.to(torch.float64) * spec).to(torch.int64)
    return torch.minimum(count, n_valid)


def select_hardest(
    loss: Tensor, k: Tensor, n_excluded: Tensor, threshold: float | None,
    reduce: RankSum | None = None, valid: Tensor | None = None,
) -> Selection:
    """OHEM selection: pixels with loss above ``threshold``, or the ``k`` largest when
    fewer than ``k`` pass (``threshold=None``: always the ``k`` largest).

    Ties at the k-th largest value share the remaining rank equally, so the kept
    weight is exactly ``k`` and the mean of the kept losses equals the mean of the
    ``k`` largest values, whatever tie-break a sort would use.

    Args:
        loss: ``(G, P)`` float32 per-pixel losses, >= 0; excluded pixels hold 0.
        k: ``(G,)`` int64 minimum number of kept pixels, ``0 <= k <= P - n_excluded``.
        n_excluded: ``(G,)`` int64 number of excluded (ignored) pixels per group.
        threshold: loss threshold in nats (>= 0), or None for pure top-k.
        reduce: mine the union of all ranks' ``loss`` (one group, ``G == 1``): ``k`` then
            counts over all ranks, the k-th value and the tie share are global, and
            ``kept`` is this rank's share of the kept weight (so it sums to ``k`` over the
            ranks in the fallback). Needs ``valid``.
        valid: ``(G, P)`` bool, the counted pixels (only with ``reduce``).
    """
    loss = loss.detach()
    if reduce is None:
        k = torch.minimum(k, loss.shape[1] - n_excluded)  # kth_largest needs k <= counted
    elif valid is None or loss.shape[0] != 1:
        raise ValueError("cross-rank selection needs one group and the valid mask")
    kth = kth_largest(loss, k, n_excluded, reduce)
    if threshold is None:
        fallback = k > 0
        # k == 0: keep nothing (threshold +inf).
        thresh = torch.where(fallback, kth.value, float("inf"))
    else:
        # Fewer than k losses exceed the threshold <=> the k-th largest loss is <= it.
        fixed = torch.full_like(kth.value, threshold)  # float32, as the comparisons below
        fallback = (k > 0) & (kth.value <= fixed)
        thresh = torch.where(fallback, kth.value, fixed)
    tie_share = (k - kth.n_greater).to(torch.float32) / kth.n_equal.clamp_min(1)
    tie_share = torch.where(fallback, tie_share, 0.0)

    # heaviside(x, v) = 1 for x > 0, v for x == 0, 0 for x < 0; loss - thresh is exactly 0
    # only for equal values (per-pixel CE is never denormal-close to another value).
    weights = torch.heaviside(loss - thresh[:, None], tie_share[:, None])
    if reduce is not None:
        local = torch.where(valid, weights, 0.0).sum(1, dtype=torch.float64)
        return Selection(weights, thresh, fallback, local.to(torch.float32), tie_share)
    if threshold is None:
        kept = k.to(torch.float32)
    else:
        # Outside the fallback the weights are exactly 0 or 1: their (float64) sum is the
        # exact hard-pixel count. Excluded pixels hold 0 <= threshold, so they are 0.
        n_hard = weights.sum(1, dtype=torch.float64).to(torch.float32)
        kept = torch.where(fallback, k.to(torch.float32), n_hard)
    return Selection(weights, thresh, fallback, kept, tie_share)


def reduce_selected(loss: Tensor, coef: Tensor, coef_sum: Tensor, has_valid: Tensor,
                    n_groups: Tensor | None = None) -> Tensor:
    """Weighted mean of the kept losses per group, averaged over groups with valid pixels.

    ``result = mean_{g: has_valid[g]} sum_p coef[g,p] * loss[g,p] / coef_sum[g]``;
    a group whose ``coef_sum`` is 0 contributes 0, and no valid group at all gives 0.
    The coefficients are constants for autograd, so the gradient flows through
    ``loss`` only, and an empty selection yields a zero loss with zero gradients.

    Args:
        loss: ``(G, P)`` float32 per-pixel losses (requires grad).
        coef: ``(G, P)`` float32 non-negative, detached: selection x class weight.
        coef_sum: ``(G,)`` float32, ``coef.sum(1)`` (often known without summing).
        has_valid: ``(G,)`` bool.
        n_groups: the number of groups to average over (default ``has_valid.sum()``; the
            count over all ranks when the groups are spread over several).

    Returns:
        float32 scalar.
    """
    n_groups = (has_valid.sum() if n_groups is None else n_groups).clamp_min(1)
    scale = torch.where(coef_sum > 0, 1.0 / coef_sum.clamp_min(torch.finfo(torch.float32).tiny),
                        0.0)
    scale = torch.where(has_valid, scale, 0.0) / n_groups
    if loss.shape[0] == 1:
        return torch.dot(loss.reshape(-1), coef.reshape(-1)) * scale[0]
    return ((loss * coef).sum(1) * scale).sum()


_WEIGHT_EXPONENTS = 128
"""Values of the float32 exponent field of a weight in ``[0, 1]``: 0 (weight 0) to 127 (1)."""


def class_counts(selection: Selection, labels: Tensor, valid: Tensor, num_classes: int,
                 reduce: RankSum | None = None) -> tuple[Tensor, Tensor]:
    """Valid pixels and kept weight of each class: ``(class_valid, class_kept)``.

    One integer histogram over the pixels, no sync. A weight is 0, 1 or its group's
    ``tie_share`` (in (0, 1), at least ``2**-31``, so never denormal), and its float32
    exponent field tells which: 0, 127, or in between. Each pixel goes to bin
    ``exponent * (C + 1) + class`` of its group, pixels that are not counted to class ``C``
    of exponent 0. The counts are integers (the result does not depend on the order of the
    device's atomic adds), and the kept weight of a class is ``whole + tie_share * tied``.

    Args:
        selection: the :class:`Selection` of ``(G, P)`` pixels.
        labels: ``(G, P)`` integer classes in ``[0, C)`` where ``valid``; anything elsewhere.
        valid: ``(G, P)`` bool, the counted pixels.
        num_classes: ``C``.
        reduce: sum across ranks.

    Returns:
        Two ``(C,)`` float32 tensors.
    """
    bins = num_classes + 1
    exponent = selection.weights.view(torch.int32) >> 23  # weights are >= +0.0
    keys = labels.to(torch.int32, copy=True).add_(exponent, alpha=bins)
    # (keys - C) * valid + C: integer arithmetic is cheaper than a masked fill on CPU.
    keys.sub_(num_classes).mul_(valid.to(torch.int32)).add_(num_classes)
    hist = row_histogram(keys, _WEIGHT_EXPONENTS * bins)
    hist = hist.view(-1, _WEIGHT_EXPONENTS, bins)[..., :num_classes].to(torch.float64)
    tied = hist[:, 1:-1].sum(1) * selection.tie_share.to(torch.float64)[:, None]
    both = torch.stack([hist.sum((0, 1)), (hist[:, -1] + tied).sum(0)])
    if reduce is not None:
        both = reduce(both)
    both = both.to(torch.float32)
    return both[0], both[1]


def mining_stats(selection: Selection, n_valid: Tensor, reduce: RankSum | None = None,
                 global_selection: bool = False, labels: Tensor | None = None,
                 valid: Tensor | None = None, num_classes: int = 0) -> MiningStats:
    """Summarise a selection as :class:`MiningStats`.

    Args:
        selection: the :class:`Selection` of the call.
        n_valid: ``(G,)`` int64 valid pixels per group (this rank's).
        reduce: sum across ranks: the statistics then describe all ranks together.
        global_selection: the selection was made across ranks (one group, see
            :func:`select_hardest`): its threshold and fallback are already global.
        labels, valid, num_classes: ``(G, P)`` classes, ``(G, P)`` counted pixels and ``C``:
            fill ``class_valid`` / ``class_kept`` (see :func:`class_counts`); without
            ``labels`` they stay None.
    """
    def total(x: Tensor) -> Tensor:
        return reduce(x) if reduce is not None else x

    total_valid = total(n_valid.sum()).to(torch.float32)
    total_kept = total(selection.kept.sum())
    if global_selection:
        has_valid = (total_valid > 0).reshape(1)
        n_groups = has_valid.sum().clamp_min(1).to(torch.float32)
        threshold = torch.where(has_valid, selection.threshold, 0.0).sum()
        fallback = (selection.fallback & has_valid).to(torch.float32).sum()
    else:
        has_valid = n_valid > 0
        n_groups = total(has_valid.sum()).clamp_min(1).to(torch.float32)
        threshold = total(torch.where(has_valid, selection.threshold, 0.0).sum())
        fallback = total((selection.fallback & has_valid).to(torch.float32).sum())
    per_class = {}
    if labels is not None and valid is not None:
        # This rank's own counts: SegmentationModule sums them over the ranks per epoch.
        class_valid, class_kept = class_counts(selection, labels, valid, num_classes)
        per_class = {"class_valid": class_valid, "class_kept": class_kept}
    return MiningStats(
        kept_fraction=(total_kept / total_valid.clamp_min(1.0)).detach(),
        fallback=(fallback / n_groups).detach(),
        threshold=(threshold / n_groups).detach(),
        valid_pixels=total_valid.detach(),
        kept_pixels=total_kept.detach(),
        **per_class,
    )
