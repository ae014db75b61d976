"""The output formats of ``segohem-predict`` (described in
:mod:`segohem.infer.predict.run`): palette
PNG, overlay, class-id PNG and Cityscapes labelIds, and the model the Cityscapes format
needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segohem.data.datasets.cityscapes import CITYSCAPES_CLASSES, TRAIN_ID_TO_LABEL_ID
from segohem.train.checkpoint import CheckpointError, LoadedModel
from segohem.viz import colorize, overlay, palette_image
from segohem.viz import legend as legend_strip  # save_prediction's argument is `legend`

FORMATS = ("color", "overlay", "id", "cityscapes")


def label_id_table() -> np.ndarray:
    """trainId (0-18) -> Cityscapes labelId lookup table (uint8, 256 entries)."""
    table = np.zeros(256, np.uint8)
    for train_id, label_id in TRAIN_ID_TO_LABEL_ID.items():
        table[train_id] = label_id
    return table


def check_cityscapes_model(loaded: LoadedModel) -> None:
    """format=cityscapes needs the 19 Cityscapes trainIds, in the official order."""
    if tuple(loaded.class_names) != CITYSCAPES_CLASSES:
        names = ", ".join(loaded.class_names[:6]) + (", ..." if loaded.num_classes > 6 else "")
        raise CheckpointError(
            f"{loaded.path}: format=cityscapes needs a model of the 19 Cityscapes classes "
            f"(trainIds 0-18, mapped back to labelIds), but this one was trained for "
            f"{loaded.num_classes} classes ({names}). Use a checkpoint trained with "
            f"dataset=cityscapes, or format=id / color.")


def with_legend(picture: torch.Tensor, entries: list[tuple[str, tuple[int, int, int]]]
                ) -> Image.Image:
    """``(3, H, W)`` uint8 RGB with the :func:`segohem.viz.legend` strip below it."""
    strip = legend_strip(picture.shape[2], entries)
    return Image.fromarray(torch.cat([picture, strip], 1).permute(1, 2, 0).contiguous().numpy())


def save_prediction(ids: np.ndarray, rgb: np.ndarray, destination: Path, fmt: str,
                    palette: list[tuple[int, int, int]], alpha: float,
                    legend: list[tuple[str, tuple[int, int, int]]] | None = None) -> None:
    """Write ``(H, W)`` uint8 class ids of the ``(H, W, 3)`` uint8 image ``rgb`` in ``fmt``;
    with ``legend`` entries (:func:`segohem.viz.legend_entries`; color and overlay only) the
    colour key is drawn under the picture, and a color PNG becomes RGB (for people: its pixel
    values are no longer the class ids)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "color" and legend:
        coloured = colorize(torch.from_numpy(ids).long()[None], palette, 255)[0]
        with_legend((coloured * 255).round().byte(), legend).save(destination, optimize=True)
    elif fmt == "color":
        palette_image(ids, palette).save(destination, optimize=True)
    elif fmt == "overlay":
        blended = overlay(torch.tensor(rgb).permute(2, 0, 1), torch.from_numpy(ids), palette,
                          alpha)
        image = (with_legend(blended, legend) if legend else
                 Image.fromarray(blended.permute(1, 2, 0).contiguous().numpy()))
        if destination.suffix.lower() in (".jpg", ".jpeg"):
            image.save(destination, quality=92)
        else:
            image.save(destination)
    elif fmt == "id":
        Image.fromarray(ids).save(destination)
    else:  # cityscapes
        Image.fromarray(label_id_table()[ids]).save(destination)
