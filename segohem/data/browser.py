"""A PNG grid of what the training pipeline feeds the model, to check a dataset by eye.

The ``train`` config is composed with Hydra overrides (as ``segohem-train`` composes it) and
the split's dataset node is built: ``dataset.train_set`` with the train transform (``auto``
geometry resolved first, as in training), or ``dataset.val_set`` with the val transform, or
the decoded files without a transform. The first ``num`` samples (``seed``: random ones, and
the augmentations seeded) become one row each::

    image (un-normalised) | mask in the dataset's palette | mask over the image at 50 %

Ignored pixels (255) are white in the mask column and leave the image visible in the overlay.
Tiles are padded to the largest one and laid out with ``torchvision.utils.make_grid``; tiles
longer than ``max_side`` are scaled down (masks with nearest neighbour). A legend below lists
the colours of the classes present. Printed per sample: the file, the classes present with
their share of the valid pixels, the ignored share and any value that is neither. Printed
first (unless ``--no-stats``): the class statistics table of the training and validation splits
with its warnings, as ``segohem-train`` logs it at start-up (:mod:`segohem.data.class_stats`,
cached).

Command line: ``python scripts/browse_dataset.py [overrides...] [--split train|val] [--num N]
[--seed S] [--no-transform] [--max-side PX] [--no-legend] [--no-stats] --out grid.png``.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from segohem.config.compose import compose_config
from segohem.data import build_dataset
from segohem.data.class_stats import split_statistics, stats_table, stats_warnings
from segohem.data.geometry import resolve_auto_geometry
from segohem.train.checkpoint import find_normalize
from segohem.viz import (
    LEGEND_BACKGROUND,
    LEGEND_PAD,
    colorize,
    legend,
    legend_entries,
    overlay,
    resolve_palette,
    to_display,
)

PAD = LEGEND_PAD
"""Pixels between the tiles and around the grid."""
BACKGROUND = LEGEND_BACKGROUND
"""Grey level of the grid's background and of the padding of smaller tiles."""
MAX_LISTED = 12
"""Classes named per sample in the printout."""


def image_tile(image: Any, normalize: Any | None) -> torch.Tensor:
    """A sample's image (uint8 HWC array, or a normalised float CHW tensor) -> uint8
    ``(3, H, W)``: the standard ``normalize`` undone, other float images min-max scaled."""
    tile = torch.as_tensor(np.array(image)) if not isinstance(image, torch.Tensor) else image
    if tile.dtype == torch.uint8:  # (H, W[, C]) as decoded
        return (tile[..., None] if tile.ndim == 2 else tile)[..., :3].permute(2, 0, 1).expand(
            3, -1, -1).contiguous()
    tile = tile.detach().cpu().float()[:3]
    if normalize is not None and getattr(normalize, "normalization", "standard") == "standard":
        scale = float(getattr(normalize, "max_pixel_value", 255.0) or 1.0)
        mean, std = (torch.tensor(v, dtype=torch.float32)[:, None, None] * scale
                     for v in (normalize.mean, normalize.std))
        return (tile * std + mean).clamp(0, 255).round().to(torch.uint8)
    return (to_display(tile[None])[0] * 255).round().to(torch.uint8)


def describe(mask: np.ndarray, classes: Sequence[str], ignore: int) -> str:
    """'road 41.2%, car 9.0%, ...; ignore 5.1%' (shares of the valid / all pixels): the
    :data:`MAX_LISTED` largest classes, then unexpected values if any."""
    values, counts = np.unique(mask, return_counts=True)
    valid = int(counts[values != ignore].sum())
    known = sorted(((int(c), int(v)) for v, c in zip(values, counts, strict=True)
                    if 0 <= v < len(classes)), reverse=True)
    parts = [f"{classes[v]} {100 * c / valid:.1f}%" for c, v in known[:MAX_LISTED]]
    if len(known) > MAX_LISTED:
        parts.append(f"+{len(known) - MAX_LISTED} more classes")
    text = (", ".join(parts) or "no labelled pixels") + (
        f"; ignore {100 * counts[values == ignore].sum() / mask.size:.1f}%")
    if odd := [int(v) for v in values if not (0 <= v < len(classes) or v == ignore)]:
        text += f"; UNEXPECTED values {odd} (neither a class id nor {ignore})"
    return text


def print_statistics(cfg: Any) -> str:
    """Print (and return) the class statistics table of ``cfg.dataset``'s training and
    validation sets (built without transforms) with its warnings."""
    train_set = build_dataset(cfg.dataset.train_set, transform=None)
    val_set = build_dataset(cfg.dataset.val_set, transform=None)
    names = list(getattr(train_set, "classes", None) or cfg.dataset.get("class_names") or
                 [str(i) for i in range(int(cfg.dataset.num_classes))])
    ignore = int(getattr(train_set, "ignore_index", cfg.dataset.get("ignore_index", 255)))
    train, val = split_statistics(train_set, val_set, len(names), ignore)
    text = "\n".join(["Class statistics (share of the labelled pixels; images that contain "
                      "the class):", stats_table(names, train, val),
                      *(f"WARNING: {line}" for line in stats_warnings(names, train, val))])
    print(text, flush=True)
    return text


