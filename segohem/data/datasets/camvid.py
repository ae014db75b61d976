"""CamVid in the common 11-class SegNet layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segohem.data.datasets._common import Palette, Sample, SegmentationFolderDataset
from segohem.data.datasets._label_maps import LabelMap
from segohem.data.datasets._layout import pair_with_masks, require_dir

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "signsymbol",
                  "fence", "car", "pedestrian", "bicyclist")
CAMVID_PALETTE: Palette = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)


class CamVidDataset(SegmentationFolderDataset):
    """CamVid, 11 classes; annotation 11 (void / unlabelled) -> 255.

    Args:
        root: the folder holding ``train/ trainannot/ val/ valannot/ test/ testannot/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        skip_bad: drop bad samples at construction (printed) instead of raising on load.
    """

    classes = CAMVID_CLASSES
    palette = CAMVID_PALETTE
    layout = """  <root>/
    train/*.png  trainannot/*.png      (same file names; ids 0-10, 11 = void)
    val/*.png    valannot/*.png
    test/*.png   testannot/*.png"""

    splits = ("train", "val", "test")

    def __init__(self, root: str, split: str = "train", transform=None,
                 skip_bad: bool = False) -> None:
        super().__init__(root, split, transform, skip_bad)

    def _find_samples(self) -> list[Sample]:
        image_dir = require_dir(self.root / self.split, f"the {self.split} images",
                                self.layout)
        mask_dir = require_dir(self.root / f"{self.split}annot",
                               f"the {self.split} annotations", self.layout)
        return pair_with_masks(sorted(image_dir.glob("*.png")), mask_dir, ".png")

    def _decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return _IDS(raw, path)


_IDS = LabelMap.train_ids(11, "CamVid (0-10, 11 = void)", ignored=(11,))
