"""Drawing helpers of the generated datasets: the embedded ``dataset=synthetic``
(:mod:`segohem.data.datasets.synthetic`) and the held-out sets (:mod:`segohem.data.heldout`).

Colours are RGB float32 in [0, 255] until :func:`to_uint8`; masks are (H, W) bool; points are
``(x, y)`` in pixels (PIL order). Every random draw comes from the caller's generator, in a fixed
order, so a sample depends only on the generator's seed.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

Rng = np.random.Generator
Points = list[tuple[float, float]]  # (x, y) vertices, PIL order


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] (hue wraps around) -> RGB float32 array (3,) in [0, 255]."""
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image (H, W, 3) in ~[0, 255] -> uint8, clipped to [0, 255] (not rounded)."""
    return np.clip(image, 0, 255).astype(np.uint8)


def noise(rng: Rng, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise: a random (cells+1)^2 grid resized bicubically -> (h, w) float32 ~[0, 1]."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC))


def fbm(rng: Rng, h: int, w: int, octaves: int = 4, cells: int = 2) -> np.ndarray:
    """Fractal (multi-octave) value noise, (h, w) float32 rescaled to [0, 1]."""
    out = sum(0.5**o * noise(rng, h, w, cells * 2**o) for o in range(octaves))
    return (out - out.min()) / (np.ptp(out) + 1e-6)


def raster(h: int, w: int, kind: str, xy: Points, width: int = 1) -> np.ndarray:
    """(h, w) bool of a PIL-drawn ``polygon`` or ``line`` (polyline of ``width`` px) at xy."""
    im = Image.new("1", (w, h))
    draw = ImageDraw.Draw(im)
    if kind == "line":
        draw.line(xy, fill=1, width=width, joint="curve")
    else:
        draw.polygon(xy, fill=1)
    return np.asarray(im, dtype=bool)


def ellipse(cx: float, cy: float, a: float, b: float, angle: float, jitter: float = 0.0,
            rng: Rng | None = None, n: int = 24) -> Points:
    """Vertices of a rotated ellipse (semi-axes a, b px), radii optionally jittered by up to
    ``jitter`` (fraction) for an irregular outline."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1 - jitter * rng.random(n) if rng is not None and jitter else np.ones(n)
    u, v = a * r * np.cos(t), b * r * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return list(zip((cx + c * u - s * v).tolist(), (cy + s * u + c * v).tolist(), strict=True))


def polygon(rng: Rng, cx: float, cy: float, r: float) -> Points:
    """Star-shaped polygon with 5-8 vertices at radius 0.6-1 x r around (cx, cy)."""
    k = int(rng.integers(5, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(0.6, 1.0, k)
    return list(zip((cx + rad * np.cos(t)).tolist(), (cy + rad * np.sin(t)).tolist(), strict=True))


def dilate(m: np.ndarray, r: float) -> np.ndarray:
    """Binary dilation of (H, W) bool by a disc of radius r px (outside the image: False)."""
    k, (h, w) = int(r), m.shape
    p, out = np.pad(m, k), np.zeros_like(m)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            if dy * dy + dx * dx <= r * r:
                out |= p[k + dy:k + dy + h, k + dx:k + dx + w]
    return out


def erode(m: np.ndarray) -> np.ndarray:
    """Binary erosion of (H, W) bool by the 4-neighbourhood (outside the image: True)."""
    return ~dilate(~m, 1.0)


def contrasting(rng: Rng, ref: np.ndarray, min_dist: float = 90.0) -> np.ndarray:
    """Uniform random RGB (3,) float32 at least ``min_dist`` (Euclidean) from ``ref`` (3,);
    after 50 draws, the last one."""
    for _ in range(50):
        c = rng.uniform(0, 255, 3).astype(np.float32)
        if np.linalg.norm(c - ref) >= min_dist:
            break
    return c


def count(rng: Rng, per_96: float, h: int, w: int) -> int:
    """Poisson count with mean ``per_96`` per 96 x 96 px of image area."""
    return int(rng.poisson(per_96 * h * w / 96**2))
