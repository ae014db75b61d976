"""Training crop and random-scale range, derived from the training images when set to ``auto``.

``dataset.crop_size`` and ``dataset.scale_range`` take explicit values (``[H, W]``,
``[min, max]``) or ``auto``. :func:`resolve_auto_geometry` replaces ``auto`` in the config,
before any transform is instantiated, from the sizes of the training images (read from the
file headers, nothing decoded):

* crop ``(H, W)`` = the median image height, resp. width, capped at 512 and rounded down to a
  multiple of 32, at least 32 (smaller images are padded, the mask with 255 = ignore);
* scale range ``[0.5, 2.0]`` when the median short side is at least 2 x 512 px (large
  photos, as Cityscapes), else ``[1.0, 1.0]``: no random rescale, since shrinking small images
  erases 1-px structures (cracks, wires) and enlarging them changes their apparent width
  compared with validation.

:func:`random_scale` is the transform the dataset configs use for ``dataset.scale_range``: an
albumentations ``RandomScale`` (which takes ``scale_limit = [min - 1, max - 1]``), or a no-op
for ``[1, 1]``.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import ListConfig, OmegaConf, open_dict
from PIL import Image, UnidentifiedImageError

from segohem.config.checks import ConfigError
from segohem.data.datasets import DatasetError

log = logging.getLogger(__name__)

AUTO = "auto"
MAX_CROP = 512  # largest automatic crop side (px)
SIZE_DIVISOR = 32  # automatic crops are multiples of this (the encoders' output stride)
LARGE_SHORT_SIDE = 2 * MAX_CROP  # median short side from which random scale is on
PHOTO_SCALE_RANGE = (0.5, 2.0)
NO_SCALE = (1.0, 1.0)

CROP_HELP = ("expected auto (derived from the training images) or [height, width], two "
             "positive integers, e.g. dataset.crop_size=[512,512]")
SCALE_HELP = ("expected auto (derived from the training images) or [min, max] random scale "
              "factors with 0 < min <= max, e.g. dataset.scale_range=[0.5,2.0] (x0.5-x2.0) or "
              "dataset.scale_range=[1,1] (off)")


@dataclass(frozen=True)
class Geometry:
    """The training geometry and where it came from.

    ``crop_size`` is ``(H, W)``, ``scale_range`` ``(min, max)``; ``crop_auto`` /
    ``scale_auto`` say which of them were derived (the others were given); ``num_images``,
    ``median_size`` ``(H, W)`` and ``median_short_side`` describe the training images.
    """

    crop_size: tuple[int, int]
    scale_range: tuple[float, float]
    num_images: int
    median_size: tuple[int, int]
    median_short_side: int
    crop_auto: bool = True
    scale_auto: bool = True

    def describe(self) -> str:
        """One line: the images, the crop and the random scale, and how to change them."""
        h, w = self.median_size
        crop = f"crop {self.crop_size[0]}x{self.crop_size[1]}"
        if not self.crop_auto:
            crop += " (dataset.crop_size)"
        lo, hi = self.scale_range
        scale = "random scale off" if (lo, hi) == NO_SCALE else f"random scale x{lo:g}-{hi:g}"
        if not self.scale_auto:
            scale += " (dataset.scale_range)"
        elif (lo, hi) == NO_SCALE:
            scale += (f" (images smaller than 2x{MAX_CROP} px; set dataset.scale_range="
                      f"[{PHOTO_SCALE_RANGE[0]},{PHOTO_SCALE_RANGE[1]}] to turn it on)")
        else:
            scale += (f" (images at least 2x{MAX_CROP} px; set dataset.scale_range=[1,1] to "
                      f"turn it off)")
        return (f"dataset: {self.num_images} training images, median {h}x{w} px -> {crop}, "
                f"{scale}")


def _crop_side(median: int) -> int:
    return max(SIZE_DIVISOR, min(MAX_CROP, median) // SIZE_DIVISOR * SIZE_DIVISOR)


def derive_geometry(sizes: Sequence[tuple[int, int]]) -> Geometry:
    """The automatic crop and scale range for training images of ``sizes`` ``[(H, W), ...]``
    (the rule of this module's docstring). Medians are ``statistics.median_low``: a size that
    occurs in the data."""
    if not sizes:
        raise ValueError("derive_geometry needs at least one image size")
    med_h = statistics.median_low(h for h, _ in sizes)
    med_w = statistics.median_low(w for _, w in sizes)
    short = statistics.median_low(min(h, w) for h, w in sizes)
    scale = PHOTO_SCALE_RANGE if short >= LARGE_SHORT_SIDE else NO_SCALE
    return Geometry(crop_size=(_crop_side(med_h), _crop_side(med_w)), scale_range=scale,
                    num_images=len(sizes), median_size=(med_h, med_w), median_short_side=short)


def image_sizes(paths: Sequence[Path], skip_unreadable: bool = False) -> list[tuple[int, int]]:
    """``(H, W)`` of each image file, from its header (Pillow, nothing decoded; threads, so
    slow file systems overlap). An unreadable file raises :class:`DatasetError` naming it,
    or is left out with ``skip_unreadable``."""
    def size(path: Path) -> tuple[int, int] | None:
        try:
            with Image.open(path) as image:
                w, h = image.size
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError,
                Image.DecompressionBombError) as err:
            if skip_unreadable:
                return None
            raise DatasetError(f"{path}: unreadable image file ({err}). Re-copy or re-extract "
                               f"it, or pass skip_bad=True to skip bad samples.") from None
        return h, w

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(size, paths))
    return [s for s in found if s is not None]


def check_crop_size(value: Any) -> tuple[int, int] | None:
    """``(H, W)`` of an explicit ``dataset.crop_size``; None for ``auto``; else a
    :class:`~segohem.config.checks.ConfigError` naming the option and the fix."""
    if isinstance(value, str) and value == AUTO:
        return None
    if not _is_pair(value) or not all(_is_int(v) and v > 0 for v in value):
        raise ConfigError(f"dataset.crop_size={_show(value)}: {CROP_HELP}.")
    return int(value[0]), int(value[1])


def check_scale_range(value: Any) -> tuple[float, float] | None:
    """``(min, max)`` of an explicit ``dataset.scale_range``; None for ``auto``; else a
    :class:`~segohem.config.checks.ConfigError` naming the option and the fix."""
    if isinstance(value, str) and value == AUTO:
        return None
    if (not _is_pair(value) or not all(_is_number(v) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ConfigError(f"dataset.scale_range={_show(value)}: {SCALE_HELP}.")
    return float(value[0]), float(value[1])


def _is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple, ListConfig)) and len(value) == 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _show(value: Any) -> str:
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return repr(value).replace(" ", "") if isinstance(value, (list, tuple)) else repr(value)


def resolve_auto_geometry(dataset: Any) -> Geometry | None:
    """Replace ``auto`` in ``dataset.crop_size`` / ``dataset.scale_range`` (the ``dataset``
    node of a composed config) with the values derived from the training images, in place,
    and log one line saying what was chosen. Call it before instantiating the transforms (the
    train pipeline interpolates ``${dataset.crop_size.0}``), so checkpoints keep the resolved
    values too.

    Explicit values are only checked. Returns the :class:`Geometry` when something was
    derived, else None (also for datasets without these keys, e.g. ``synthetic``). The
    training images come from ``dataset.train_set`` built without its transform; an empty or
    missing split raises the dataset's own :class:`~segohem.data.DatasetError`.
    """
    crop_value, scale_value = dataset.get("crop_size"), dataset.get("scale_range")
    crop = check_crop_size(crop_value) if crop_value is not None else None
    scale = check_scale_range(scale_value) if scale_value is not None else None
    crop_auto = crop_value is not None and crop is None
    scale_auto = scale_value is not None and scale is None
    if not (crop_auto or scale_auto):
        return None
    skip_bad = bool(dataset.get("skip_bad", False))
    sizes = image_sizes(training_images(dataset), skip_unreadable=skip_bad)
    if not sizes:
        raise DatasetError(f"{dataset.get('root')}: no readable training image to derive "
                           f"dataset.crop_size / dataset.scale_range=auto from.")
    derived = derive_geometry(sizes)
    geometry = Geometry(crop_size=crop or derived.crop_size,
                        scale_range=scale or derived.scale_range,
                        num_images=derived.num_images, median_size=derived.median_size,
                        median_short_side=derived.median_short_side,
                        crop_auto=crop_auto, scale_auto=scale_auto)
    with open_dict(dataset):
        if crop_auto:
            dataset.crop_size = list(geometry.crop_size)
        if scale_auto:
            dataset.scale_range = list(geometry.scale_range)
    log.info(geometry.describe())
    return geometry


def training_images(dataset: Any) -> list[Path]:
    """The image files of ``dataset.train_set`` (built without transform, and without
    ``skip_bad``'s full read: unreadable headers are skipped by the caller instead)."""
    node = dataset.get("train_set")
    options: dict[str, Any] = {"transform": None}
    if node is not None and "skip_bad" in node:
        options["skip_bad"] = False
    try:
        train_set = instantiate(node, **options) if node is not None else None
    except InstantiationException as err:
        if isinstance(err.__cause__, DatasetError):
            raise err.__cause__ from None
        raise
    samples = getattr(train_set, "samples", None)
    if samples is None:
        raise ConfigError(f"dataset.crop_size / dataset.scale_range=auto need a dataset of "
                          f"image files; {type(train_set).__name__} has none: set them "
                          f"explicitly, e.g. dataset.crop_size=[512,512] "
                          f"dataset.scale_range=[1,1].")
    return [s.image for s in samples]


def random_scale(scale_range: Sequence[float], **kwargs: Any) -> Any:
    """Albumentations transform for random scale factors in ``scale_range = [min, max]``:
    ``RandomScale(scale_limit=(min - 1, max - 1), p=1, **kwargs)`` (albumentations adds 1 to
    the limits), or ``NoOp`` for ``[1, 1]`` (no work, no random draw)."""
    lo_hi = check_scale_range(scale_range)
    if lo_hi is None:
        raise ConfigError("dataset.scale_range=auto was not resolved: call "
                          "segohem.data.geometry.resolve_auto_geometry(cfg.dataset) before "
                          "instantiating the transforms (segohem-train does), or set "
                          "dataset.scale_range=[min,max].")
    lo, hi = lo_hi
    if (lo, hi) == NO_SCALE:
        return A.NoOp(p=0.0)  # p=0: not even a random draw
    return A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), **{"p": 1.0, **kwargs})
