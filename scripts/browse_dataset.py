"""Write a PNG grid of what the training pipeline feeds the model, to check a dataset by eye.

What it shows
    The ``train`` config is composed with the given Hydra overrides (as ``segohem-train`` would
    compose it) and the chosen split's dataset node is instantiated: ``dataset.train_set`` with
    the config's train transform for ``--split train``, ``dataset.val_set`` with the val
    transform for ``--split val`` (``--no-transform``: the raw decoded files). The first
    ``--num`` samples (or ``--num`` random ones with ``--seed N``, which also seeds the
    augmentation pipeline) are drawn as one row each:

        image (augmented, un-normalised) | mask in the dataset's palette | mask over the image
                                                                             at 50 %

    Ignored pixels (255) are white, as in the training image logs. Below the rows, a legend
    lists the colours of the classes that occur in the shown masks. Tiles whose longer side is
    over ``--max-side`` are scaled down (masks with nearest neighbour).

    It prints the output path and, per sample, the file path and the classes present (with
    their share of the valid pixels, the ignored share, and any value that is neither a
    class nor the ignore index).

How to run
    python scripts/browse_dataset.py --out /tmp/grid.png          # embedded synthetic data
    python scripts/browse_dataset.py dataset=cityscapes dataset.root=/data/cs \\
        --split train --num 8 --out grid.png
    python scripts/browse_dataset.py dataset=voc dataset.root=/data/VOCdevkit --seed 3
    python scripts/browse_dataset.py dataset=ade20k dataset.root=/data/ADE --no-transform
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_common import compose_config
from omegaconf import DictConfig

from segohem.checkpoint import find_normalize

PAD = 4  # px between tiles and around the grid
BACKGROUND = (28, 40, 56)  # grid background: dark blue-grey (ignored pixels are white)
TEXT = (235, 235, 235)
MAX_LISTED = 12  # classes named per sample in the printout



def build_dataset(cfg: DictConfig, split: str, transform: bool) -> Any:
    """``dataset.train_set`` or ``dataset.val_set``; without its transform if not ``transform``."""
    from segohem.data import build_dataset as build

    if split == "train" and transform:  # dataset.crop_size / scale_range: auto
        from segohem.data.geometry import resolve_auto_geometry

        geometry = resolve_auto_geometry(cfg.dataset)
        if geometry is not None:
            print(geometry.describe(), flush=True)
    node = cfg.dataset.train_set if split == "train" else cfg.dataset.val_set
    return build(node) if transform else build(node, transform=None)


# --------------------------------------------------------------------------------------
# Turning samples into pictures
# --------------------------------------------------------------------------------------


def to_uint8_image(image: Any, normalize: Any | None) -> np.ndarray:
    """A sample's image (uint8 HWC array, or a normalised float CHW tensor / HWC array) ->
    uint8 (H, W, 3) RGB. Undoes ``normalize`` (standard mean / std) when given; other float
    images are min-max scaled (``segohem.viz.to_display``)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.permute(1, 2, 0).numpy() if image.ndim == 3 else image.numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image[..., :3])
    image = image.astype(np.float32)[..., :3]
    if normalize is not None and getattr(normalize, "normalization", "standard") == "standard":
        mpv = float(getattr(normalize, "max_pixel_value", 255.0) or 1.0)
        mean = np.asarray(normalize.mean, np.float32) * mpv
        std = np.asarray(normalize.std, np.float32) * mpv
        return np.clip(image * std + mean, 0, 255).round().astype(np.uint8)
    from segohem.viz import to_display

    shown = to_display(torch.from_numpy(image).permute(2, 0, 1)[None])[0]
    return (shown.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def to_mask(mask: Any) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask).astype(np.int64)


