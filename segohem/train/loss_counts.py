"""The training set's pixel counts per class for the loss terms whose weight follows the class
imbalance (``MinorityRectificationLoss`` with ``alpha=None``): given by
``SegmentationModule.setup`` at the start of a fit."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from segohem.config.checks import ConfigError
from segohem.data.class_counts import class_pixel_counts, describe_counts

log = logging.getLogger(__name__)


def needs_class_counts(loss: nn.Module) -> bool:
    """Whether a term of ``loss`` still waits for the class counts (``needs_class_counts``)."""
    return any(getattr(term, "needs_class_counts", False) for term in loss.modules())


def untransformed(dataset: Any) -> Any:
    """``dataset`` as it reads its masks without augmentation: itself when it reads masks alone
    (``load_mask``, segohem's on-disk datasets), else a shallow copy with ``transform=None``,
    so that counting leaves the training set's seeded augmentation stream untouched."""
    if hasattr(dataset, "load_mask") or not hasattr(dataset, "transform"):
        return dataset
    plain = copy.copy(dataset)
    plain.transform = None
    return plain


def set_class_counts(loss: nn.Module, train_set: Any, class_names: Sequence[str],
                     ignore_index: int, report: bool = True) -> None:
    """Give every term of ``loss`` with ``needs_class_counts`` the ``(C,)`` labelled pixels per
    class of ``train_set`` (C = ``len(class_names)``); with ``report`` log the shares and the
    resulting alpha, and warn about classes without a single training pixel.

    Raises:
        ConfigError: no training set (a fit without ``SegmentationDataModule``), or no class
            has a labelled pixel (empty or all-ignore training masks).
        DatasetError: a mask holds a value that is neither a class id nor ``ignore_index``.
    """
    if train_set is None:
        raise ConfigError("loss.alpha=null: the loss weighs by the training set's pixel counts "
                          "per class, but the fit has no data module with a `train_set` to "
                          "count them on. Fit with a SegmentationDataModule, or give "
                          "loss.alpha explicitly.")
    names = list(class_names)
    counts = class_pixel_counts(untransformed(train_set), len(names), ignore_index)
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
    if absent and report:
        log.warning("Classes without a single training pixel (they cannot be learned): %s",
                    absent)
