"""Datasets: ``Cls(root, split, transform=None, **options)`` -> ``{"image", "mask", "path"}``."""

from segohem.data.datasets._common import DatasetError
from segohem.data.datasets.ade20k import ADE20KDataset
from segohem.data.datasets.camvid import CamVidDataset
from segohem.data.datasets.cityscapes import CityscapesDataset
from segohem.data.datasets.folder import FolderDataset
from segohem.data.datasets.synthetic import SyntheticDataset
from segohem.data.datasets.voc import VOCDataset

__all__ = ["ADE20KDataset", "CamVidDataset", "CityscapesDataset", "DatasetError",
           "FolderDataset", "SyntheticDataset", "VOCDataset"]
