"""The training crop, with mmsegmentation's ``cat_max_ratio`` rule (``dataset.cat_max_ratio``).

``RandomCrop(cat_max_ratio=r)`` of mmsegmentation re-draws a crop whose most frequent class
covers ``r`` or more of its labelled (non-ignore) pixels, or that holds a single class, up to
10 times, and keeps the 10th re-draw whatever it holds. On large images (Cityscapes: road,
sky) it stops most crops from being one class. :func:`random_crop` is the transform the dataset
configs use: albumentations ``RandomCrop``, or :class:`CatMaxRatioCrop` when a ratio is set.
Both draw from the pipeline's seeded random state (``A.Compose(seed=...)``).
"""

from __future__ import annotations

from typing import Annotated, Any

import albumentations as A
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import Field

from segohem.config.checks import ConfigError

MAX_REDRAWS = 10  # mmsegmentation's


def dominant_share(mask: np.ndarray, ignore_index: int) -> float:
    """Share of the labelled pixels of ``mask`` (``(H, W)`` ints) held by its most frequent
    class; 1.0 for a single class and for a crop without labelled pixels (both are re-drawn)."""
    labelled = mask[mask != ignore_index]
    if labelled.size == 0:
        return 1.0
    counts = np.unique(labelled, return_counts=True)[1]
    return float(counts.max() / counts.sum())


class CatMaxRatioCrop(A.RandomCrop):
    """``RandomCrop`` of ``(height, width)`` that re-draws (at most :data:`MAX_REDRAWS` times)
    while the crop's most frequent class covers ``cat_max_ratio`` or more of its labelled
    pixels (mmsegmentation's rule; a one-class crop is re-drawn too). The image must be at
    least the crop size (pad it first, as the dataset configs do). ``redraws`` holds the
    re-draws of the last call (for tests and curiosity)."""

    class InitSchema(BaseTransformInitSchema):
        height: Annotated[int, Field(ge=1)]
        width: Annotated[int, Field(ge=1)]
        cat_max_ratio: Annotated[float, Field(gt=0, le=1)]
        ignore_index: int

    def __init__(self, height: int, width: int, cat_max_ratio: float, ignore_index: int = 255,
                 p: float = 1.0) -> None:
        super().__init__(height=height, width=width, p=p)
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.redraws = 0

    def get_params_dependent_on_data(self, params: dict[str, Any],
                                     data: dict[str, Any]) -> dict[str, Any]:
        found = super().get_params_dependent_on_data(params, data)
        mask = data.get("mask")
        self.redraws = 0
        if mask is None:
            return found
        mask = np.asarray(mask)
        for self.redraws in range(MAX_REDRAWS + 1):
            x0, y0, x1, y1 = found["crop_coords"]
            if (self.redraws == MAX_REDRAWS  # keep the last re-draw, whatever it holds
                    or dominant_share(mask[y0:y1, x0:x1], self.ignore_index)
                    < self.cat_max_ratio):
                break
            found = super().get_params_dependent_on_data(params, data)
        return found


def random_crop(height: int, width: int, cat_max_ratio: float | None = None,
                ignore_index: int = 255) -> A.DualTransform:
    """The training crop of ``(height, width)`` px: albumentations ``RandomCrop``, or
    :class:`CatMaxRatioCrop` when ``cat_max_ratio`` (``dataset.cat_max_ratio``, in (0, 1];
    mmsegmentation uses 0.75) is set."""
    if cat_max_ratio is None:
        return A.RandomCrop(height=height, width=width)
    if isinstance(cat_max_ratio, bool) or not isinstance(cat_max_ratio, (int, float)) \
            or not 0 < cat_max_ratio <= 1:
        raise ConfigError(f"dataset.cat_max_ratio={cat_max_ratio!r}: expected null (off) or a "
                          f"share in (0, 1], e.g. dataset.cat_max_ratio=0.75 (mmsegmentation): "
                          f"crops whose largest class covers that share or more are re-drawn.")
    return CatMaxRatioCrop(height=height, width=width, cat_max_ratio=float(cat_max_ratio),
                           ignore_index=ignore_index)
