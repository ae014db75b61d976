"""Write three imbalanced segmentation datasets as ``dataset=folder`` trees (held-out evidence).

They differ from the embedded ``dataset=synthetic`` (hue-coded objects on a blended two-colour
background) in what makes the rare classes hard:

* ``cracks``: grey concrete-like fBm texture with grain; classes background, stain (an
  irregular tinted blob, a few %), crack (1-2 px random-walk curves only ~25 % darker than the
  texture, < 1 %), pit (2x2 / 3x3 dark specks, ~0.1 %).
* ``shapes``: every object (clutter included) gets its own random colour, so colour says
  nothing about the class; only shape does. Classes background (with triangle and thick-stroke
  clutter), disk (several %), square (4-7 px, ~0.5 %), cross (5x5 plus, ~0.15 %), wire (1-px
  straight lines, ~0.5 %).
* ``voclike``: Pascal-VOC-like void borders: a 2-3 px ignore (255) band centred on every
  object boundary (a 1-px ring outside specks), some images with an ignore frame of padding;
  classes background (noisy fBm), object (large polygons / ellipses), small (3-5 px radius,
  ~0.5 %), speck (2x2, ~0.1 %).
* ``cracks_soft`` / ``voclike_soft``: the same scenes (same classes, same ids) plus one *soft*
  class of medium frequency (2-8 % of the pixels) appended as the last id: ``smudge`` on
  ``cracks`` (a faint brownish darkening of the texture, 3.5-7 %), ``haze`` on ``voclike`` (a
  veil of 22-35 % opacity towards a lighter colour). Both fade in over 6-9 px (a blurred irregular
  blob, label = opacity >= 1/2), are mottled, and cover the other classes' pixels without
  relabelling them: a low-contrast tint over the texture that plain CE learns only in part.

Thin / tiny structures have sizes in pixels and counts proportional to the image area, so
their pixel shares barely depend on ``--size``. Sample ``i`` of a split depends only on
``(seed, set, split, i, size)``. Layout of ``<out>/<set>/``::

    images/<stem>.png    RGB uint8 (H, W, 3)
    masks/<stem>.png     uint8 (H, W) class ids, 255 = ignore
    splits/train.txt, splits/val.txt    stems, one per line
    overrides.txt        the Hydra overrides to train on it, one per line
    README.txt           the classes, their training pixel shares and the train command

Run::

    python scripts/make_heldout_sets.py --out /tmp/heldout [--sets cracks,shapes,voclike]
        [--seed 0] [--size 96] [--train 200] [--val 60] [--check]
"""

from __future__ import annotations

import argparse
import colorsys
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IGNORE = 255
SET_NAMES = ("cracks", "shapes", "voclike", "cracks_soft", "voclike_soft")  # position = stream id
Rng = np.random.Generator
Sample = tuple[np.ndarray, np.ndarray]  # image (H, W, 3) uint8 RGB, mask (H, W) uint8
Points = list[tuple[float, float]]  # (x, y) vertices, PIL order


