"""Pascal VOC 2012 segmentation (optionally with the SBD-augmented training set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segohem.data.datasets._common import DatasetError, Palette, Sample, SegmentationFolderDataset
from segohem.data.datasets._label_maps import ColourMap, LabelMap
from segohem.data.datasets._layout import missing_files_error, read_id_list, require_dir
from segohem.viz import voc_colormap

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
VOC_PALETTE: Palette = voc_colormap(21)
VOC_BORDER_COLOUR = voc_colormap()[255]  # (224, 224, 192)


class VOCDataset(SegmentationFolderDataset):
    """Pascal VOC 2012: 21 classes (background + 20 objects), 255 = border / difficult.

    ``SegmentationClass/*.png`` are palette PNGs whose palette *index* is the class id; they
    are read as indices, never through their colours. Masks saved as RGB are decoded with the
    VOC colour map (border colour -> 255).

    Args:
        root: ``VOCdevkit/VOC2012`` (``VOCdevkit`` or the folder holding it also work).
        split: ``"train"``, ``"val"``, ``"trainval"`` or ``"train_aug"`` (the SBD-augmented
            list), or any other ``ImageSets/Segmentation/<split>.txt``.
        augmented: use the SBD-augmented training set (``SegmentationClassAug/`` masks, list
            ``ImageSets/Segmentation/train_aug.txt``) for split ``"train"``: None = when both
            exist (printed), True = required, False = never.
        skip_bad: drop bad samples at construction (printed) instead of raising on load.
    """

    classes = VOC_CLASSES
    palette = VOC_PALETTE
    layout = """  <root> = VOCdevkit/VOC2012/
    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNG: index = class id, 255 = border
    ImageSets/Segmentation/{train,val,trainval}.txt
    optional SBD: SegmentationClassAug/<id>.png + ImageSets/Segmentation/train_aug.txt"""

    def __init__(self, root: str, split: str = "train", transform=None,
                 augmented: bool | None = None, skip_bad: bool = False) -> None:
        self.augmented = augmented
        super().__init__(_voc_root(Path(root).expanduser()) if root else root, split,
                         transform, skip_bad)

    def _find_samples(self) -> list[Sample]:
        lists = self.root / "ImageSets" / "Segmentation"
        aug_list, aug_masks = lists / "train_aug.txt", self.root / "SegmentationClassAug"
        use_aug = self.split == "train_aug"
        if self.split == "train" and self.augmented is not False:
            present = aug_list.is_file() and aug_masks.is_dir()
            if self.augmented and not present:
                raise DatasetError(
                    f"VOCDataset(augmented=True): the SBD-augmented set needs {aug_masks}/ and "
                    f"{aug_list}; one is missing. Expected layout:\n{self.layout}")
            if present:
                print(f"VOCDataset: training on the SBD-augmented list {aug_list} "
                      f"(augmented=False to use train.txt)", flush=True)
            use_aug = present
        image_dir = require_dir(self.root / "JPEGImages", "the JPEG images", self.layout)
        if use_aug:
            ids = read_id_list(aug_list, self.layout)
            mask_dir = require_dir(aug_masks, "the SBD-augmented masks", self.layout)
        else:
            ids = read_id_list(lists / f"{self.split}.txt", self.layout)
            mask_dir = require_dir(self.root / "SegmentationClass", "the class masks",
                                   self.layout)
        samples = [Sample(image_dir / f"{i}.jpg", mask_dir / f"{i}.png") for i in ids]
        missing = [p for s in samples for p in (s.image, s.mask) if not p.is_file()]
        if missing:
            raise missing_files_error("files listed in the split are", missing)
        return samples

    def _decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            return _RGB(raw, path)
        return _IDS(raw, path)


def _voc_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    return root


_IDS = LabelMap.train_ids(21, "Pascal VOC (0-20, 255 = border)")
_RGB = ColourMap(VOC_PALETTE, [VOC_BORDER_COLOUR], "the Pascal VOC colour map")
