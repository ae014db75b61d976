"""The output formats of ``segohem-predict`` (described in :mod:`segohem.prediction`): palette
PNG, overlay, class-id PNG and Cityscapes labelIds, and the model the Cityscapes format
needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segohem.checkpoint import CheckpointError, LoadedModel
from segohem.data.datasets.cityscapes import CITYSCAPES_CLASSES, TRAIN_ID_TO_LABEL_ID
from segohem.viz import overlay, palette_image

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


def save_prediction(ids: np.ndarray, rgb: np.ndarray, destination: Path, fmt: str,
                    palette: list[tuple[int, int, int]], alpha: float) -> None:
    """Write ``(H, W)`` uint8 class ids of the ``(H, W, 3)`` uint8 image ``rgb`` in ``fmt``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "color":
        palette_image(ids, palette).save(destination, optimize=True)
    elif fmt == "overlay":
        blended = overlay(torch.tensor(rgb).permute(2, 0, 1), torch.from_numpy(ids), palette,
                          alpha)
        image = Image.fromarray(blended.permute(1, 2, 0).contiguous().numpy())
        if destination.suffix.lower() in (".jpg", ".jpeg"):
            image.save(destination, quality=92)
        else:
            image.save(destination)
    elif fmt == "id":
        Image.fromarray(ids).save(destination)
    else:  # cityscapes
        Image.fromarray(label_id_table()[ids]).save(destination)