# ----------------------------------------------------------------------------- primitives
def _noise(rng: Rng, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise: a random (cells+1)^2 grid resized bicubically -> (h, w) float32 ~[0, 1]."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC))


def _fbm(rng: Rng, h: int, w: int, octaves: int = 4, cells: int = 2) -> np.ndarray:
    """Fractal (multi-octave) value noise, (h, w) float32 rescaled to [0, 1]."""
    out = sum(0.5**o * _noise(rng, h, w, cells * 2**o) for o in range(octaves))
    return (out - out.min()) / (np.ptp(out) + 1e-6)


def _raster(h: int, w: int, kind: str, xy: Points, width: int = 1) -> np.ndarray:
    """(h, w) bool of a PIL-drawn ``polygon`` or ``line`` (polyline of ``width`` px) at xy."""
    im = Image.new("1", (w, h))
    draw = ImageDraw.Draw(im)
    if kind == "line":
        draw.line(xy, fill=1, width=width, joint="curve")
    else:
        draw.polygon(xy, fill=1)
    return np.asarray(im, dtype=bool)


def _ellipse(cx: float, cy: float, a: float, b: float, angle: float, jitter: float = 0.0,
             rng: Rng | None = None, n: int = 24) -> Points:
    """Vertices of a rotated ellipse (semi-axes a, b px), radii optionally jittered by up to
    ``jitter`` (fraction) for an irregular outline."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1 - jitter * rng.random(n) if rng is not None and jitter else np.ones(n)
    u, v = a * r * np.cos(t), b * r * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return list(zip((cx + c * u - s * v).tolist(), (cy + s * u + c * v).tolist(), strict=True))


def _polygon(rng: Rng, cx: float, cy: float, r: float) -> Points:
    """Star-shaped polygon with 5-8 vertices at radius 0.6-1 x r around (cx, cy)."""
    k = int(rng.integers(5, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(0.6, 1.0, k)
    return list(zip((cx + rad * np.cos(t)).tolist(), (cy + rad * np.sin(t)).tolist(), strict=True))


def _dilate(m: np.ndarray, r: float) -> np.ndarray:
    """Binary dilation of (H, W) bool by a disc of radius r px (outside the image: False)."""
    k, (h, w) = int(r), m.shape
    p, out = np.pad(m, k), np.zeros_like(m)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            if dy * dy + dx * dx <= r * r:
                out |= p[k + dy:k + dy + h, k + dx:k + dx + w]
    return out


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] -> RGB (3,) float32 in [0, 255]."""
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _contrasting(rng: Rng, ref: np.ndarray, min_dist: float = 90.0) -> np.ndarray:
    """Uniform random RGB (3,) float32 at least ``min_dist`` (Euclidean) from ``ref`` (3,)."""
    for _ in range(50):
        c = rng.uniform(0, 255, 3).astype(np.float32)
        if np.linalg.norm(c - ref) >= min_dist:
            break
    return c


def _count(rng: Rng, per_96: float, h: int, w: int) -> int:
    """Poisson count with mean ``per_96`` per 96 x 96 px of image area."""
    return int(rng.poisson(per_96 * h * w / 96**2))


def _finish(image: np.ndarray, mask: np.ndarray) -> Sample:
    """float image (H, W, 3) -> clipped uint8; mask (H, W) -> uint8."""
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


# ----------------------------------------------------------------------------- the sets
def cracks(rng: Rng, h: int, w: int) -> Sample:
    """Concrete-like texture; stain blob, thin low-contrast cracks, tiny dark pits."""
    base = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.15), rng.uniform(0.5, 0.8))
    tex = 0.75 + 0.4 * _fbm(rng, h, w, 5, 2) + 0.12 * (_fbm(rng, h, w, 2, 12) - 0.5)
    image = base * tex[..., None]
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.8:  # stain: irregular tinted, mottled blob
        r = rng.uniform(0.1, 0.2) * min(h, w)
        m = _raster(h, w, "polygon", _ellipse(rng.uniform(0, w), rng.uniform(0, h), r,
                                              r * rng.uniform(0.5, 1), rng.uniform(0, np.pi),
                                              0.35, rng, 16))
        tint = np.asarray([0.78, 0.7, 0.55], np.float32) * rng.uniform(0.85, 1.05)
        shade = 1 + 0.15 * (_fbm(rng, h, w, 3, 4) - 0.5)
        image[m] *= tint * shade[m][:, None]
        mask[m] = 1
    for _ in range(_count(rng, 1.0, h, w)):  # crack: random walk, 2 px steps
        n = int(rng.uniform(12, 28))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, n))
        pts = np.cumsum(2.0 * np.stack([np.cos(heading), np.sin(heading)], 1), 0)
        pts += [rng.uniform(0, w), rng.uniform(0, h)]
        m = _raster(h, w, "line", [tuple(p) for p in pts.tolist()], 1 if rng.random() < 0.7 else 2)
        image[m] *= rng.uniform(0.68, 0.8)
        mask[m] = 2
    for _ in range(_count(rng, 1.5, h, w)):  # pit: 2x2 or 3x3 dark speck
        k, y, x = int(rng.integers(2, 4)), int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
        image[y:y + k, x:x + k] *= rng.uniform(0.4, 0.55)
        mask[y:y + k, x:x + k] = 3
    image += rng.normal(0, rng.uniform(3, 7), image.shape)
    return _finish(image, mask)


