"""The scenes of the three base held-out sets: ``draw(rng, h, w) -> (image, mask)``, image
(h, w, 3) uint8 RGB, mask (h, w) uint8 class ids (255 = ignore). The first docstring line of
each is what its set's README.txt says it is."""

from __future__ import annotations

import math

import numpy as np

from segohem.data.drawing import (
    Points,
    Rng,
    contrasting,
    count,
    dilate,
    ellipse,
    erode,
    fbm,
    hsv,
    polygon,
    raster,
    to_uint8,
)

IGNORE = 255
Sample = tuple[np.ndarray, np.ndarray]  # image (H, W, 3) uint8 RGB, mask (H, W) uint8


def finish(image: np.ndarray, mask: np.ndarray) -> Sample:
    """float image (H, W, 3) -> clipped uint8; mask (H, W) -> uint8."""
    return to_uint8(image), mask.astype(np.uint8)


def cracks(rng: Rng, h: int, w: int) -> Sample:
    """Concrete-like texture; stain blob, thin low-contrast cracks, tiny dark pits."""
    base = hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.15), rng.uniform(0.5, 0.8))
    tex = 0.75 + 0.4 * fbm(rng, h, w, 5, 2) + 0.12 * (fbm(rng, h, w, 2, 12) - 0.5)
    image = base * tex[..., None]
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.8:  # stain: irregular tinted, mottled blob
        r = rng.uniform(0.1, 0.2) * min(h, w)
        m = raster(h, w, "polygon", ellipse(rng.uniform(0, w), rng.uniform(0, h), r,
                                            r * rng.uniform(0.5, 1), rng.uniform(0, np.pi),
                                            0.35, rng, 16))
        tint = np.asarray([0.78, 0.7, 0.55], np.float32) * rng.uniform(0.85, 1.05)
        shade = 1 + 0.15 * (fbm(rng, h, w, 3, 4) - 0.5)
        image[m] *= tint * shade[m][:, None]
        mask[m] = 1
    for _ in range(count(rng, 1.0, h, w)):  # crack: random walk, 2 px steps
        n = int(rng.uniform(12, 28))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, n))
        pts = np.cumsum(2.0 * np.stack([np.cos(heading), np.sin(heading)], 1), 0)
        pts += [rng.uniform(0, w), rng.uniform(0, h)]
        m = raster(h, w, "line", [tuple(p) for p in pts.tolist()], 1 if rng.random() < 0.7 else 2)
        image[m] *= rng.uniform(0.68, 0.8)
        mask[m] = 2
    for _ in range(count(rng, 1.5, h, w)):  # pit: 2x2 or 3x3 dark speck
        k, y, x = int(rng.integers(2, 4)), int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
        image[y:y + k, x:x + k] *= rng.uniform(0.4, 0.55)
        mask[y:y + k, x:x + k] = 3
    image += rng.normal(0, rng.uniform(3, 7), image.shape)
    return finish(image, mask)


