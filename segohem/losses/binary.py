"""Binary (foreground / background) OHEM with the detection-style 1:3 negative ratio."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segohem.losses._mining import MiningStats, resolve_count, select_hardest
from segohem.losses._validate import (
    Count,
    check_count,
    check_logits_labels,
    check_non_negative,
    check_probability,
)


class BinaryOhemLoss(nn.Module):
    """BCE-with-logits on all positives and the hardest negatives.

    Every valid positive pixel (label 1) is kept; among the negatives (label 0) the
    ``k_neg = max(floor(neg_ratio * n_pos), min_neg)`` largest BCE losses are kept
    (at most all negatives): OHEM's 1:3 foreground:background rule. Ignored pixels
    (``ignore_index``) never count.

    ``min_neg`` default, ``1/16``: at least 1/16 of the valid pixels are kept as
    negatives (BiSeNet's ``n_min`` rule), so batches with little or no foreground still
    train on their hardest background and false positives keep being suppressed. Give
    an int for an absolute pixel count, or 0 to keep exactly ``neg_ratio * n_pos``.

    ``mine_positives=True`` keeps only the hardest ``pos_fraction`` of the positives
    (at least one if any) and counts negatives against the kept positives.

    Reduction: the mean BCE over all kept pixels; with ``balance=True`` the mean over
    kept positives and the mean over kept negatives are averaged 0.5/0.5 (a side with no
    kept pixel drops out and the other gets weight 1). With ``per_image=True`` this is
    done per image and averaged over images with valid pixels. A batch without a valid
    pixel gives a zero loss with zero gradients.

    Shapes: ``logits (B, 1, H, W)`` any float dtype (computed in float32), ``labels
    (B, H, W)`` integer or bool in ``{0, 1, ignore_index}``. Returns a float32 scalar. No
    host-device sync apart from the optional label check.

    Attributes:
        last_stats: :class:`~segohem.losses.MiningStats` of the last call; ``fallback``
            is 1 where the ``min_neg`` floor (not ``neg_ratio``) set the negative count,
            ``threshold`` is the smallest kept negative loss; ``class_valid`` /
            ``class_kept`` are ``[negatives, positives]``.
    """

    fallback_rule = ("min_neg floor", "neg_ratio decided",
                     "dominated: neg_ratio x positives was rarely above it; lower loss.min_neg "
                     "or raise loss.neg_ratio")
    """The end-of-run ``Mining:`` line's words for the ``fallback`` statistic (see
    ``OhemCELoss.fallback_rule``)."""

    def __init__(
        self,
        neg_ratio: float = 3.0,
        min_neg: Count = 1 / 16,
        mine_positives: bool = False,
        balance: bool = False,
        ignore_index: int = 255,
        pos_fraction: float = 0.5,
        per_image: bool = False,
        check_labels: bool = True,
    ) -> None:
        super().__init__()
        self.neg_ratio = check_non_negative("neg_ratio", neg_ratio)
        self.min_neg = check_count("min_neg", min_neg)
        self.mine_positives = bool(mine_positives)
        self.balance = bool(balance)
        self.ignore_index = int(ignore_index)
        if self.ignore_index in (0, 1):
            raise ValueError(f"ignore_index={ignore_index} collides with the binary labels 0 "
                             f"and 1; use another value such as 255.")
        self.pos_fraction = check_probability("pos_fraction", pos_fraction)
        self.per_image = bool(per_image)
        self.check_labels = bool(check_labels)
        self.last_stats: MiningStats | None = None

    def extra_repr(self) -> str:
        return (f"neg_ratio={self.neg_ratio}, min_neg={self.min_neg}, "
                f"mine_positives={self.mine_positives}, balance={self.balance}, "
                f"ignore_index={self.ignore_index}, per_image={self.per_image}")

    def _check_labels(self, labels: Tensor, n_pos: Tensor, n_neg: Tensor) -> None:
        """Raise ``ValueError`` unless every label is 0, 1 or ``ignore_index`` (one sync)."""
        n_ignored = torch.count_nonzero(labels == self.ignore_index)
        if bool(n_pos.sum() + n_neg.sum() + n_ignored == labels.numel()):
            return
        bad = (labels != 0) & (labels != 1) & (labels != self.ignore_index)
        values = torch.unique(labels[bad])[:10].tolist()
        raise ValueError(
            f"binary labels must be 0, 1 or ignore_index={self.ignore_index}, got values "
            f"{values}. Threshold or remap the masks (e.g. mask // 255 for 0/255 PNGs), "
            f"or pass check_labels=False to skip this check.")

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args: ``logits (B, 1, *spatial)``, ``labels (B, *spatial)``. Returns a scalar."""
        labels = check_logits_labels(logits, labels, channels=1)
        groups = labels.shape[0] if self.per_image else 1
        labels = labels.reshape(groups, -1)
        positive = labels == 1
        negative = labels == 0
        bce = F.binary_cross_entropy_with_logits(
            logits.float().reshape(groups, -1), positive.to(torch.float32), reduction="none")
        pixels = bce.shape[1]
        n_pos = torch.count_nonzero(positive, dim=1)
        n_neg = torch.count_nonzero(negative, dim=1)
        if self.check_labels:
            self._check_labels(labels, n_pos, n_neg)
        n_valid = n_pos + n_neg

        if self.mine_positives:
            k_pos = torch.maximum(resolve_count(self.pos_fraction, n_pos), n_pos.clamp(max=1))
            pos = select_hardest(torch.where(positive, bce, 0.0), k_pos, pixels - n_pos, None)
            pos_weights, kept_pos = torch.where(positive, pos.weights, 0.0), pos.kept
        else:
            pos_weights, kept_pos = positive.to(torch.float32), n_pos.to(torch.float32)

        by_ratio = torch.floor(kept_pos.to(torch.float64) * self.neg_ratio).to(torch.int64)
        floor = resolve_count(self.min_neg, n_valid)
        k_neg = torch.minimum(torch.maximum(by_ratio, floor), n_neg)
        neg = select_hardest(torch.where(negative, bce, 0.0), k_neg, pixels - n_neg, None)
        neg_weights, kept_neg = torch.where(negative, neg.weights, 0.0), neg.kept

        has_valid = n_valid > 0
        n_groups = has_valid.sum().clamp_min(1)
        if self.balance:
            has_pos, has_neg = (kept_pos > 0).float(), (kept_neg > 0).float()
            sides = (has_pos + has_neg).clamp_min(1.0)
            pos_scale = has_pos / sides / kept_pos.clamp_min(1.0)
            neg_scale = has_neg / sides / kept_neg.clamp_min(1.0)
        else:
            pos_scale = neg_scale = 1.0 / (kept_pos + kept_neg).clamp_min(1.0)
        coef = pos_weights * pos_scale[:, None] + neg_weights * neg_scale[:, None]
        coef = coef * (has_valid.float() / n_groups)[:, None]
        loss = torch.dot(bce.reshape(-1), coef.detach().reshape(-1))

        neg_threshold = torch.where(k_neg > 0, neg.threshold, 0.0)
        total_valid = n_valid.sum().float()
        total_kept = (kept_pos + kept_neg).sum()
        self.last_stats = MiningStats(
            kept_fraction=(total_kept / total_valid.clamp_min(1.0)).detach(),
            fallback=(((floor > by_ratio) & has_valid).float().sum() / n_groups).detach(),
            threshold=((neg_threshold * has_valid).sum() / n_groups).detach(),
            valid_pixels=total_valid.detach(),
            kept_pixels=total_kept.detach(),
            # Class 0 = negatives, 1 = positives (exact: the kept counts are k per side).
            class_valid=torch.stack([n_neg.sum(), n_pos.sum()]).to(torch.float32).detach(),
            class_kept=torch.stack([kept_neg.sum(), kept_pos.sum()]).detach(),
        )
        return loss