def shapes(rng: Rng, h: int, w: int) -> Sample:
    """Objects whose colours are drawn independently of their class; only shape tells."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    t = _fbm(rng, h, w, 3, 2)[..., None]
    image = c0 * (1 - t) + c1 * t
    mask = np.zeros((h, w), np.uint8)

    def paint(m: np.ndarray, cls: int) -> None:
        if m.any():
            image[m] = _contrasting(rng, image[m].mean(0))
            mask[m] = cls

    def xy(margin: float = 0) -> tuple[float, float]:
        return rng.uniform(-margin, w + margin), rng.uniform(-margin, h + margin)

    for _ in range(_count(rng, 3, h, w)):  # clutter (background): triangles
        (x, y), r = xy(), rng.uniform(4, 10)
        paint(_raster(h, w, "polygon", _ellipse(x, y, r, r, rng.uniform(0, 7), n=3)), 0)
    for _ in range(_count(rng, 2, h, w)):  # clutter (background): thick short strokes
        (x, y), a, n = xy(), rng.uniform(0, 7), rng.uniform(6, 16)
        m = _raster(h, w, "line", [(x, y), (x + n * math.cos(a), y + n * math.sin(a))],
                    int(rng.integers(3, 5)))
        paint(m, 0)
    for _ in range(int(rng.integers(1, 3))):  # disk
        (x, y), r = xy(), rng.uniform(0.07, 0.12) * min(h, w)
        paint(_raster(h, w, "polygon", _ellipse(x, y, r, r, 0, n=32)), 1)
    for _ in range(_count(rng, 1.5, h, w)):  # square, axis-aligned
        k, y, x = int(rng.integers(4, 8)), int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        m = np.zeros((h, w), bool)
        m[y:y + k, x:x + k] = True
        paint(m, 2)
    for _ in range(_count(rng, 1.2, h, w)):  # wire: 1-px straight line
        (x, y), a, n = xy(), rng.uniform(0, 2 * np.pi), rng.uniform(20, 50)
        paint(_raster(h, w, "line", [(x, y), (x + n * math.cos(a), y + n * math.sin(a))]), 4)
    for _ in range(_count(rng, 1.5, h, w)):  # cross: 5x5 plus
        y, x = int(rng.integers(2, h - 2)), int(rng.integers(2, w - 2))
        m = np.zeros((h, w), bool)
        m[y - 2:y + 3, x] = m[y, x - 2:x + 3] = True
        paint(m, 3)
    image += rng.normal(0, 4, image.shape)
    return _finish(image, mask)


def voclike(rng: Rng, h: int, w: int) -> Sample:
    """Objects on a noisy background with VOC-style void (255) bands on their boundaries."""
    c0, c1 = (_hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.25, 0.9)) for _ in "ab")
    t = _fbm(rng, h, w, 4, 3)[..., None]
    image = c0 * (1 - t) + c1 * t
    mask = np.zeros((h, w), np.uint8)
    band = np.zeros((h, w), bool)
    tex = 0.8 + 0.35 * _fbm(rng, h, w, 3, 3)  # object shading

    def obj(m: np.ndarray, cls: int) -> None:
        """Paint shape m as class cls, textured; band: 1 px inside + 1-2 px outside."""
        if not m.any():
            return
        image[m] = _contrasting(rng, image[m].mean(0), 80) * tex[m][:, None]
        mask[m] = cls
        band[m & ~_erode(m)] = True
        band[_dilate(m, rng.choice([1.0, 2.0])) & ~m] = True

    s = min(h, w)
    for _ in range(int(rng.integers(1, 4))):  # object: polygon or rotated ellipse
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.12, 0.25) * s
        pts = (_polygon(rng, x, y, r) if rng.random() < 0.5 else
               _ellipse(x, y, r, r * rng.uniform(0.4, 1), rng.uniform(0, np.pi)))
        obj(_raster(h, w, "polygon", pts), 1)
    for _ in range(_count(rng, 1.5, h, w)):  # small object
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 5)
        pts = (_polygon(rng, x, y, r * 1.2) if rng.random() < 0.5 else
               _ellipse(x, y, r, r * rng.uniform(0.6, 1), rng.uniform(0, np.pi)))
        obj(_raster(h, w, "polygon", pts), 2)
    specks = np.zeros((h, w), bool)
    for _ in range(_count(rng, 2.2, h, w)):  # speck: 2x2, 1-px void ring outside
        y, x = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        m = np.zeros((h, w), bool)
        m[y:y + 2, x:x + 2] = True
        image[m] = _contrasting(rng, image[m].mean(0), 120)
        specks |= m
    band |= _dilate(specks, 1.0) & ~specks
    image += rng.normal(0, rng.uniform(8, 18), image.shape)
    mask[band] = IGNORE
    mask[specks] = 3
    if rng.random() < 0.25:  # padding frame, all void
        f = int(rng.integers(3, 9))
        frame = np.ones((h, w), bool)
        frame[f:h - f, f:w - f] = False
        image[frame], mask[frame] = rng.uniform(0, 255), IGNORE
    return _finish(image, mask)


SOFT_BLUR = (2.5, 3.5)
"""Gaussian sigma (px) of the soft blobs' edge: 10-90 % fade over 2.56 sigma."""
SMUDGE_DARKEN = (0.035, 0.07)
"""``cracks_soft``: the smudge's darkening (fraction of the texture's brightness)."""
HAZE_OPACITY = (0.22, 0.35)
"""``voclike_soft``: the haze's opacity (its colour is 40-70 above the image's mean)."""


