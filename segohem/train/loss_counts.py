"""The training set's pixel counts per class for the loss terms whose weight follows the class
imbalance (``MinorityRectificationLoss`` with ``alpha=None``): given by
``SegmentationModule.setup`` at the start of a fit, from the data module's ``train_stats``
(:class:`~segohem.data.class_stats.ClassStats`, computed once in its ``setup``) when it has
them, else counted here."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from segohem.config.checks import ConfigError
from segohem.data.class_counts import describe_counts
from segohem.data.class_stats import ClassStats, class_statistics, untransformed

__all__ = ["needs_class_counts", "set_class_counts", "untransformed"]

log = logging.getLogger(__name__)


def needs_class_counts(loss: nn.Module) -> bool:
    """Whether a term of ``loss`` still waits for the class counts (``needs_class_counts``)."""
    return any(getattr(term, "needs_class_counts", False) for term in loss.modules())


def set_class_counts(loss: nn.Module, train_set: Any, class_names: Sequence[str],
                     ignore_index: int, report: bool = True,
                     stats: ClassStats | None = None) -> None:
    """Give every term of ``loss`` with ``needs_class_counts`` the ``(C,)`` labelled pixels per
    class of ``train_set`` (C = ``len(class_names)``): ``stats.pixels`` when ``stats`` (the
    data module's ``train_stats``) counts C classes, else counted on ``train_set`` (masks
    only, cached: :func:`~segohem.data.class_stats.class_statistics`). With ``report`` log the
    shares and the resulting alpha and, when counted here, warn about classes without a single
    training pixel (the data module's statistics warn about those themselves).

    Raises:
        ConfigError: no training set (a fit without ``SegmentationDataModule``), or no class
            has a labelled pixel (empty or all-ignore training masks).
        DatasetError: a mask holds a value that is neither a class id nor ``ignore_index``.
    """
    names = list(class_names)
    if stats is not None and len(stats.pixels) == len(names):
        counts, counted = stats.pixels, False
    elif train_set is None:
        raise ConfigError("loss.alpha=null: the loss weighs by the training set's pixel counts "
                          "per class, but the fit has no data module with a `train_set` to "
                          "count them on. Fit with a SegmentationDataModule, or give "
                          "loss.alpha explicitly.")
    else:
        counts, counted = class_statistics(train_set, len(names), ignore_index).pixels, True
    for term in loss.modules():
        if getattr(term, "needs_class_counts", False):
            try:
                alpha = term.set_class_counts(counts, names)
            except ValueError as err:
                raise ConfigError(f"loss.alpha=null: {err}") from None
            if report:
                log.info("Training pixels per class: %s -> loss alpha = %.4g",
                         describe_counts(counts, names), alpha)
    absent = [n for n, c in zip(names, counts, strict=True) if c == 0]
    if absent and report and counted:
        log.warning("Classes without a single training pixel (they cannot be learned): %s",
                    absent)
