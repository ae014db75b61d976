"""Datasets: ``Cls(root, split, transform=None, **options)`` -> ``{"image", "mask", "path"}``."""

from segohem.data.datasets.synthetic import SyntheticDataset

__all__ = ["SyntheticDataset"]