def _soft_blobs(rng: Rng, h: int, w: int, p_present: float = 0.85) -> np.ndarray:
    """Opacity (h, w) float32 in [0, 1] of 0-2 soft blobs: irregular ellipses of radius
    0.11-0.19 x min(h, w), Gaussian-blurred (sigma :data:`SOFT_BLUR` px)."""
    shape = np.zeros((h, w), np.float32)
    if rng.random() < p_present:
        for _ in range(1 if rng.random() < 0.6 else 2):
            r = rng.uniform(0.11, 0.19) * min(h, w)
            shape += _raster(h, w, "polygon", _ellipse(
                rng.uniform(0, w), rng.uniform(0, h), r, r * rng.uniform(0.5, 1),
                rng.uniform(0, np.pi), 0.3, rng, 16))
    im = Image.fromarray((255 * np.minimum(shape, 1)).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(rng.uniform(*SOFT_BLUR))),
                      np.float32) / 255


def _add_soft(sample: Sample, alpha: np.ndarray, opacity: np.ndarray, veil: np.ndarray,
              cls: int) -> Sample:
    """Blend ``veil`` (H, W, 3) or (3,) float over the image with ``opacity`` (H, W) and label
    the background pixels (id 0) where the blob's ``alpha`` (H, W) >= 0.5 as ``cls``; other
    classes keep their ids under the veil."""
    image, mask = sample[0].astype(np.float32), sample[1].copy()
    a = opacity[..., None]
    image = image * (1 - a) + veil * a
    mask[(alpha >= 0.5) & (mask == 0)] = cls
    return _finish(image, mask)


def _mottled(rng: Rng, h: int, w: int, lo: float, hi: float) -> np.ndarray:
    """(h, w) float32 strength: one uniform draw in [lo, hi] x (1 +- 0.3 fBm mottling)."""
    return rng.uniform(lo, hi) * (1 + 0.6 * (_fbm(rng, h, w, 3, 3) - 0.5))


def cracks_soft(rng: Rng, h: int, w: int) -> Sample:
    """``cracks`` plus a soft smudge: a faint (:data:`SMUDGE_DARKEN`) brownish, mottled
    darkening of the texture with a blurred edge (class 4)."""
    image, mask = cracks(rng, h, w)
    alpha = _soft_blobs(rng, h, w)
    tint = np.asarray([0.8, 1.0, 1.25], np.float32)  # darkens blue most: brownish
    dark = image.astype(np.float32) * (1 - _mottled(rng, h, w, *SMUDGE_DARKEN)[..., None] * tint)
    return _add_soft((image, mask), alpha, alpha, dark, 4)


def voclike_soft(rng: Rng, h: int, w: int) -> Sample:
    """``voclike`` plus a soft haze: a veil (opacity :data:`HAZE_OPACITY`, mottled) towards a
    colour lighter than the image's mean, with a blurred edge (class 4); no void band."""
    image, mask = voclike(rng, h, w)
    alpha = _soft_blobs(rng, h, w)
    fog = np.clip(image.reshape(-1, 3).mean(0) + rng.uniform(40, 70), 0, 255)
    return _add_soft((image, mask), alpha, alpha * _mottled(rng, h, w, *HAZE_OPACITY), fog, 4)


def _erode(m: np.ndarray) -> np.ndarray:
    """Binary erosion of (H, W) bool by the 4-neighbourhood (outside the image: True)."""
    return ~_dilate(~m, 1.0)


@dataclass(frozen=True)
class HeldoutSet:
    """A generator ``draw(rng, h, w) -> (image (h, w, 3) uint8, mask (h, w) uint8)``, its
    class names (mask value = index), the intended share range of each rare class (fixed
    before measuring: the classes of the rare-class mean) and of each soft medium class."""

    draw: Callable[[Rng, int, int], Sample]
    classes: tuple[str, ...]
    rare: dict[str, tuple[float, float]]
    soft: dict[str, tuple[float, float]] = field(default_factory=dict)


