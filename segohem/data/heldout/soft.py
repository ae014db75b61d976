"""The soft variants ``cracks_soft`` / ``voclike_soft``: the base scene plus one soft class of
medium frequency, a blurred, mottled, low-contrast tint that covers the other classes' pixels
without relabelling them."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from segohem.data.drawing import Rng, ellipse, fbm, raster
from segohem.data.heldout.scenes import Sample, cracks, finish, voclike

SOFT_BLUR = (2.5, 3.5)
"""Gaussian sigma (px) of the soft blobs' edge: 10-90 % fade over 2.56 sigma."""
SMUDGE_DARKEN = (0.035, 0.07)
"""``cracks_soft``: the smudge's darkening (fraction of the texture's brightness)."""
HAZE_OPACITY = (0.22, 0.35)
"""``voclike_soft``: the haze's opacity (its colour is 40-70 above the image's mean)."""


def soft_blobs(rng: Rng, h: int, w: int, p_present: float = 0.85) -> np.ndarray:
    """Opacity (h, w) float32 in [0, 1] of 0-2 soft blobs: irregular ellipses of radius
    0.11-0.19 x min(h, w), Gaussian-blurred (sigma :data:`SOFT_BLUR` px)."""
    shape = np.zeros((h, w), np.float32)
    if rng.random() < p_present:
        for _ in range(1 if rng.random() < 0.6 else 2):
            r = rng.uniform(0.11, 0.19) * min(h, w)
            shape += raster(h, w, "polygon", ellipse(
                rng.uniform(0, w), rng.uniform(0, h), r, r * rng.uniform(0.5, 1),
                rng.uniform(0, np.pi), 0.3, rng, 16))
    im = Image.fromarray((255 * np.minimum(shape, 1)).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(rng.uniform(*SOFT_BLUR))),
                      np.float32) / 255


def add_soft(sample: Sample, alpha: np.ndarray, opacity: np.ndarray, veil: np.ndarray,
             cls: int) -> Sample:
    """Blend ``veil`` (H, W, 3) or (3,) float over the image with ``opacity`` (H, W) and label
    the background pixels (id 0) where the blob's ``alpha`` (H, W) >= 0.5 as ``cls``; other
    classes keep their ids under the veil."""
    image, mask = sample[0].astype(np.float32), sample[1].copy()
    a = opacity[..., None]
    image = image * (1 - a) + veil * a
    mask[(alpha >= 0.5) & (mask == 0)] = cls
    return finish(image, mask)


def mottled(rng: Rng, h: int, w: int, lo: float, hi: float) -> np.ndarray:
    """(h, w) float32 strength: one uniform draw in [lo, hi] x (1 +- 0.3 fBm mottling)."""
    return rng.uniform(lo, hi) * (1 + 0.6 * (fbm(rng, h, w, 3, 3) - 0.5))


def cracks_soft(rng: Rng, h: int, w: int) -> Sample:
    """``cracks`` plus a soft smudge: a faint (:data:`SMUDGE_DARKEN`) brownish, mottled
    darkening of the texture with a blurred edge (class 4)."""
    image, mask = cracks(rng, h, w)
    alpha = soft_blobs(rng, h, w)
    tint = np.asarray([0.8, 1.0, 1.25], np.float32)  # darkens blue most: brownish
    dark = image.astype(np.float32) * (1 - mottled(rng, h, w, *SMUDGE_DARKEN)[..., None] * tint)
    return add_soft((image, mask), alpha, alpha, dark, 4)


def voclike_soft(rng: Rng, h: int, w: int) -> Sample:
    """``voclike`` plus a soft haze: a veil (opacity :data:`HAZE_OPACITY`, mottled) towards a
    colour lighter than the image's mean, with a blurred edge (class 4); no void band."""
    image, mask = voclike(rng, h, w)
    alpha = soft_blobs(rng, h, w)
    fog = np.clip(image.reshape(-1, 3).mean(0) + rng.uniform(40, 70), 0, 255)
    return add_soft((image, mask), alpha, alpha * mottled(rng, h, w, *HAZE_OPACITY), fog, 4)
