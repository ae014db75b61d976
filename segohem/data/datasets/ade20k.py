"""ADE20K scene parsing (ADEChallengeData2016), 150 classes, reduce-zero-label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segohem.data.datasets._ade20k_meta import ADE20K_CLASSES, ADE20K_PALETTE
from segohem.data.datasets._common import IGNORE_INDEX, Sample, SegmentationFolderDataset
from segohem.data.datasets._label_maps import LabelMap
from segohem.data.datasets._layout import pair_with_masks, require_dir

_SPLITS = {"train": "training", "training": "training", "val": "validation",
           "validation": "validation"}


class ADE20KDataset(SegmentationFolderDataset):
    """ADE20K SceneParsing: annotation 0 ("other") -> 255, k -> k - 1 for k = 1..150.

    Args:
        root: ``ADEChallengeData2016`` (or the folder holding it).
        split: ``"train"`` / ``"val"`` (or ``"training"`` / ``"validation"``).
        skip_bad: drop bad samples at construction (printed) instead of raising on load.
    """

    classes = ADE20K_CLASSES
    palette = ADE20K_PALETTE
    layout = """  <root> = ADEChallengeData2016/
    images/{training,validation}/ADE_{train,val}_<8 digits>.jpg
    annotations/{training,validation}/ADE_{train,val}_<8 digits>.png   0 = other, 1-150"""
    splits = tuple(_SPLITS)

    def __init__(self, root: str, split: str = "train", transform=None,
                 skip_bad: bool = False) -> None:
        if root and not (Path(root) / "images").is_dir() \
                and (Path(root) / "ADEChallengeData2016").is_dir():
            root = str(Path(root) / "ADEChallengeData2016")
        super().__init__(root, split, transform, skip_bad)

    def _find_samples(self) -> list[Sample]:
        folder = _SPLITS[self.split]
        image_dir = require_dir(self.root / "images" / folder, f"the {folder} images",
                                self.layout)
        mask_dir = require_dir(self.root / "annotations" / folder,
                               f"the {folder} annotations", self.layout)
        return pair_with_masks(sorted(image_dir.glob("*.jpg")), mask_dir, ".png")

    def _decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return _REDUCE_ZERO(raw, path)


_REDUCE_ZERO = LabelMap({0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 151)}}, 150,
                        "ADE20K (0 = other, 1-150)")