def shapes(rng: Rng, h: int, w: int) -> Sample:
    """Objects whose colours are drawn independently of their class; only shape tells."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    t = fbm(rng, h, w, 3, 2)[..., None]
    image = c0 * (1 - t) + c1 * t
    mask = np.zeros((h, w), np.uint8)

    def paint(m: np.ndarray, cls: int) -> None:
        if m.any():
            image[m] = contrasting(rng, image[m].mean(0))
            mask[m] = cls

    def xy(margin: float = 0) -> tuple[float, float]:
        return rng.uniform(-margin, w + margin), rng.uniform(-margin, h + margin)

    def stroke(x: float, y: float, angle: float, length: float, width: int = 1) -> np.ndarray:
        end = (x + length * math.cos(angle), y + length * math.sin(angle))
        return raster(h, w, "line", [(x, y), end], width)

    for _ in range(count(rng, 3, h, w)):  # clutter (background): triangles
        (x, y), r = xy(), rng.uniform(4, 10)
        paint(raster(h, w, "polygon", ellipse(x, y, r, r, rng.uniform(0, 7), n=3)), 0)
    for _ in range(count(rng, 2, h, w)):  # clutter (background): thick short strokes
        (x, y), a, n = xy(), rng.uniform(0, 7), rng.uniform(6, 16)
        paint(stroke(x, y, a, n, int(rng.integers(3, 5))), 0)
    for _ in range(int(rng.integers(1, 3))):  # disk
        (x, y), r = xy(), rng.uniform(0.07, 0.12) * min(h, w)
        paint(raster(h, w, "polygon", ellipse(x, y, r, r, 0, n=32)), 1)
    for _ in range(count(rng, 1.5, h, w)):  # square, axis-aligned
        k, y, x = int(rng.integers(4, 8)), int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        m = np.zeros((h, w), bool)
        m[y:y + k, x:x + k] = True
        paint(m, 2)
    for _ in range(count(rng, 1.2, h, w)):  # wire: 1-px straight line
        (x, y), a, n = xy(), rng.uniform(0, 2 * np.pi), rng.uniform(20, 50)
        paint(stroke(x, y, a, n), 4)
    for _ in range(count(rng, 1.5, h, w)):  # cross: 5x5 plus
        y, x = int(rng.integers(2, h - 2)), int(rng.integers(2, w - 2))
        m = np.zeros((h, w), bool)
        m[y - 2:y + 3, x] = m[y, x - 2:x + 3] = True
        paint(m, 3)
    image += rng.normal(0, 4, image.shape)
    return finish(image, mask)


def voclike(rng: Rng, h: int, w: int) -> Sample:
    """Objects on a noisy background with VOC-style void (255) bands on their boundaries."""
    c0, c1 = (hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.25, 0.9)) for _ in "ab")
    t = fbm(rng, h, w, 4, 3)[..., None]
    image = c0 * (1 - t) + c1 * t
    mask = np.zeros((h, w), np.uint8)
    band = np.zeros((h, w), bool)
    tex = 0.8 + 0.35 * fbm(rng, h, w, 3, 3)  # object shading

    def obj(m: np.ndarray, cls: int) -> None:
        """Paint shape m as class cls, textured; band: 1 px inside + 1-2 px outside."""
        if not m.any():
            return
        image[m] = contrasting(rng, image[m].mean(0), 80) * tex[m][:, None]
        mask[m] = cls
        band[m & ~erode(m)] = True
        band[dilate(m, rng.choice([1.0, 2.0])) & ~m] = True

    def outline(x: float, y: float, r: float, poly_scale: float, min_aspect: float) -> Points:
        """A star polygon (radius r x poly_scale) or a rotated ellipse, half of the time each."""
        return (polygon(rng, x, y, r * poly_scale) if rng.random() < 0.5 else
                ellipse(x, y, r, r * rng.uniform(min_aspect, 1), rng.uniform(0, np.pi)))

    s = min(h, w)
    for _ in range(int(rng.integers(1, 4))):  # object: polygon or rotated ellipse
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.12, 0.25) * s
        obj(raster(h, w, "polygon", outline(x, y, r, 1, 0.4)), 1)
    for _ in range(count(rng, 1.5, h, w)):  # small object
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 5)
        obj(raster(h, w, "polygon", outline(x, y, r, 1.2, 0.6)), 2)
    specks = np.zeros((h, w), bool)
    for _ in range(count(rng, 2.2, h, w)):  # speck: 2x2, 1-px void ring outside
        y, x = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        m = np.zeros((h, w), bool)
        m[y:y + 2, x:x + 2] = True
        image[m] = contrasting(rng, image[m].mean(0), 120)
        specks |= m
    band |= dilate(specks, 1.0) & ~specks
    image += rng.normal(0, rng.uniform(8, 18), image.shape)
    mask[band] = IGNORE
    mask[specks] = 3
    if rng.random() < 0.25:  # padding frame, all void
        f = int(rng.integers(3, 9))
        frame = np.ones((h, w), bool)
        frame[f:h - f, f:w - f] = False
        image[frame], mask[frame] = rng.uniform(0, 255), IGNORE
    return finish(image, mask)
