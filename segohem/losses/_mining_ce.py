"""Base class of the cross-entropy losses that keep only some pixels (OHEM, top-k)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypedDict

import torch
from torch import Tensor, nn

from segohem.losses._distributed import RankSum, global_value_local_gradient, rank_sum
from segohem.losses._mining import (
    MiningStats,
    Selection,
    mining_stats,
    reduce_selected,
    select_hardest,
)
from segohem.losses._pixel_ce import pixel_cross_entropy, pixel_cross_entropy_and_class_sums
from segohem.losses._validate import (
    check_label_range,
    check_logits_labels,
    class_weight_tensor,
    pixel_class_weights,
)


class MiningOptions(TypedDict, total=False):
    """The keyword options every :class:`MiningCrossEntropy` loss takes (see its Args)."""

    ignore_index: int
    weight: Sequence[float] | Tensor | None
    per_image: bool
    check_labels: bool
    sync_across_ranks: bool


def checked_pixel_cross_entropy(
    logits: Tensor, labels: Tensor, valid: Tensor, ignore_index: int, check_labels: bool,
    class_sums: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """:func:`pixel_cross_entropy` with the label range check of :func:`check_label_range`
    (with ``class_sums``: :func:`pixel_cross_entropy_and_class_sums`, a ``(ce, sums)`` pair).

    On CPU (eager) the check is free: gathering a label outside ``[0, C)`` already fails
    there, so that error is caught and replaced by the ``ValueError`` naming the values.
    Elsewhere the check runs first (one host-device sync).

    Args:
        logits: ``(B, C, *spatial)`` any floating dtype.
        labels: ``(B, *spatial)`` int64.
        valid: ``(B, *spatial)`` bool, ``labels != ignore_index``.

    Returns:
        ``(B, *spatial)`` float32 losses in nats, 0 on ignored pixels.
    """
    kernel_checks = labels.device.type == "cpu" and not torch.compiler.is_compiling()
    if check_labels and not kernel_checks:
        check_label_range(labels, valid, logits.shape[1], ignore_index)
    kernel = pixel_cross_entropy_and_class_sums if class_sums else pixel_cross_entropy
    try:
        return kernel(logits, labels, valid)
    except (IndexError, RuntimeError):
        if check_labels:
            check_label_range(labels, valid, logits.shape[1], ignore_index)
        raise


class Mined(NamedTuple):
    """One call's per-pixel cross-entropy and selection (``G`` mining groups of ``P`` pixels)."""

    labels: Tensor
    """``(B, *spatial)`` int64 labels."""
    valid: Tensor
    """``(B, *spatial)`` bool, ``labels != ignore_index``."""
    ce: Tensor
    """``(G, P)`` float32 per-pixel cross-entropy in nats, 0 on ignored pixels."""
    n_valid: Tensor
    """``(G,)`` int64 valid pixels per group."""
    selection: Selection
    prob_sums: Tensor | None = None
    """``(C,)`` softmax probability of each class summed over the valid pixels (only for a
    loss with ``wants_prob_sums``)."""


