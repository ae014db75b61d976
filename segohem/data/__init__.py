"""Data: datasets (import-light: only torch and numpy are imported here)."""

from segohem.data.build import build_dataset
from segohem.data.datasets import (
    ADE20KDataset,
    CamVidDataset,
    CityscapesDataset,
    DatasetError,
    FolderDataset,
    SyntheticDataset,
    VOCDataset,
)

__all__ = ["ADE20KDataset", "CamVidDataset", "CityscapesDataset", "DatasetError",
           "FolderDataset", "SyntheticDataset", "VOCDataset", "build_dataset"]
