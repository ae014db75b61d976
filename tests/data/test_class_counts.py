"""segohem.data.class_counts: per-class pixel counts of a training set, read from the masks
only (loss=crl's alpha from eta)."""

import numpy as np
import pytest

from segohem.data import DatasetError, FolderDataset
from segohem.data.class_counts import class_pixel_counts
from tests._support import data_trees


def test_class_pixel_counts_reads_masks_only(tmp_path):
    root = data_trees.make_folder(tmp_path / "data", stems=("a", "b"), num_classes=3,
                                  size=(8, 10))
    dataset = FolderDataset(root, "all", classes=["x", "y", "z"])
    expected = np.zeros(3, np.int64)
    for i in range(len(dataset)):
        mask = dataset[i]["mask"]
        expected += np.bincount(mask[mask != 255], minlength=3)
    for sample in dataset.samples:  # images are never decoded
        sample.image.write_bytes(b"not an image")
    assert class_pixel_counts(dataset, 3).tolist() == expected.tolist()
    with pytest.raises(DatasetError, match=r"mask values \[2\] are neither class ids in \[0, 2\)"):
        class_pixel_counts(dataset, 2)
