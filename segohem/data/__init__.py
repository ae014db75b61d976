"""Data: datasets (import-light: only torch and numpy are imported here)."""

from segohem.data.datasets import SyntheticDataset

__all__ = ["SyntheticDataset"]