class MiningCrossEntropy(nn.Module):
    """Cross-entropy over a mined subset of pixels; subclasses say how many to keep.

    Shared behaviour: shape / label checks, float32 computation, per-batch or per-image
    mining groups, class weights (``sum w[y] * ce / sum w[y]`` over kept pixels, hardness
    judged on the unweighted CE), zero loss with zero gradients for groups without a
    valid pixel, :class:`MiningStats` of the last call in ``last_stats`` (with the per-class
    ``class_valid`` / ``class_kept``).

    Under DDP every rank mines its own shard by default (as every peer toolkit does).
    ``sync_across_ranks=True`` mines the global batch instead: the valid-pixel count (hence
    ``n_min``), the hard-pixel count, the fallback's k-th largest loss, the normaliser and the
    statistics are summed over the ranks (counts and two fixed-size histograms, no pixels),
    so the loss equals that of one process on the concatenated batch; each rank reports that
    global value and back-propagates ``world_size`` x its share, which DDP's gradient average
    turns into the global gradient. With ``per_image=True`` images are mined on their own
    anyway; the option then makes the mean over images global. It applies in training mode
    only (``module.train()``); in eval mode each rank mines alone, since validation loops may
    give ranks different numbers of batches.

    Args (the :class:`MiningOptions` of every subclass):
        ignore_index: label value that is never counted.
        weight: optional per-class weights ``(C,)``.
        per_image: mine each image on its own (its own minimum count) and average the
            per-image losses over the images that have valid pixels.
        check_labels: raise ``ValueError`` for labels outside ``[0, C)`` other than
            ``ignore_index``.
        sync_across_ranks: under DDP, mine the global batch instead of each rank's shard.
    """

    weight: Tensor | None

    def __init__(
        self,
        *,
        ignore_index: int = 255,
        weight: Sequence[float] | Tensor | None = None,
        per_image: bool = False,
        check_labels: bool = True,
        sync_across_ranks: bool = False,
    ) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.per_image = bool(per_image)
        self.check_labels = bool(check_labels)
        self.sync_across_ranks = bool(sync_across_ranks)
        self.register_buffer("weight", class_weight_tensor(weight))
        self.last_stats: MiningStats | None = None
        self.wants_prob_sums = False  # a subclass with a Dice term sets it (Mined.prob_sums)

    def min_kept(self, n_valid: Tensor) -> Tensor:
        """``(G,)`` int64 number of pixels to keep at least, from ``(G,)`` valid counts."""
        raise NotImplementedError

    def loss_threshold(self) -> float | None:
        """Loss threshold in nats above which a pixel is hard, or None for pure top-k."""
        raise NotImplementedError

    def _mine(self, logits: Tensor, labels: Tensor, reduce: RankSum | None) -> Mined:
        """Shared forward: checks, per-pixel CE ``(G, P)`` and the selection (across ranks
        when ``reduce`` is given and images are not mined one by one)."""
        labels = check_logits_labels(logits, labels)
        valid = labels != self.ignore_index
        ce = checked_pixel_cross_entropy(logits, labels, valid, self.ignore_index,
                                         self.check_labels, self.wants_prob_sums)
        prob_sums = None
        if self.wants_prob_sums:
            ce, prob_sums = ce
        groups = labels.shape[0] if self.per_image else 1
        ce = ce.reshape(groups, -1)
        flat_valid = valid.reshape(groups, -1)
        n_valid = torch.count_nonzero(flat_valid, dim=1)
        if reduce is not None and not self.per_image:
            k = self.min_kept(reduce(n_valid))
            selection = select_hardest(ce, k, ce.shape[1] - n_valid, self.loss_threshold(),
                                       reduce=reduce, valid=flat_valid)
        else:
            selection = select_hardest(ce, self.min_kept(n_valid), ce.shape[1] - n_valid,
                                       self.loss_threshold())
        return Mined(labels, valid, ce, n_valid, selection, prob_sums)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``. Returns a float32 scalar."""
        reduce = self._rank_sum()
        return self._mined_loss(self._mine(logits, labels, reduce), logits.shape[1], reduce)

    def _rank_sum(self) -> RankSum | None:
        """The cross-rank sum of ``sync_across_ranks``, or None. Only in training: evaluation
        loops may give ranks different numbers of batches."""
        return rank_sum(self.sync_across_ranks and self.training)

    def _mined_loss(self, mined: Mined, num_classes: int, reduce: RankSum | None) -> Tensor:
        """The (weighted) mean CE over the kept pixels of ``mined``; sets ``last_stats``."""
        labels, valid, ce, n_valid, selection, _ = mined
        groups = ce.shape[0]
        if self.weight is None:
            coef, coef_sum = selection.weights, selection.kept
        else:
            pixel_weight = pixel_class_weights(self.weight, labels, valid, num_classes)
            coef = selection.weights * pixel_weight.reshape(groups, -1)
            coef_sum = coef.sum(1)
        global_selection = reduce is not None and not self.per_image
        self.last_stats = mining_stats(selection, n_valid, reduce, global_selection,
                                       labels.reshape(groups, -1), valid.reshape(groups, -1),
                                       num_classes)
        if reduce is None:
            return reduce_selected(ce, coef, coef_sum, n_valid > 0)
        if global_selection:
            coef_sum = reduce(coef_sum)
            partial = reduce_selected(ce, coef, coef_sum, coef_sum > 0)
        else:
            has_valid = n_valid > 0
            partial = reduce_selected(ce, coef, coef_sum, has_valid, reduce(has_valid.sum()))
        return global_value_local_gradient(partial, reduce)

    @torch.no_grad()
    def selected_pixels(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Which pixels the loss would keep for these inputs (for visualisation).

        Returns:
            ``(B, *spatial)`` float32 in [0, 1]: 1 for kept pixels, the tie share at the
            boundary, 0 for dropped and ignored pixels. Does not change ``last_stats``.
            Always mines this process's batch alone (no collective call, so it is safe from
            rank-0-only code such as image logging).
        """
        labels, valid, _, _, selection, _ = self._mine(logits.detach(), labels, None)
        return torch.where(valid, selection.weights.reshape(labels.shape), 0.0)
