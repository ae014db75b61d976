"""Write held-out sets as ``dataset=folder`` trees and report their class shares."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from segohem.data.heldout.sets import SET_NAMES, SETS, HeldoutSet


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
    (root / "overrides.txt").write_text("\n".join(overrides(root, spec)) + "\n")
    table = "\n".join(f"  {c:<12}{100 * p:7.3f} %" for c, p in zip(spec.classes, shares,
                                                                     strict=True))
    (root / "README.txt").write_text(
        f"{name}: {(spec.draw.__doc__ or '').strip()}\nseed {seed}, {size}x{size}, "
        f"{n_train} train / {n_val} val images. Train-split share of valid pixels "
        f"(mask 255 = ignore excluded):\n{table}\n\nTrain on it:\n  "
        f"{train_command(root, spec)}\n")
    return shares


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
        print(f"{name}: {out / name} ({time.perf_counter() - start:.1f} s); "
              f"train share of valid pixels:")
        for cls, p in zip(spec.classes, shares, strict=True):
            lo, hi = {**spec.rare, **spec.soft}.get(cls, (0.0, 1.0))
            off = not lo <= p <= hi
            if off:
                bad.append(f"{name}/{cls}: {100 * p:.3f} % not in [{100 * lo:g}, {100 * hi:g}] %")
            kind = "rare" if cls in spec.rare else "soft" if cls in spec.soft else ""
            note = f"  {kind}, intended {100 * lo:g}-{100 * hi:g} %" if kind else ""
            print(f"  {cls:<12}{100 * p:7.3f} %{note}{'  OUT OF RANGE' if off else ''}")
        print(f"  train with: {train_command(out / name, spec)}")
    return bad
