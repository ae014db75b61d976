"""segohem.viz: one fallback palette everywhere, colourised label maps, overlays, palette PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from segohem.data.datasets.voc import VOC_BORDER_COLOUR, VOC_PALETTE
from segohem.train.checkpoint import dataset_palette
from segohem.viz import (
    IGNORE_COLOUR,
    LEGEND_BACKGROUND,
    colorize,
    fallback_palette,
    legend,
    legend_entries,
    overlay,
    palette_image,
    resolve_palette,
    voc_colormap,
)


def test_fallback_palette_is_the_voc_colour_map():
    assert fallback_palette(3) == [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    assert len(set(fallback_palette(300))) == 300
    assert tuple(fallback_palette(21)) == VOC_PALETTE and voc_colormap()[255] == VOC_BORDER_COLOUR


def test_resolve_palette_keeps_a_long_enough_palette_else_falls_back():
    assert resolve_palette([[1, 2, 3], [4, 5, 6], [7, 8, 9]], 2) == [(1, 2, 3), (4, 5, 6)]
    assert resolve_palette([[1, 2, 3]], 2) == fallback_palette(2)
    assert resolve_palette(None, 2) == fallback_palette(2)


def test_checkpoints_and_datasets_share_the_fallback_palette():
    config = OmegaConf.create({"dataset": {"palette": None, "train_set": {
        "_target_": "segohem.data.FolderDataset"}}})
    assert dataset_palette(config, 4) == fallback_palette(4)
    config.dataset.palette = [[9, 9, 9], [8, 8, 8]]
    assert dataset_palette(config, 2) == [(9, 9, 9), (8, 8, 8)]


def test_colorize_paints_ignored_and_unknown_ids_white():
    palette = [(255, 0, 0), (0, 0, 255)]
    ids = torch.tensor([[[0, 1], [255, 7]]])
    rgb = colorize(ids, palette, ignore_index=255)
    assert rgb.shape == (1, 3, 2, 2) and rgb.dtype == torch.float32
    assert (rgb[0, :, 0, 0] * 255).tolist() == [255, 0, 0]
    assert (rgb[0, :, 0, 1] * 255).tolist() == [0, 0, 255]
    white = torch.tensor(IGNORE_COLOUR, dtype=torch.float32) / 255
    assert torch.equal(rgb[0, :, 1, 0], white) and torch.equal(rgb[0, :, 1, 1], white)


def former_overlay(rgb: np.ndarray, ids: np.ndarray, palette, alpha: float) -> np.ndarray:
    """segohem-predict's overlay before segohem.viz (float32 blend, rounded)."""
    colours = np.asarray(palette, np.float32)[ids]
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colours
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_overlay_matches_the_former_blend(alpha):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ids = rng.integers(0, 5, (40, 50)).astype(np.uint8)
    palette = fallback_palette(5)
    got = overlay(torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(ids), palette, alpha)
    assert got.dtype == torch.uint8 and got.shape == (3, 40, 50)
    diff = np.abs(got.permute(1, 2, 0).numpy().astype(int) - former_overlay(rgb, ids, palette,
                                                                              alpha))
    # exact at alpha 0 and 1; otherwise exact ties (x.5) may round the other way
    assert diff.max() <= (0 if alpha in (0.0, 1.0) else 1)


def test_overlay_leaves_ignored_pixels_alone():
    image = torch.full((3, 2, 2), 100, dtype=torch.uint8)
    ids = torch.tensor([[0, 255], [255, 255]])
    out = overlay(image, ids, [(200, 200, 200)], alpha=0.5, ignore_index=255)
    assert out[:, 0, 0].tolist() == [150] * 3
    assert (out[:, 1:, :] == 100).all() and (out[:, 0, 1] == 100).all()
    assert torch.equal(overlay(image, torch.full((2, 2), 255), [(0, 0, 0)], 0.5, 255), image)


def test_palette_image_keeps_the_ids(tmp_path):
    ids = np.array([[0, 1], [2, 1]], np.uint8)
    palette = [(10, 20, 30), (40, 50, 60), (70, 80, 90)]
    palette_image(ids, palette).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[:9] == [c for rgb in palette for c in rgb]
        assert np.array_equal(np.asarray(image), ids)


def test_legend_lists_every_class_and_ignore_or_the_present_ones():
    palette = fallback_palette(150)
    few = legend_entries(["bg", "crack", "rust"], palette[:3], 255, present=[0])
    assert few == [("0 bg", (0, 0, 0)), ("1 crack", palette[1]), ("2 rust", palette[2]),
                   ("255 ignore", IGNORE_COLOUR)]
    names = [f"c{i}" for i in range(150)]  # ADE20K-like: only the classes shown
    many = legend_entries(names, palette, 255, present=[149, 3, 3, 255, 7])
    assert [text for text, _ in many] == ["3 c3", "7 c7", "149 c149", "255 ignore"]


def test_legend_strip_draws_a_swatch_per_entry():
    entries = [("0 background", (10, 200, 30)), ("1 a-much-longer-class-name", (200, 10, 90)),
               ("255 ignore", IGNORE_COLOUR)]
    wide, narrow = legend(600, entries), legend(120, entries)
    assert wide.dtype == torch.uint8 and wide.shape[0] == 3 and wide.shape[2] == 600
    assert narrow.shape[1] > wide.shape[1]  # wraps to more rows when narrow
    pixels = wide.permute(1, 2, 0).reshape(-1, 3)
    for _, colour in entries:
        assert (pixels == torch.tensor(colour, dtype=torch.uint8)).all(1).sum() >= 25
    assert (pixels == LEGEND_BACKGROUND).all(1).float().mean() > 0.3