SETS = {
    "cracks": HeldoutSet(cracks, ("background", "stain", "crack", "pit"),
                         {"crack": (0.002, 0.01), "pit": (0.0003, 0.003)}),
    "shapes": HeldoutSet(shapes, ("background", "disk", "square", "cross", "wire"),
                         {"square": (0.002, 0.01), "cross": (0.0005, 0.003),
                          "wire": (0.002, 0.01)}),
    "voclike": HeldoutSet(voclike, ("background", "object", "small", "speck"),
                          {"small": (0.002, 0.01), "speck": (0.0003, 0.003)}),
}
SETS["cracks_soft"] = HeldoutSet(cracks_soft, (*SETS["cracks"].classes, "smudge"),
                                 SETS["cracks"].rare, {"smudge": (0.02, 0.08)})
SETS["voclike_soft"] = HeldoutSet(voclike_soft, (*SETS["voclike"].classes, "haze"),
                                  SETS["voclike"].rare, {"haze": (0.02, 0.08)})


def overrides(root: Path, spec: HeldoutSet) -> list[str]:
    """Hydra overrides training ``dataset=folder`` on the set at ``root`` (unquoted; crop and
    random scale are left to ``dataset=folder``'s ``auto``: a full-image crop, no rescale)."""
    return ["dataset=folder", f"dataset.root={root.resolve()}",
            f"dataset.num_classes={len(spec.classes)}",
            f"dataset.class_names=[{','.join(spec.classes)}]"]


def write_set(out: Path, name: str, seed: int = 0, size: int = 96, n_train: int = 200,
              n_val: int = 60) -> np.ndarray:
    """Write set ``name`` under ``out/name``; return its train split's pixel share per class
    over valid (non-255) pixels, (C,) float64."""
    spec, root = SETS[name], out / name
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    counts = np.zeros(256, np.int64)
    for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        stems = [f"{split}_{i:04d}" for i in range(n)]
        for i, stem in enumerate(stems):
            rng = np.random.default_rng([seed, SET_NAMES.index(name), split_id, i])
            image, mask = spec.draw(rng, size, size)
            Image.fromarray(image).save(root / "images" / f"{stem}.png")
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
            if split == "train":
                counts += np.bincount(mask.ravel(), minlength=256)
        (root / "splits" / f"{split}.txt").write_text("".join(s + "\n" for s in stems))
    shares = counts[:len(spec.classes)] / max(counts[:len(spec.classes)].sum(), 1)
    ovr = overrides(root, spec)
    (root / "overrides.txt").write_text("\n".join(ovr) + "\n")
    table = "\n".join(f"  {c:<12}{100 * p:7.3f} %" for c, p in zip(spec.classes, shares,
                                                                     strict=True))
    (root / "README.txt").write_text(
        f"{name}: {(spec.draw.__doc__ or '').strip()}\nseed {seed}, {size}x{size}, "
        f"{n_train} train / {n_val} val images. Train-split share of valid pixels "
        f"(mask 255 = ignore excluded):\n{table}\n\nTrain on it:\n  segohem-train "
        + " ".join(f"'{o}'" if "[" in o else o for o in ovr) + "\n")
    return shares


def main(argv: list[str] | None = None) -> int:
    """CLI: write the sets, print their shares; with --check, 1 if a rare share is off range."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", default=",".join(SET_NAMES), help="comma-separated subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=96, help="image side in px (>= 32)")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--val", type=int, default=60)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a rare class's train share is outside its intended range")
    args = ap.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    if unknown := sorted(set(names) - set(SETS)):
        ap.error(f"unknown sets {unknown}; choose from {list(SETS)}")
    if args.size < 32 or args.train < 1 or args.val < 1:
        ap.error("need --size >= 32, --train >= 1, --val >= 1")
    bad = []
    for name in names:
        start = time.perf_counter()
        shares = write_set(args.out, name, args.seed, args.size, args.train, args.val)
        spec = SETS[name]
        print(f"{name}: {args.out / name} ({time.perf_counter() - start:.1f} s); "
              f"train share of valid pixels:")
        for cls, p in zip(spec.classes, shares, strict=True):
            lo, hi = {**spec.rare, **spec.soft}.get(cls, (0.0, 1.0))
            off = not lo <= p <= hi
            if off:
                bad.append(f"{name}/{cls}: {100 * p:.3f} % not in [{100 * lo:g}, {100 * hi:g}] %")
            kind = "rare" if cls in spec.rare else "soft" if cls in spec.soft else ""
            note = f"  {kind}, intended {100 * lo:g}-{100 * hi:g} %" if kind else ""
            print(f"  {cls:<12}{100 * p:7.3f} %{note}{'  OUT OF RANGE' if off else ''}")
        print("  train with: segohem-train " + " ".join(
            f"'{o}'" if "[" in o else o for o in overrides(args.out / name, spec)))
    if args.check and bad:
        print("check failed:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