def colour_mask(mask: np.ndarray, palette: Sequence[Sequence[int]], ignore: int) -> np.ndarray:
    """(H, W) ids -> uint8 (H, W, 3) with ``segohem.viz.colorize`` (ignore and unknown
    values white)."""
    from segohem.viz import colorize

    rgb = colorize(torch.from_numpy(mask)[None], palette, ignore)[0]
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def fit(image: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale image (area) and mask (nearest) down so the longer side is <= ``max_side``."""
    h, w = mask.shape
    if max(h, w) <= max_side:
        return image, mask
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    return small, small_mask.astype(np.int64)


def describe(mask: np.ndarray, classes: Sequence[str], ignore: int) -> str:
    """'road 41.2%, car 9.0%, ...; ignore 5.1%' (shares of the valid / all pixels), the
    ``MAX_LISTED`` largest classes, then unexpected values if any."""
    values, counts = np.unique(mask, return_counts=True)
    valid = int(counts[values != ignore].sum())
    known = [(int(v), int(c)) for v, c in zip(values, counts, strict=True)
             if 0 <= v < len(classes)]
    known.sort(key=lambda vc: -vc[1])
    parts = [f"{classes[v]} {100 * c / valid:.1f}%" for v, c in known[:MAX_LISTED]]
    if len(known) > MAX_LISTED:
        parts.append(f"+{len(known) - MAX_LISTED} more classes")
    text = ", ".join(parts) if parts else "no labelled pixels"
    ignored = int(counts[values == ignore].sum())
    text += f"; ignore {100 * ignored / mask.size:.1f}%"
    odd = [int(v) for v in values if not (0 <= v < len(classes) or v == ignore)]
    if odd:
        text += f"; UNEXPECTED values {odd} (neither a class id nor {ignore})"
    return text


# --------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------


def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.load_default()


def legend_entries(masks: list[np.ndarray], classes: Sequence[str],
                   palette: Sequence[Sequence[int]], ignore: int
                   ) -> list[tuple[str, tuple[int, int, int]]]:
    present = set()
    for m in masks:
        present.update(int(v) for v in np.unique(m))
    entries = [(f"{v} {classes[v]}", tuple(int(c) for c in palette[v]))
               for v in sorted(present) if 0 <= v < len(classes)]
    if ignore in present:
        entries.append((f"{ignore} ignore", (255, 255, 255)))
    return entries


def draw_legend(width: int, entries: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """A (h, width, 3) strip: colour swatch + label per entry, wrapped into lines."""
    from PIL import Image, ImageDraw

    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = max(probe.textbbox((0, 0), "Ag", font=font)[3], 8) + 2
    placed, x, y = [], PAD, 0
    for text, colour in entries:
        item_w = line_h + 3 + int(probe.textlength(text, font=font)) + 2 * PAD
        if x + item_w > width - PAD and x > PAD:
            x, y = PAD, y + line_h + PAD
        placed.append((x, y, text, colour))
        x += item_w
    height = y + line_h + 2 * PAD
    strip = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for x, y, text, colour in placed:
        draw.rectangle([x, y + PAD, x + line_h - 1, y + PAD + line_h - 1], fill=colour,
                       outline=TEXT)
        draw.text((x + line_h + 3, y + PAD), text, fill=TEXT, font=font)
    return np.asarray(strip)


def make_grid(rows: list[list[np.ndarray]], legend: list[tuple[str, tuple[int, int, int]]]
              | None) -> np.ndarray:
    """Tiles (uint8 HWC, any sizes) row by row, each column as wide as its widest tile."""
    ncols = max(len(r) for r in rows)
    col_w = [max(r[c].shape[1] for r in rows if c < len(r)) for c in range(ncols)]
    width = sum(col_w) + PAD * (ncols + 1)
    height = sum(max(t.shape[0] for t in r) for r in rows) + PAD * (len(rows) + 1)
    grid = np.empty((height, width, 3), np.uint8)
    grid[:] = BACKGROUND
    y = PAD
    for r in rows:
        x = PAD
        for c, tile in enumerate(r):
            grid[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
            x += col_w[c] + PAD
        y += max(t.shape[0] for t in r) + PAD
    if legend:
        grid = np.concatenate([grid, draw_legend(width, legend)], axis=0)
    return grid


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    args = parser.parse_intermixed_args(argv)
    if args.num < 1:
        parser.error(f"--num must be >= 1, got {args.num}")
    if args.max_side < 8:
        parser.error(f"--max-side must be >= 8, got {args.max_side}")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="browse_dataset_") as tmp:
        cfg = compose_config(args.overrides, Path(tmp))
    dataset = build_dataset(cfg, args.split, not args.no_transform)
    classes = list(getattr(dataset, "classes", None) or cfg.dataset.get("class_names") or [])
    if not classes:
        classes = [str(i) for i in range(int(cfg.dataset.num_classes))]
    ignore = int(getattr(dataset, "ignore_index", cfg.dataset.get("ignore_index", 255)))
    from segohem.viz import resolve_palette

    palette = resolve_palette(getattr(dataset, "palette", None), len(classes))
    transform = getattr(dataset, "transform", None)
    normalize = find_normalize(transform)

    num = min(args.num, len(dataset))
    if args.seed is None:
        indices = list(range(num))
    else:
        indices = random.Random(args.seed).sample(range(len(dataset)), num)
        if hasattr(transform, "set_random_seed"):
            transform.set_random_seed(args.seed)

    rows, masks, lines = [], [], []
    for i in indices:
        item = dataset[i]
        image = to_uint8_image(item["image"], normalize)
        mask = to_mask(item["mask"])
        lines.append(f"[{i}] {item.get('path', '?')} ({mask.shape[1]}x{mask.shape[0]}): "
                     f"{describe(mask, classes, ignore)}")
        image, mask = fit(image, mask, args.max_side)
        coloured = colour_mask(mask, palette, ignore)
        overlay = (0.5 * image.astype(np.float32) + 0.5 * coloured).round().astype(np.uint8)
        rows.append([image, coloured, overlay])
        masks.append(mask)
    legend = None if args.no_legend else legend_entries(masks, classes, palette, ignore)
    grid = make_grid(rows, legend)

    from PIL import Image

    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out)
    what = "raw files" if args.no_transform else f"{args.split} transform"
    name = repr(dataset)
    if " object at 0x" in name:  # no __repr__
        name = f"{type(dataset).__name__}(split={args.split!r}, {len(dataset)} samples)"
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}): {len(rows)} samples of "
          f"{name} [{what}]; columns: image | mask | overlay 50%; ignore ({ignore}) white")
    for line in lines:
        print(line)
    return args.out


if __name__ == "__main__":
    main()
