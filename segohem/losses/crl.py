"""Minority-class rectification: a class-level triplet loss on hard pixels of rare classes.

Dong, Gong and Zhu, *Imbalanced Deep Learning by Minority Class Incremental
Rectification* (TPAMI 2019, arXiv 1804.10851), adapted from images to pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from segohem.losses._hard_pixels import hard_pixels, minority_classes, pixel_rows
from segohem.losses._mining import MiningStats
from segohem.losses._pixel_ce import lend_log_softmax
from segohem.losses._validate import (
    check_fraction,
    check_int,
    check_logits_labels,
    check_non_negative,
    check_probability,
)

__all__ = ["MinorityRectificationLoss", "RectificationStats", "minority_classes"]

IMBALANCE_MEASURES = ("redistribution", "ratio")
SCORES = ("log_prob", "prob")


@dataclass(frozen=True)
class RectificationStats:
    """Statistics of one rectification call, detached float32 scalars."""

    minority_classes: Tensor
    """Number of classes rectified in the batch (minority and with >= 1 hard negative)."""
    rectification: Tensor
    """The rectification (triplet) loss; 0 when no class qualified."""
    active_triplets: Tensor
    """Fraction of the (hard positive, hard negative) comparisons that violate the margin."""
    alpha: Tensor
    """Weight of the rectification term in this call (0 when no class qualified)."""

    def as_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """The statistics keyed ``prefix + name``, e.g. for ``LightningModule.log_dict``."""
        return {prefix + key: value for key, value in vars(self).items()}


class MinorityRectificationLoss(nn.Module):
    """``alpha * rectification + (1 - alpha) * base``: a base loss plus the class
    rectification loss (CRL) of Dong et al. on the minority classes of each batch.

    Per batch, over the valid pixels (``labels != ignore_index``):

    * **minority classes** (:func:`minority_classes`): the least frequent classes present,
      in increasing order of pixel count, while their cumulative count stays
      ``<= rho * valid``; a class is rectified if it has at least 2 pixels and another class
      at least one;
    * **hard positives** of a minority class ``c`` are its ``k`` pixels with the lowest score
      ``s_c`` (see ``score``), **hard negatives** the ``k`` pixels of other classes with the
      highest;
    * an anchor ``a`` (any class-``c`` pixel), a hard positive ``+`` and a hard negative ``-``
      give ``max(0, m + d(a, +) - d(a, -))`` with the *signed* distance ``d(a, x) = s_a - s_x``.
      On this ordered one-dimensional score the paper's ``|s_a - s_x|`` (made for feature
      spaces) would push a negative that outscores the anchor further *up* and pull a positive
      that outranks it *down*: exactly the state of a rare class not learned yet, and of a
      class with fewer than ``2k`` pixels, whose anchors and hard positives overlap. With
      signed distances the anchor cancels (``m + s_- - s_+``): the ``k^2`` (hard positive,
      hard negative) terms are formed once per class, at ``O(C k^2)`` whatever the batch size.
      Class ``c``'s term is their mean (fewer pairs when the class or its negatives have fewer
      than ``k`` pixels); the rectification loss is the mean over the rectified classes;
    * ``score="log_prob"`` (default) compares ``s_c = log p_c``, the margin in nats (``m = 1``:
      a hard positive should be ``e`` times as likely to be class ``c`` as a hard negative);
      ``"prob"`` compares ``p_c``, the margin in probability. ``p_c`` saturates: a rare class
      not learned yet has ``p_c ~ 0`` on all its pixels, where ``d p_c / d logit ~ 0``, so its
      hard positives get no gradient while lowering every ``p_c`` shrinks the hinge towards
      ``m``; on a held-out set (docs/benchmarks.md) ``"prob"`` collapsed training to all
      background. ``d log p_c / d logit = 1 - p_c`` does not vanish there.

    The total is exactly ``base`` when no class is rectified (never NaN), and in eval mode
    (the rectification is a training signal).

    ``alpha`` is given, or ``min(1, eta * imbalance)`` from the training set's pixel counts
    per class (:meth:`set_class_counts`, which ``segohem-train`` calls at start-up). The
    imbalance is ``imbalance_measure="redistribution"`` (default, the paper's Ω_imb): the
    percentage of pixels that would have to change class to make the class distribution
    uniform, ``100 * sum_c max(0, share_c - 1/C)`` (with the paper's ``eta=0.01`` alpha is
    that fraction: 0 for balanced data, 0.71 for 4 classes with 96 % background); or
    ``"ratio"``: the smallest / largest count of the classes present, which *falls* as the
    imbalance grows (about 1e-3 on Cityscapes), so it needs a large ``eta``.

    Under DDP each rank mines its own shard (as every peer toolkit does) and DDP averages the
    gradients. ``logits (B, C, *spatial)`` of any float dtype (computed in float32, AMP safe),
    ``labels (B, *spatial)``; returns a float32 scalar. No host-device sync (``k`` is a static
    int; the class selection is masks and ``torch.where``) except the base loss's optional
    label check. Ties among scores may pick different pixels, with the same value.

    Args:
        base: the base loss, e.g. :class:`~segohem.losses.CrossEntropyLoss` or
            :class:`~segohem.losses.OhemCELoss` (called with the same inputs).
        k: hard positives and hard negatives per class (int >= 1).
        rho: fraction of the valid pixels the minority classes may cover, in (0, 1].
        margin: triplet margin ``m`` (>= 0).
        score: ``"log_prob"`` or ``"prob"`` (see above).
        alpha: weight of the rectification term in [0, 1], or None to use ``eta``.
        eta: with ``alpha=None``, ``alpha = min(1, eta * imbalance)`` (>= 0).
        imbalance_measure: ``"redistribution"`` or ``"ratio"`` (see above).
        ignore_index: label value that is never counted.

    Attributes:
        last_stats: the base loss's :class:`~segohem.losses.MiningStats` (None if it has none).
        last_rectification: :class:`RectificationStats` of the last call.
    """

    imbalance: Tensor

    def __init__(self, base: nn.Module, k: int = 32, rho: float = 0.5, margin: float = 1.0,
                 score: str = "log_prob",
                 alpha: float | None = None, eta: float = 0.01,
                 imbalance_measure: str = "redistribution", ignore_index: int = 255) -> None:
        super().__init__()
        self.k = check_int("k", k, minimum=1, hint=" (pixels mined per class)")
        self.rho = check_probability("rho", rho)
        self.margin = check_non_negative("margin", margin)
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
        self.score = score
        self.alpha = None if alpha is None else check_fraction("alpha", alpha)
        self.eta = check_non_negative("eta", eta)
        if imbalance_measure not in IMBALANCE_MEASURES:
            raise ValueError(f"imbalance_measure must be one of {IMBALANCE_MEASURES}, got "
                             f"{imbalance_measure!r}.")
        self.imbalance_measure = imbalance_measure
        self.ignore_index = int(ignore_index)
        self.base = base
        # Saved in checkpoints (a resumed run keeps the alpha it started with); the value in
        # use is the Python float, so forward never reads the buffer (no device sync).
        self.register_buffer("imbalance", torch.tensor(float("nan"), dtype=torch.float64))
        self._imbalance: float | None = None
        self.last_rectification: RectificationStats | None = None

    @property
    def needs_class_counts(self) -> bool:
        """True while ``alpha`` must still come from the training set's class counts."""
        return self.alpha is None and self._imbalance is None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Restore ``imbalance`` from a checkpoint; a checkpoint without it (another loss, or
        an explicit ``alpha``: NaN) keeps the value set from the class counts."""
        key = prefix + "imbalance"
        saved = state_dict.get(key)
        if saved is None or bool(torch.isnan(saved)):
            state_dict = {**state_dict, key: self.imbalance.detach().clone()}
        super()._load_from_state_dict(state_dict, prefix, *args)
        value = float(self.imbalance)
        self._imbalance = None if math.isnan(value) else value

    def set_class_counts(self, counts: Sequence[int] | Tensor,
                         class_names: Sequence[str] | None = None) -> float:
        """Set ``imbalance`` from the training set's ``(C,)`` pixel counts per class (see the
        class docstring) and return the resulting ``alpha``. With ``"ratio"``, classes without
        any pixel are left out (their IoU cannot be learned anyway; the caller should warn
        about them). ``ValueError`` (naming ``class_names``) when no class has a pixel."""
        counts = [float(c) for c in torch.as_tensor(counts).reshape(-1).tolist()]
        total = sum(counts)
        if total <= 0:
            names = f" ({list(class_names)})" if class_names is not None else ""
            raise ValueError(
                f"alpha=None needs the training set's class pixel counts, but no class{names} "
                f"has a labelled pixel (empty or all-ignore training masks). Check the "
                f"dataset, or give loss.alpha explicitly.")
        if self.imbalance_measure == "redistribution":
            value = 100.0 * sum(max(0.0, c / total - 1.0 / len(counts)) for c in counts)
        else:
            present = [c for c in counts if c > 0]
            value = min(present) / max(present)
        self._imbalance = value
        self.imbalance.fill_(value)
        return self.current_alpha()

    def current_alpha(self) -> float:
        """The rectification weight in use (``alpha``, or ``min(1, eta * imbalance)``)."""
        if self.alpha is not None:
            return self.alpha
        if self._imbalance is None:
            raise ValueError(
                "MinorityRectificationLoss(alpha=None) needs the training set's class "
                "counts: call set_class_counts(counts) first (segohem-train does), or give "
                "alpha.")
        return min(1.0, self.eta * self._imbalance)

    @property
    def last_stats(self) -> MiningStats | None:
        return getattr(self.base, "last_stats", None)

    def selected_pixels(self, logits: Tensor, labels: Tensor) -> Tensor | None:
        """The base loss's kept pixels (see ``OhemCELoss.selected_pixels``), if it mines."""
        select = getattr(self.base, "selected_pixels", None)
        return None if select is None else select(logits, labels)

    def rectification(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rectification term alone.

        Returns:
            ``(loss, n_rectified, active_fraction)``: float32 scalar loss (0 with zero
            gradients when no class qualifies), the number of rectified classes and the
            fraction of comparisons with a non-zero loss (both float32, detached).
        """
        mined = self._mine(logits, labels)
        return self._triplet_loss(logits, *mined[1:], sparse_grad=False)

    def _mine(self, logits: Tensor, labels: Tensor
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Counts, rectified classes and hard pixels of a batch.

        Returns:
            ``(log_prob, counts, n_valid, rectify, positives, negatives)``: the float32
            log-softmax ``(B, C, *spatial)`` after :func:`hard_pixels` (fit to lend to the
            base loss), ``(C,)`` int64 pixel counts, their sum, ``(C,)`` bool classes to
            rectify, ``(C, k)`` flat indices of the hard positives and negatives.
        """
        labels = check_logits_labels(logits, labels)
        batch, classes = logits.shape[:2]
        pixels = math.prod(labels.shape[1:])
        flat_labels = labels.reshape(batch, pixels)
        in_range = ((flat_labels != self.ignore_index) & (flat_labels >= 0)
                    & (flat_labels < classes))
        # Ignored pixels (and out-of-range labels, which the base loss reports) go to bin C.
        bins = torch.where(in_range, flat_labels, classes).reshape(-1)
        counts = torch.zeros(classes + 1, dtype=torch.int64, device=labels.device)
        counts.index_add_(0, bins, torch.ones_like(bins))
        counts = counts[:classes]
        n_valid = counts.sum()
        rectify = minority_classes(counts, self.rho) & (n_valid - counts >= 1)
        log_prob = torch.log_softmax(logits.detach(), 1, dtype=torch.float32)
        # A view when contiguous (ranked in place, then lent to the base loss), else a copy.
        score = log_prob.reshape(batch, classes, pixels)
        positives, negatives = hard_pixels(score, flat_labels, in_range,
                                           min(self.k, batch * pixels))
        return log_prob, counts, n_valid, rectify, positives, negatives

    def _triplet_loss(self, logits: Tensor, counts: Tensor, n_valid: Tensor, rectify: Tensor,
                      positives: Tensor, negatives: Tensor, sparse_grad: bool
                      ) -> tuple[Tensor, Tensor, Tensor]:
        """The rectification loss on the mined pixels (see :meth:`rectification`)."""
        classes, k = positives.shape
        slots = torch.arange(k, device=positives.device)
        class_ids = torch.arange(classes, device=positives.device)
        pos_ok = slots < counts[:, None]                                      # (C, k)
        neg_ok = slots < (n_valid - counts)[:, None]
        # Scores with gradient, only at the 2k mined pixels of each class.
        index = torch.cat([positives, negatives], dim=1).reshape(-1)          # (C * 2k,)
        rows = pixel_rows(logits, index, sparse_grad).float().reshape(classes, 2 * k, classes)
        scores = torch.log_softmax(rows, dim=-1)
        if self.score == "prob":
            scores = scores.exp()
        p = scores.gather(
            -1, class_ids[:, None, None].expand(classes, 2 * k, 1)).squeeze(-1)
        p_pos, p_neg = p[:, :k], p[:, k:]
        # Signed relative comparison (see the class docstring): the anchor cancels out.
        hinge = torch.relu(self.margin + p_neg[:, None, :] - p_pos[:, :, None])  # (C, +, -)
        mask = pos_ok[:, :, None] & neg_ok[:, None, :] & rectify[:, None, None]
        weight = mask.to(torch.float32)
        n_pairs = weight.sum((1, 2))
        per_class = (hinge * weight).sum((1, 2)) / n_pairs.clamp_min(1.0)
        n_rectified = rectify.sum().to(torch.float32)
        loss = per_class.sum() / n_rectified.clamp_min(1.0)
        active = ((hinge.detach() > 0) & mask).sum().to(torch.float32)
        active_fraction = active / n_pairs.sum().clamp_min(1.0)
        return loss, n_rectified.detach(), active_fraction.detach()

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args: ``logits (B, C, *spatial)``, ``labels (B, *spatial)``. Returns a scalar."""
        if not self.training:
            return self.base(logits, labels)
        log_prob, *mined = self._mine(logits, labels)
        # The base loss reuses the log-softmax the mining computed (if it is a segohem
        # cross-entropy; any other loss ignores it).
        with lend_log_softmax(logits, log_prob):
            base = self.base(logits, labels)
        del log_prob
        rect, n_rectified, active = self._triplet_loss(logits, *mined, sparse_grad=True)
        alpha = self.current_alpha()
        total = torch.where(n_rectified > 0, alpha * rect + (1.0 - alpha) * base, base)
        self.last_rectification = RectificationStats(
            minority_classes=n_rectified, rectification=rect.detach(), active_triplets=active,
            alpha=torch.where(n_rectified > 0, alpha, 0.0).to(torch.float32))
        return total

    def extra_repr(self) -> str:
        alpha = (f"alpha={self.alpha}" if self.alpha is not None
                 else f"eta={self.eta}, imbalance_measure={self.imbalance_measure!r}")
        return (f"k={self.k}, rho={self.rho}, margin={self.margin}, score={self.score!r}, {alpha}, "
                f"ignore_index={self.ignore_index}")