def browse(overrides: Sequence[str], out: Path, split: str = "train", num: int = 8,
           transform: bool = True, seed: int | None = None, max_side: int = 512,
           with_legend: bool = True, stats: bool = True) -> tuple[torch.Tensor, list[str]]:
    """Write the grid to ``out``; returns it (``(3, H, W)`` uint8) and the per-sample lines.
    With ``stats`` print the class statistics table first (:func:`print_statistics`)."""
    cfg = compose_config("train", overrides)
    if stats:
        print_statistics(cfg)
    if split == "train" and transform and (geometry := resolve_auto_geometry(cfg.dataset)):
        print(geometry.describe(), flush=True)
    node = cfg.dataset.train_set if split == "train" else cfg.dataset.val_set
    dataset = build_dataset(node) if transform else build_dataset(node, transform=None)
    classes = list(getattr(dataset, "classes", None) or cfg.dataset.get("class_names") or
                   [str(i) for i in range(int(cfg.dataset.num_classes))])
    ignore = int(getattr(dataset, "ignore_index", cfg.dataset.get("ignore_index", 255)))
    palette = resolve_palette(getattr(dataset, "palette", None), len(classes))
    normalize = find_normalize(getattr(dataset, "transform", None))
    indices = (list(range(min(num, len(dataset)))) if seed is None else
               random.Random(seed).sample(range(len(dataset)), min(num, len(dataset))))
    if seed is not None and hasattr(dataset.transform, "set_random_seed"):
        dataset.transform.set_random_seed(seed)

    tiles, lines, present = [], [], set()
    for i in indices:
        item = dataset[i]
        image, mask = image_tile(item["image"], normalize), torch.as_tensor(item["mask"]).long()
        lines.append(f"[{i}] {item.get('path', '?')} ({mask.shape[1]}x{mask.shape[0]}): "
                     f"{describe(mask.numpy(), classes, ignore)}")
        if (scale := max_side / max(mask.shape)) < 1:
            size = [max(1, round(s * scale)) for s in mask.shape]
            image = F.interpolate(image[None].float(), size, mode="area")[0].round().byte()
            mask = F.interpolate(mask[None, None].float(), size, mode="nearest")[0, 0].long()
        coloured = (colorize(mask[None], palette, ignore)[0] * 255).round().byte()
        tiles += [image, coloured, overlay(image, mask, palette, 0.5, ignore)]
        present.update(mask.unique().tolist())
    height, width = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    tiles = [F.pad(t, (0, width - t.shape[2], 0, height - t.shape[1]), value=BACKGROUND)
             for t in tiles]
    grid = make_grid(tiles, nrow=3, padding=PAD, pad_value=BACKGROUND)
    entries = legend_entries(classes, palette, ignore, present=sorted(present))
    if with_legend:
        grid = torch.cat([grid, legend(grid.shape[2], entries)], dim=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out)
    name = repr(dataset)
    if " object at 0x" in name:  # no __repr__
        name = f"{type(dataset).__name__}(split={split!r}, {len(dataset)} samples)"
    what = f"{split} transform" if transform else "raw files"
    print(f"wrote {out} ({grid.shape[2]}x{grid.shape[1]}): {len(indices)} samples of {name} "
          f"[{what}]; columns: image | mask | overlay 50%; ignore ({ignore}) white")
    print("\n".join(lines))
    return grid, lines


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description="Write a PNG grid (image | mask | overlay per sample) of a dataset as the "
                    "training pipeline sees it.")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides of the train config, e.g. dataset=cityscapes "
                             "dataset.root=/data/cs (default: the embedded synthetic data)")
    parser.add_argument("--split", choices=["train", "val"], default="train",
                        help="train: dataset.train_set + train transform; val: dataset.val_set "
                             "+ val transform")
    parser.add_argument("--num", type=int, default=8, help="samples (rows)")
    parser.add_argument("--out", type=Path, default=Path("dataset_grid.png"),
                        help="PNG file to write")
    parser.add_argument("--no-transform", action="store_true",
                        help="show the decoded files without the transform")
    parser.add_argument("--seed", type=int, default=None,
                        help="pick random samples with this seed (and seed the augmentations); "
                             "default: the first --num samples")
    parser.add_argument("--max-side", type=int, default=512,
                        help="scale tiles down so their longer side is at most this")
    parser.add_argument("--no-legend", action="store_true", help="no class colour legend")
    parser.add_argument("--no-stats", action="store_true",
                        help="skip the class statistics table of the train and val splits")
    args = parser.parse_intermixed_args(argv)
    if args.num < 1 or args.max_side < 8:
        parser.error("--num must be >= 1 and --max-side >= 8")
    browse(args.overrides, args.out, args.split, args.num, not args.no_transform, args.seed,
           args.max_side, not args.no_legend, not args.no_stats)
    return args.out


if __name__ == "__main__":
    main()
