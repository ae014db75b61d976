"""Colours for label maps: the palette of a dataset (one fallback for datasets without their
own), colourised masks, image + mask overlays and palette PNGs.

Used by the TensorBoard image grids, ``segohem-predict``, ``segohem-export``'s sidecar and
``scripts/browse_dataset.py``, so one class has one colour everywhere; :func:`legend` draws
the same key under each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

Palette = list[tuple[int, int, int]]
"""RGB colour (0-255) of each class id."""
IGNORE_COLOUR = (255, 255, 255)
"""Colour of ignored pixels (and of ids outside the palette) in :func:`colorize`."""
LEGEND_ALL_UP_TO = 24
"""A legend lists every class up to this many classes, else the classes present."""
LEGEND_PAD = 4
LEGEND_BACKGROUND = 40


def voc_colormap(n: int = 256) -> tuple[tuple[int, int, int], ...]:
    """The Pascal VOC development kit's colour map (``VOClabelcolormap.m``): the colour of id
    ``i`` interleaves the bits of ``i`` over R, G and B (distinct for every id < 2**24)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return tuple(out)


def fallback_palette(num_classes: int) -> Palette:
    """The colours of a dataset without its own palette: :func:`voc_colormap` (id 0 black)."""
    return list(voc_colormap(num_classes))


def resolve_palette(palette: Sequence[Sequence[int]] | None, num_classes: int) -> Palette:
    """The first ``num_classes`` colours of ``palette`` as int triples, or
    :func:`fallback_palette` when there is none or it is too short."""
    if palette is None or len(palette) < num_classes:
        return fallback_palette(num_classes)
    return [(int(r), int(g), int(b)) for r, g, b in list(palette)[:num_classes]]


def colorize(ids: Tensor, palette: Sequence[Sequence[int]], ignore_index: int) -> Tensor:
    """``(B, H, W)`` class ids -> ``(B, 3, H, W)`` float RGB in [0, 1] (on the ids' device);
    ``ignore_index`` and ids outside the palette -> :data:`IGNORE_COLOUR`."""
    table = torch.tensor([list(c) for c in palette] + [list(IGNORE_COLOUR)],
                         dtype=torch.float32, device=ids.device) / 255.0
    outside = len(palette)
    safe = torch.where((ids >= 0) & (ids < outside) & (ids != ignore_index), ids, outside)
    return table[safe].permute(0, 3, 1, 2)


def to_display(images: Tensor) -> Tensor:
    """Normalised ``(B, 3, H, W)`` images -> [0, 1] per image (min-max), for viewing."""
    flat = images.float().flatten(1)
    low = flat.min(1).values[:, None, None, None]
    high = flat.max(1).values[:, None, None, None]
    return (images.float() - low) / (high - low).clamp_min(1e-6)


def overlay(image: Tensor, ids: Tensor, palette: Sequence[Sequence[int]], alpha: float,
            ignore_index: int | None = None) -> Tensor:
    """``(1 - alpha) * image + alpha * colour of the class`` per pixel, with
    ``torchvision.utils.draw_segmentation_masks``.

    Args:
        image: ``(3, H, W)`` uint8 RGB.
        ids: ``(H, W)`` integer class ids; ``ignore_index`` and ids outside the palette keep
            the image's pixel.
        palette: RGB colour (0-255) per class id.
        alpha: opacity of the colours, in [0, 1].

    Returns:
        ``(3, H, W)`` uint8 RGB, rounded to the nearest level.
    """
    # Lazy: the datasets import this module for their palettes, and segohem.data imports
    # only torch and numpy.
    from torchvision.utils import draw_segmentation_masks

    present = [int(c) for c in ids.unique().tolist()
               if 0 <= c < len(palette) and c != ignore_index]
    if not present:
        return image.clone()
    masks = ids[None] == torch.tensor(present, dtype=ids.dtype, device=ids.device)[:, None, None]
    colours = [(int(palette[c][0]), int(palette[c][1]), int(palette[c][2])) for c in present]
    # float64 in [0, 1] (torchvision's float convention), so the blend rounds instead of
    # truncating to uint8
    blended = draw_segmentation_masks(image.to(torch.float64) / 255.0, masks, alpha=alpha,
                                      colors=colours)
    return (blended * 255.0).round().clamp(0, 255).to(torch.uint8)


def palette_image(ids: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """``(H, W)`` uint8 class ids -> Pillow ``"P"`` image whose palette is ``palette`` (the
    pixel values stay the ids: ``numpy.asarray(Image.open(f))`` reads them back)."""
    from PIL import Image  # lazy, as torchvision in overlay: segohem.data imports this module

    image = Image.fromarray(ids)
    image.putpalette([int(c) for colour in palette for c in colour])
    return image


def legend_entries(class_names: Sequence[str], palette: Sequence[Sequence[int]],
                   ignore_index: int, present: Sequence[int] | None = None
                   ) -> list[tuple[str, tuple[int, int, int]]]:
    """``("<id> <name>", colour)`` per class, then the ignore colour: every class up to
    :data:`LEGEND_ALL_UP_TO` classes, else (ADE20K's 150) the ids in ``present``."""
    ids: Sequence[int] = range(len(class_names))
    if len(class_names) > LEGEND_ALL_UP_TO and present is not None:
        ids = sorted({int(i) for i in present if 0 <= int(i) < len(class_names)})
    entries = [(f"{i} {class_names[i]}", tuple(int(c) for c in palette[i])) for i in ids]
    return [*entries, (f"{ignore_index} ignore", IGNORE_COLOUR)]  # type: ignore[list-item]


def legend(width: int, entries: Sequence[tuple[str, Sequence[int]]]) -> Tensor:
    """A ``(3, h, width)`` uint8 strip to put under a picture: a colour swatch and a label per
    entry (:func:`legend_entries`), as many per row as fit in ``width`` pixels."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    line = max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), "Ag", font=font)[3],
               8) + 2
    text_width = max((int(font.getlength(text)) for text, _ in entries), default=0)
    cell = line + 3 + text_width + 2 * LEGEND_PAD
    per_row = max(1, (width - LEGEND_PAD) // cell)
    rows = max(1, -(-len(entries) // per_row))
    strip = Image.new("RGB", (width, rows * (line + LEGEND_PAD) + LEGEND_PAD),
                      (LEGEND_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(strip)
    for i, (text, colour) in enumerate(entries):
        x = LEGEND_PAD + (i % per_row) * cell
        y = LEGEND_PAD + (i // per_row) * (line + LEGEND_PAD)
        draw.rectangle([x, y, x + line - 1, y + line - 1], fill=tuple(int(c) for c in colour),
                       outline=(235,) * 3)
        draw.text((x + line + 3, y), text, fill=(235,) * 3, font=font)
    return torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1)
