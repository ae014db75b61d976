"""Stored mask values -> train ids: :class:`LabelMap` (id masks, through a lookup table) and
:class:`ColourMap` (RGB colour masks, through a palette); an unknown value or colour is a
:class:`~segohem.data.DatasetError` naming the file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from segohem.data.datasets._common import IGNORE_INDEX, DatasetError


class LabelMap:
    """Stored mask value -> train id (``0..C-1`` or 255), through a lookup table.

    ``mapping`` lists every *known* stored value; any other value in a mask is an error that
    names the file and the values (so a wrong dataset, a corrupt mask or a colour mask read
    as ids is caught at once).
    """

    def __init__(self, mapping: dict[int, int], num_classes: int,
                 source: str = "the dataset's label table") -> None:
        size = max([255, *mapping]) + 1
        if min(mapping, default=0) < 0:
            raise ValueError(f"stored mask values must be >= 0, got {min(mapping)}")
        self.lut = np.full(size, -1, np.int16)
        for value, train_id in mapping.items():
            if not (0 <= train_id < num_classes or train_id == IGNORE_INDEX):
                raise ValueError(f"value {value} maps to {train_id}, which is neither a class "
                                 f"id in [0, {num_classes}) nor {IGNORE_INDEX}")
            self.lut[value] = train_id
        self.source = source

    @classmethod
    def train_ids(cls, num_classes: int, source: str,
                  ignored: Iterable[int] = (IGNORE_INDEX,)) -> LabelMap:
        """Masks that already hold train ids: ``0..C-1`` map to themselves, the ``ignored``
        values to 255."""
        return cls({**{i: i for i in range(num_classes)}, **dict.fromkeys(ignored, IGNORE_INDEX)},
                   num_classes, source)

    def known_values(self) -> list[int]:
        return [int(v) for v in np.flatnonzero(self.lut >= 0)]

    def __call__(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """(H, W) integer array of stored values -> uint8 (H, W) train ids (255 = ignore)."""
        if raw.ndim != 2:
            raise DatasetError(f"{path}: expected a single-channel mask of class ids, got an "
                               f"array of shape {raw.shape} (a colour mask?).")
        if raw.dtype != np.uint8 and (raw.min() < 0 or raw.max() >= len(self.lut)):
            bad = np.unique(raw[(raw < 0) | (raw >= len(self.lut))])
            raise self._unknown(path, bad)
        mapped = self.lut[raw]
        if (mapped < 0).any():
            raise self._unknown(path, np.unique(raw[mapped < 0]))
        return mapped.astype(np.uint8)

    def _unknown(self, path: Path, values: np.ndarray) -> DatasetError:
        shown = ", ".join(str(int(v)) for v in values[:20])
        more = f" (+{len(values) - 20} more)" if len(values) > 20 else ""
        return DatasetError(
            f"{path}: mask values {shown}{more} are not known ids of {self.source} "
            f"(known: {_ranges(self.known_values())}). Is this the right dataset / mask type?")


class ColourMap:
    """RGB colour mask -> train ids, through ``palette`` (colour of class i) and optional
    ``ignore_colours`` (mapped to 255). Unknown colours are an error naming the file."""

    def __init__(self, palette: Sequence[Sequence[int]],
                 ignore_colours: Iterable[Sequence[int]] = (), source: str = "the palette"):
        self.lut: dict[int, int] = {}
        for cls, colour in enumerate(palette):
            key = _colour_key(colour)
            if key in self.lut:
                raise ValueError(f"palette colour {tuple(colour)} is given for classes "
                                 f"{self.lut[key]} and {cls}; colours must be distinct")
            self.lut[key] = cls
        for colour in ignore_colours:
            self.lut.setdefault(_colour_key(colour), IGNORE_INDEX)
        self.keys = np.array(sorted(self.lut), np.int64)
        self.values = np.array([self.lut[k] for k in self.keys.tolist()], np.uint8)
        self.source = source

    def __call__(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 3 or raw.shape[2] != 3:
            raise DatasetError(f"{path}: expected an RGB colour mask, got an array of shape "
                               f"{raw.shape}.")
        keys = (raw[..., 0].astype(np.int64) << 16) | (raw[..., 1].astype(np.int64) << 8) \
            | raw[..., 2].astype(np.int64)
        pos = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        hit = self.keys[pos] == keys
        if not hit.all():
            bad = np.unique(keys[~hit])
            shown = ", ".join(str(((int(k) >> 16) & 255, (int(k) >> 8) & 255, int(k) & 255))
                              for k in bad[:10])
            raise DatasetError(f"{path}: mask colours {shown}"
                               f"{' ...' if len(bad) > 10 else ''} are not in {self.source}. "
                               f"Add them to the palette (or to the ignore colours).")
        return self.values[pos]


def _colour_key(colour: Sequence[int]) -> int:
    r, g, b = (int(c) for c in colour)
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise ValueError(f"colour {tuple(colour)} must have 3 values in 0..255")
    return (r << 16) | (g << 8) | b


def _ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 5, 255] -> '0-2, 5, 255'."""
    out: list[str] = []
    start = prev = None
    for v in [*values, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return ", ".join(out)
