"""Cityscapes (fine annotations) in its distributed layout, 19 evaluation classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segohem.data.datasets._common import DatasetError, Palette, Sample, SegmentationFolderDataset
from segohem.data.datasets._label_maps import LabelMap
from segohem.data.datasets._layout import missing_files_error, require_dir

# (labelId, name, trainId) from cityscapesScripts' labels.py; trainId 255 / -1 = ignored.
LABELS: tuple[tuple[int, str, int], ...] = (
    (0, "unlabeled", 255), (1, "ego vehicle", 255), (2, "rectification border", 255),
    (3, "out of roi", 255), (4, "static", 255), (5, "dynamic", 255), (6, "ground", 255),
    (7, "road", 0), (8, "sidewalk", 1), (9, "parking", 255), (10, "rail track", 255),
    (11, "building", 2), (12, "wall", 3), (13, "fence", 4), (14, "guard rail", 255),
    (15, "bridge", 255), (16, "tunnel", 255), (17, "pole", 5), (18, "polegroup", 255),
    (19, "traffic light", 6), (20, "traffic sign", 7), (21, "vegetation", 8),
    (22, "terrain", 9), (23, "sky", 10), (24, "person", 11), (25, "rider", 12),
    (26, "car", 13), (27, "truck", 14), (28, "bus", 15), (29, "caravan", 255),
    (30, "trailer", 255), (31, "train", 16), (32, "motorcycle", 17), (33, "bicycle", 18),
    (-1, "license plate", 255),
)
#: labelId -> trainId (255 = ignore), every id of the official table.
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {lid: tid for lid, _, tid in LABELS}
#: trainId -> labelId, for the Cityscapes submission format.
TRAIN_ID_TO_LABEL_ID: dict[int, int] = {tid: lid for lid, _, tid in LABELS if tid != 255}

CITYSCAPES_CLASSES = tuple(name for _, name, tid in sorted(LABELS, key=lambda r: r[2])
                           if tid != 255)
CITYSCAPES_PALETTE: Palette = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

_MASK_SUFFIX = {"labelIds": "_gtFine_labelIds.png", "labelTrainIds": "_gtFine_labelTrainIds.png"}
_IMAGE_SUFFIX = "_leftImg8bit.png"


class CityscapesDataset(SegmentationFolderDataset):
    """Cityscapes fine annotations: 19 train classes, every other label id -> 255.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: albumentations pipeline (``transform(image=, mask=)``) or None.
        mask_type: ``"labelIds"`` (the official ``*_gtFine_labelIds.png``, mapped with the
            official label table: license plate's -1 is stored as 255 and ignored, any other
            id outside 0-33 is an error), ``"labelTrainIds"`` (ready ``*_labelTrainIds.png``
            from cityscapesScripts' createTrainIdLabelImgs: 0-18 and 255), or ``"auto"``
            (labelIds when the first city has them, else labelTrainIds).
        skip_bad: drop unreadable / inconsistent samples at construction (printed) instead of
            raising when they are loaded.
    """

    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    layout = """  <root>/
    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
                                 (or ..._gtFine_labelTrainIds.png)"""
    splits = ("train", "val", "test")

    def __init__(self, root: str, split: str = "train", transform=None,
                 mask_type: str = "auto", skip_bad: bool = False) -> None:
        if mask_type not in ("auto", *_MASK_SUFFIX):
            raise DatasetError(f"CityscapesDataset: mask_type must be 'auto', 'labelIds' or "
                               f"'labelTrainIds', got {mask_type!r}.")
        self.mask_type = mask_type
        super().__init__(root, split, transform, skip_bad)

    def _find_samples(self) -> list[Sample]:
        image_dir = require_dir(self.root / "leftImg8bit" / self.split,
                                f"the {self.split} images", self.layout)
        mask_dir = require_dir(self.root / "gtFine" / self.split,
                               f"the {self.split} fine annotations", self.layout)
        images = sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}"))
        if not images:
            raise DatasetError(f"no *{_IMAGE_SUFFIX} files in {image_dir}/<city>/. Expected "
                               f"layout:\n{self.layout}")
        if self.mask_type == "auto":
            first = images[0]
            stem = first.name[: -len(_IMAGE_SUFFIX)]
            has_ids = (mask_dir / first.parent.name / f"{stem}{_MASK_SUFFIX['labelIds']}")
            self.mask_type = "labelIds" if has_ids.is_file() or not any(
                mask_dir.glob(f"*/*{_MASK_SUFFIX['labelTrainIds']}")) else "labelTrainIds"
        suffix = _MASK_SUFFIX[self.mask_type]
        samples, missing = [], []
        for image in images:
            mask = mask_dir / image.parent.name / (image.name[: -len(_IMAGE_SUFFIX)] + suffix)
            if not mask.is_file():
                missing.append(mask)
            samples.append(Sample(image, mask))
        if missing:
            raise missing_files_error(
                f"{self.mask_type} masks", missing,
                f"Each {_IMAGE_SUFFIX} image needs its ...{suffix} file (mask_type="
                f"{self.mask_type!r}). Generate labelTrainIds with cityscapesScripts' "
                f"createTrainIdLabelImgs, or use mask_type='labelIds'.")
        return samples

    def _decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return _LABEL_MAPS[self.mask_type](raw, path)


_LABEL_MAPS = {
    "labelIds": LabelMap({(lid if lid >= 0 else 255): tid for lid, tid in
                          LABEL_ID_TO_TRAIN_ID.items()}, 19, "Cityscapes labelIds (0-33, -1 "
                                                             "stored as 255)"),
    "labelTrainIds": LabelMap.train_ids(19, "Cityscapes labelTrainIds (0-18, 255)"),
}
