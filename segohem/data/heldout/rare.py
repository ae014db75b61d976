"""The held-out sets with *image-level* rarity, ``defects`` and ``objects``: besides pixel-rare
classes present in most images, two classes each appear in only 3-6 % of the training images
(and then with a few hundred pixels), so most batches hold none of them.

Which images hold an image-rare class is not left to chance but follows :func:`placed`, an
evenly spread schedule over the sample index: any first ``n`` samples of a split hold
``floor(n x rate)`` or ``ceil(n x rate)`` of them, so the train share stays in range at any
``--train`` and the validation split (at its own, higher rate) holds enough of them to score.

Scenes: ``draw(rng, h, w, present) -> (image, mask)``, image (h, w, 3) uint8 RGB, mask (h, w)
uint8 class ids; ``present`` = the image-rare classes this sample holds (from the schedule).
The docstring of each opens its set's README.txt.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

from segohem.data.drawing import Rng, contrasting, count, dilate, ellipse, fbm, hsv, raster
from segohem.data.heldout.scenes import Sample, finish


def placed(rates: Sequence[float], key: Sequence[int], i: int) -> list[bool]:
    """Whether sample ``i`` holds each image-rare class: class ``k`` is placed where
    ``floor((i + 1) r + phase)`` steps up (``r = rates[k]``), the phase in [0, 1) drawn from
    ``key`` = (seed, stream, split id) alone, so sample ``i`` depends on ``(key, i)`` only."""
    phases = np.random.default_rng(list(key)).random(len(rates))
    return [math.floor((i + 1) * r + p) > math.floor(i * r + p)
            for r, p in zip(rates, phases, strict=True)]


def centre(rng: Rng, h: int, w: int, r: float) -> tuple[float, float]:
    """A uniform (x, y) at least ``r`` px inside the image (its centre if r is too large)."""
    return (rng.uniform(r, w - r) if w > 2 * r else w / 2,
            rng.uniform(r, h - r) if h > 2 * r else h / 2)


def blob(rng: Rng, h: int, w: int, lo: float, hi: float, jitter: float) -> np.ndarray:
    """(h, w) bool irregular ellipse of radius lo-hi x min(h, w), wholly inside the image."""
    r = rng.uniform(lo, hi) * min(h, w)
    x, y = centre(rng, h, w, r)
    return raster(h, w, "polygon", ellipse(x, y, r, r * rng.uniform(0.6, 1),
                                           rng.uniform(0, np.pi), jitter, rng, 20))


def defects(rng: Rng, h: int, w: int, present: Collection[str] = ()) -> Sample:
    """Brushed metal: thin bright scratches, rare shaded dents, rare dark burns (tinted rim).

    Scratches in 60 % of the images; faint oil spots (background, no rim) in half of them."""
    base = hsv(rng.uniform(0.55, 0.65), rng.uniform(0.02, 0.12), rng.uniform(0.5, 0.75))
    rows = np.convolve(rng.normal(0, 1, h + 4), np.ones(5) / 5, "valid")  # brushing streaks
    tex = 0.8 + 0.3 * fbm(rng, h, w, 4, 2) + 0.05 * rows[:, None]
    image = base * tex[..., None]
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:  # oil spots (background): faint darkening, no rim
        for _ in range(int(rng.integers(1, 3))):
            m = blob(rng, h, w, 0.06, 0.14, 0.35)
            image[m] *= rng.uniform(0.85, 0.92)
    if rng.random() < 0.6:  # scratch: 1-px bright, slightly bent line
        for _ in range(1 + count(rng, 1.0, h, w)):
            n = int(rng.uniform(8, 20))
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.08, n))
            pts = np.cumsum(3.0 * np.stack([np.cos(heading), np.sin(heading)], 1), 0)
            pts += [rng.uniform(0, w), rng.uniform(0, h)]
            m = raster(h, w, "line", [tuple(p) for p in pts.tolist()], 1)
            image[m] = image[m] * rng.uniform(1.2, 1.35) + 10
            mask[m] = 1
    if "dent" in present:  # dent: a dimple lit from one side (bright rim there, dark opposite)
        m = blob(rng, h, w, 0.09, 0.14, 0.15)
        ys, xs = np.nonzero(m)
        a, r = rng.uniform(0, 2 * np.pi), max(np.ptp(xs), np.ptp(ys), 2) / 2
        side = ((xs - xs.mean()) * math.cos(a) + (ys - ys.mean()) * math.sin(a)) / r
        image[ys, xs] *= (1 + rng.uniform(0.25, 0.4) * side)[:, None]
        mask[m] = 2
    if "burn" in present:  # burn: dark irregular patch, 2-3 px heat-tinted (blue/straw) rim
        m = blob(rng, h, w, 0.07, 0.12, 0.4)
        rim = dilate(m, rng.choice([2.0, 3.0])) & ~m
        image[m] *= np.asarray([0.42, 0.36, 0.3], np.float32) * rng.uniform(0.8, 1.1)
        tint = ([0.7, 0.8, 1.35], [1.25, 1.1, 0.7])[int(rng.integers(0, 2))]
        image[rim] *= np.asarray(tint, np.float32)
        mask[m | rim] = 3
    image += rng.normal(0, rng.uniform(3, 6), image.shape)
    return finish(image, mask)


def objects(rng: Rng, h: int, w: int, present: Collection[str] = ()) -> Sample:
    """Boxes, shaded balls and thin dark poles in random colours; rare striped cones, rings.

    Boxes in every image, balls in 2/3, poles (in front) ~1.2 per 96 x 96 px; background
    clutter: small irregular blobs."""
    c0, c1 = (hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.85)) for _ in "ab")
    t = fbm(rng, h, w, 4, 2)[..., None]
    image = c0 * (1 - t) + c1 * t
    mask = np.zeros((h, w), np.uint8)
    s, yy, xx = min(h, w), *np.mgrid[0:h, 0:w].astype(np.float32)

    def paint(m: np.ndarray, cls: int, colour: np.ndarray | None = None) -> None:
        image[m] = contrasting(rng, image[m].mean(0), 80) if colour is None else colour
        mask[m] = cls

    for _ in range(count(rng, 1.5, h, w)):  # clutter (background): small irregular blobs
        paint(blob(rng, h, w, 0.03, 0.06, 0.5), 0)
    for _ in range(int(rng.integers(1, 4))):  # box: rotated rectangle, flat colour
        (a, b), (x, y) = rng.uniform(0.06, 0.12, 2) * s, centre(rng, h, w, 0)
        co, si = math.cos(turn := rng.uniform(0, np.pi / 2)), math.sin(turn)
        corners = [(x + co * u - si * v, y + si * u + co * v)
                   for u, v in ((-a, -b), (a, -b), (a, b), (-a, b))]
        paint(raster(h, w, "polygon", corners), 1)
    for _ in range(int(rng.integers(0, 3))):  # ball: disc with a highlight towards the top-left
        r = rng.uniform(0.06, 0.11) * s
        x, y = centre(rng, h, w, 0)
        m = raster(h, w, "polygon", ellipse(x, y, r, r, 0, n=32))
        if m.any():
            paint(m, 2)
            d = np.hypot(xx[m] - x + 0.35 * r, yy[m] - y + 0.35 * r) / r
            image[m] *= np.clip(1.35 - 0.45 * d, 0.6, 1.35)[:, None]
    if "cone" in present:  # cone: upright triangle in two-colour horizontal stripes
        r = rng.uniform(0.1, 0.16) * s
        x, y = centre(rng, h, w, r)
        m = raster(h, w, "polygon", [(x, y - r), (x + 0.7 * r, y + r), (x - 0.7 * r, y + r)])
        paint(m, 3)
        stripe = ((yy - y) // max(2.0, r / 3)) % 2 == 1
        image[m & stripe] = contrasting(rng, image[m].mean(0), 120)
    if "ring" in present:  # ring: annulus, the ground shows through its hole
        r = rng.uniform(0.08, 0.13) * s
        x, y = centre(rng, h, w, r)
        hole = rng.uniform(0.45, 0.6) * r
        d = np.hypot(xx - x, yy - y)
        paint((d <= r) & (d > hole), 4)
    for _ in range(count(rng, 1.2, h, w)):  # pole: dark vertical 1-2 px line, in front
        x, top = rng.uniform(0, w), rng.uniform(0, 0.6) * h
        width = 1 if rng.random() < 0.7 else 2
        m = raster(h, w, "line", [(x, top), (x + rng.normal(0, 1), top + rng.uniform(0.2, 0.4)
                                              * h)], width)
        paint(m, 5, hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.1, 0.25)))
    image += rng.normal(0, 4, image.shape)
    return finish(image, mask)
