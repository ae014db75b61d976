"""Pixel counts per class over a dataset's masks (class imbalance at start-up): the ``pixels``
of :func:`segohem.data.class_stats.class_statistics`, cached like them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segohem.data.class_stats import class_statistics


def class_pixel_counts(dataset: Any, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Labelled pixels per class over every mask of ``dataset``: ``(C,)`` int64
    (:func:`~segohem.data.class_stats.class_statistics`, which reads masks only where the
    dataset offers ``load_mask``, and raises ``DatasetError`` for an empty dataset or a mask
    value that is neither a class id nor ``ignore_index``)."""
    return class_statistics(dataset, num_classes, ignore_index).pixels


def describe_counts(counts: np.ndarray, class_names: Sequence[str]) -> str:
    """``name 91.2 %, ...`` shares of the labelled pixels, for a log line."""
    total = max(int(counts.sum()), 1)
    return ", ".join(f"{n} {100.0 * c / total:.2f} %" for n, c in zip(class_names, counts,
                                                                      strict=True))
