"""Pixel counts per class over a dataset's masks (class imbalance at start-up)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from segohem.data.datasets import DatasetError


def class_pixel_counts(dataset: Any, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Labelled pixels per class over every mask of ``dataset``.

    Reads masks only (``dataset.load_mask(i)``) when the dataset offers it (segohem's on-disk
    datasets: no image is decoded), else ``dataset[i]["mask"]``. Masks are read in threads.

    Args:
        dataset: a map-style dataset of ``{"mask": (H, W) ...}`` items or with ``load_mask``.
        num_classes: C; any other value than ``0..C-1`` and ``ignore_index`` is an error.
        ignore_index: the label value that is not counted.

    Returns:
        ``(C,)`` int64 counts.

    Raises:
        DatasetError: the dataset is empty, or a mask holds an unknown value (named).
    """
    if len(dataset) == 0:
        raise DatasetError(f"{dataset!r} has no samples: cannot count class pixels.")
    load = getattr(dataset, "load_mask", None) or (lambda i: dataset[i]["mask"])

    def count(i: int) -> np.ndarray:
        mask = np.asarray(load(i)).reshape(-1).astype(np.int64, copy=False)
        known = ((mask >= 0) & (mask < num_classes)) | (mask == ignore_index)
        if not known.all():
            values = np.unique(mask[~known])[:10].tolist()
            raise DatasetError(f"sample {i} of {dataset!r}: mask values {values} are neither "
                               f"class ids in [0, {num_classes}) nor {ignore_index}.")
        return np.bincount(np.where(mask == ignore_index, num_classes, mask),
                           minlength=num_classes + 1)[:num_classes]

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return np.sum(list(pool.map(count, range(len(dataset)))), axis=0, dtype=np.int64)


def describe_counts(counts: np.ndarray, class_names: Sequence[str]) -> str:
    """``name 91.2 %, ...`` shares of the labelled pixels, for a log line."""
    total = max(int(counts.sum()), 1)
    return ", ".join(f"{n} {100.0 * c / total:.2f} %" for n, c in zip(class_names, counts,
                                                                      strict=True))
