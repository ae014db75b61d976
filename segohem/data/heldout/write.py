"""Write held-out sets as ``dataset=folder`` trees and report their class shares."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from segohem.data.heldout.sets import IMAGE_RARE, MIN_VAL_IMAGES, SET_NAMES, SETS, HeldoutSet

IMAGE_COLUMNS = ", then the share (count) of the train / val images that hold the class"


def overrides(root: Path, spec: HeldoutSet) -> list[str]:
    """Hydra overrides training ``dataset=folder`` on the set at ``root`` (unquoted; crop and
    random scale are left to ``dataset=folder``'s ``auto``: a full-image crop, no rescale)."""
    return ["dataset=folder", f"dataset.root={root.resolve()}",
            f"dataset.num_classes={len(spec.classes)}",
            f"dataset.class_names=[{','.join(spec.classes)}]"]


def train_command(root: Path, spec: HeldoutSet) -> str:
    """The ``segohem-train`` command line for the set at ``root`` (shell-quoted lists)."""
    return "segohem-train " + " ".join(f"'{o}'" if "[" in o else o
                                       for o in overrides(root, spec))


@dataclass(frozen=True)
class Shares:
    """A written set's class statistics: ``pixel`` (C,) float64, the train split's share of
    valid (non-255) pixels per class; ``images`` (2, C) int64, how many train / val images hold
    each class; ``n`` = (train, val) image counts."""

    pixel: np.ndarray
    images: np.ndarray
    n: tuple[int, int]

    def row(self, spec: HeldoutSet, k: int) -> str:
        """Class ``k``'s line: its train pixel share and, for a set with image-rare classes,
        its image share and image count per split."""
        line = f"  {spec.classes[k]:<12}{100 * self.pixel[k]:7.3f} %"
        if spec.image_rare:
            (a, b), (n, m) = self.images[:, k], self.n
            line += f"  {100 * a / n:5.1f} % ({a}/{n}) / {100 * b / m:5.1f} % ({b}/{m})"
        return line


def readme(root: Path, name: str, spec: HeldoutSet, shares: Shares, seed: int,
           size: int) -> str:
    """README.txt of set ``name``: what it is, the class shares and the train command."""
    head = ("Train-split share of valid pixels (mask 255 = ignore excluded)"
            + (f"{IMAGE_COLUMNS};\nthe image-rare classes are placed in a fixed share of each "
               "split's images: "
               + ", ".join(f"{c} {100 * t:g} % / {100 * v:g} %"
                           for c, (t, v) in spec.image_rare.items())
               if spec.image_rare else ""))
    table = "\n".join(shares.row(spec, k) for k in range(len(spec.classes)))
    return (f"{name}: {(spec.draw.__doc__ or '').strip()}\nseed {seed}, {size}x{size}, "
            f"{shares.n[0]} train / {shares.n[1]} val images. {head}:\n{table}\n\nTrain on it:"
            f"\n  {train_command(root, spec)}\n")


def write_set(out: Path, name: str, seed: int = 0, size: int = 96, n_train: int = 200,
              n_val: int = 60) -> Shares:
    """Write set ``name`` under ``out/name``; return its class statistics."""
    spec, root, n_cls = SETS[name], out / name, len(SETS[name].classes)
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    counts = np.zeros(256, np.int64)
    images = np.zeros((2, n_cls), np.int64)
    for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        stems = [f"{split}_{i:04d}" for i in range(n)]
        for i, stem in enumerate(stems):
            image, mask = spec.sample((seed, SET_NAMES.index(name), split_id), i, size)
            Image.fromarray(image).save(root / "images" / f"{stem}.png")
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
            held = np.bincount(mask.ravel(), minlength=256)
            images[split_id] += held[:n_cls] > 0
            if split == "train":
                counts += held
        (root / "splits" / f"{split}.txt").write_text("".join(s + "\n" for s in stems))
    shares = Shares(counts[:n_cls] / max(counts[:n_cls].sum(), 1), images, (n_train, n_val))
    (root / "overrides.txt").write_text("\n".join(overrides(root, spec)) + "\n")
    (root / "README.txt").write_text(readme(root, name, spec, shares, seed, size))
    return shares


def off_range(name: str, spec: HeldoutSet, shares: Shares) -> list[str]:
    """One line per way the set misses its intent: a rare / soft class's train pixel share
    off its range, an image-rare class's train image share off :data:`IMAGE_RARE`, a class in
    fewer than :data:`MIN_VAL_IMAGES` val images."""
    bad = []
    for k, cls in enumerate(spec.classes):
        lo, hi = {**spec.rare, **spec.soft}.get(cls, (0.0, 1.0))
        if not lo <= shares.pixel[k] <= hi:
            bad.append(f"{name}/{cls}: {100 * shares.pixel[k]:.3f} % not in "
                       f"[{100 * lo:g}, {100 * hi:g}] %")
        lo, hi = IMAGE_RARE
        if cls in spec.image_rare and not lo <= shares.images[0, k] / shares.n[0] <= hi:
            bad.append(f"{name}/{cls}: in {shares.images[0, k]} of {shares.n[0]} train images, "
                       f"not {100 * lo:g}-{100 * hi:g} % (use more --train images)")
        if shares.images[1, k] < MIN_VAL_IMAGES:
            bad.append(f"{name}/{cls}: in {shares.images[1, k]} val images, fewer than "
                       f"{MIN_VAL_IMAGES} (raise --val)")
    return bad


def check_options(names: Sequence[str], size: int, n_train: int, n_val: int) -> None:
    """Raise ValueError for an unknown set name, ``size`` < 32 px or a split of < 1 image."""
    if unknown := sorted(set(names) - set(SETS)):
        raise ValueError(f"unknown sets {unknown}; choose from {list(SETS)}")
    if size < 32 or n_train < 1 or n_val < 1:
        raise ValueError("need --size >= 32, --train >= 1, --val >= 1")


def write_sets(out: Path, names: Sequence[str] = SET_NAMES, seed: int = 0, size: int = 96,
               n_train: int = 200, n_val: int = 60) -> list[str]:
    """Write the sets ``names`` under ``out`` and print each one's train shares against the
    intended ranges; return one line per rare / soft class outside its range (empty: all in).

    Raises:
        ValueError: see :func:`check_options`.
    """
    check_options(names, size, n_train, n_val)
    bad = []
    for name in names:
        start = time.perf_counter()
        shares = write_set(out, name, seed, size, n_train, n_val)
        spec = SETS[name]
        bad += off_range(name, spec, shares)
        print(f"{name}: {out / name} ({time.perf_counter() - start:.1f} s); "
              f"train share of valid pixels{IMAGE_COLUMNS if spec.image_rare else ''}:")
        for k, cls in enumerate(spec.classes):
            lo, hi = {**spec.rare, **spec.soft}.get(cls, (0.0, 1.0))
            off = any(line.startswith(f"{name}/{cls}:") for line in bad)
            kind = "rare" if cls in spec.rare else "soft" if cls in spec.soft else ""
            note = f"  {kind}, intended {100 * lo:g}-{100 * hi:g} %" if kind else ""
            if cls in spec.image_rare:
                note += f" of the pixels, in {100 * IMAGE_RARE[0]:g}-{100 * IMAGE_RARE[1]:g} % " \
                        "of the train images"
            print(f"{shares.row(spec, k)}{note}{'  OUT OF RANGE' if off else ''}")
        print(f"  train with: {train_command(out / name, spec)}")
    return bad
