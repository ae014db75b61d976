"""Shared machinery of the on-disk datasets: file reading with clear errors, label mapping
through lookup tables, and the base class that pairs images with masks.

Everything here runs on the CPU inside the dataset (in DataLoader workers), so a bad file or
label fails with a message naming the file -- not later as an opaque device-side assert.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segohem.files import IMAGE_SUFFIXES

IGNORE_INDEX = 255
Palette = tuple[tuple[int, int, int], ...]


class DatasetError(ValueError):
    """A dataset folder, file or label that cannot be used; the message names it."""


# --------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    """Open and fully decode an image with Pillow (truncated files raise here)."""
    # Lazy: segohem.data promises to import only torch and numpy (Pillow loads on first read).
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise DatasetError(f"{path}: unreadable or truncated image file ({err}). Re-copy or "
                           f"re-extract it, or pass skip_bad=True to skip bad samples.") from None
    return image


def read_image(path: Path) -> np.ndarray:
    """RGB image file -> uint8 array (H, W, 3)."""
    image = _open(path)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def read_mask(path: Path) -> np.ndarray:
    """Mask file -> its stored values: (H, W) for grayscale and palette ("P": the palette
    indices, not the colours) masks, (H, W, 3) uint8 for colour masks.

    16-bit grayscale masks keep their values (int32); 1-bit masks read as 0 / 255 (map them
    with a ``value_map``); the alpha channel of "LA" / "RGBA" masks is dropped.
    """
    image = _open(path)
    if image.mode in ("L", "P"):
        return np.asarray(image)
    if image.mode in ("1", "LA"):
        return np.asarray(image.convert("L"))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.int32)
    if image.mode in ("RGB", "RGBA"):
        return np.asarray(image.convert("RGB"))
    raise DatasetError(f"{path}: unsupported mask image mode {image.mode!r}; expected 8-bit "
                       f"grayscale ids, a palette PNG or an RGB colour mask.")


# --------------------------------------------------------------------------------------
# Label mapping
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Base dataset
# --------------------------------------------------------------------------------------


class Sample:
    """One image file and its mask file (None when a split has no labels)."""

    __slots__ = ("image", "mask")

    def __init__(self, image: Path, mask: Path | None) -> None:
        self.image, self.mask = image, mask


class SegmentationFolderDataset(torch.utils.data.Dataset):
    """Base of the on-disk datasets: a sorted list of (image, mask) files.

    Subclasses set ``classes`` and ``palette`` and implement ``_find_samples`` (pairing, with
    errors for missing folders / files) and ``_decode_mask`` (stored values -> train ids).

    Item ``i``: ``{"image", "mask", "path"}`` -- without a transform, ``image`` is uint8
    ``(H, W, 3)`` RGB and ``mask`` int64 ``(H, W)`` numpy arrays; with an albumentations
    ``transform`` (called as ``transform(image=..., mask=...)``, ending in ``ToTensorV2``),
    ``image`` is a float tensor ``(3, H, W)`` and ``mask`` an int64 tensor ``(H, W)``. Masks
    hold train ids ``0..C-1`` and 255 (ignore). ``path`` is the image file.

    Every item is checked when loaded: readable files, equal image / mask sizes, only known
    mask values; a failure raises :class:`DatasetError` naming the file. With
    ``skip_bad=True`` the constructor instead reads every sample once (in threads), drops the
    bad ones and prints how many and which.
    """

    classes: tuple[str, ...] = ()
    palette: Palette = ()
    ignore_index = IGNORE_INDEX
    #: Expected on-disk layout, shown when the root folder is missing or wrong.
    layout = ""

    def __init__(self, root: str | os.PathLike, split: str,
                 transform: Callable[..., dict[str, Any]] | None = None,
                 skip_bad: bool = False) -> None:
        super().__init__()
        if root is None or str(root) in ("", "???"):
            raise DatasetError(f"{type(self).__name__}: no dataset root given; set "
                               f"dataset.root=<folder>. Expected layout:\n{self.layout}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"{type(self).__name__}: dataset root {self.root} does not exist "
                               f"or is not a folder. Expected layout:\n{self.layout}")
        self.split = split
        self.transform = transform
        self.samples: list[Sample] = sorted(self._find_samples(), key=lambda s: str(s.image))
        if not self.samples:
            raise DatasetError(f"{type(self).__name__}: split {split!r} under {self.root} has "
                               f"no samples. Expected layout:\n{self.layout}")
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self._drop_bad_samples()

    # -- to implement ---------------------------------------------------------------
    def _find_samples(self) -> list[Sample]:
        raise NotImplementedError

    def _decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Stored mask values (as :func:`read_mask` returns them) -> uint8 (H, W) train ids."""
        raise NotImplementedError

    # -- loading --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Checked, untransformed sample ``i``: uint8 (H, W, 3) image and uint8 (H, W) mask
        of train ids (255 = ignore; uint8 so that OpenCV-based transforms can warp it)."""
        sample = self.samples[i]
        image = read_image(sample.image)
        if sample.mask is None:
            return image, np.full(image.shape[:2], IGNORE_INDEX, np.uint8)
        mask = self._decode_mask(read_mask(sample.mask), sample.mask)
        if mask.shape != image.shape[:2]:
            h, w = image.shape[:2]
            raise DatasetError(
                f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                f"{sample.image} is {w}x{h}; image and mask must have the same size.")
        return image, mask

    def load_mask(self, i: int) -> np.ndarray:
        """Checked uint8 (H, W) train-id mask of sample ``i`` without decoding the image
        (all 255 for a sample without a mask)."""
        sample = self.samples[i]
        if sample.mask is None:
            return self.load(i)[1]
        return self._decode_mask(read_mask(sample.mask), sample.mask)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, mask = self.load(i)
        path = str(self.samples[i].image)
        if self.transform is None:
            return {"image": image, "mask": mask.astype(np.int64), "path": path}
        out = self.transform(image=image, mask=mask)
        return {"image": out["image"], "mask": _as_long_tensor(out["mask"]), "path": path}

    def _drop_bad_samples(self) -> None:
        def check(i: int) -> str | None:
            try:
                self.load(i)
            except DatasetError as err:
                return str(err)
            return None

        workers = min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            errors = list(pool.map(check, range(len(self.samples))))
        keep = [s for s, e in zip(self.samples, errors, strict=True) if e is None]
        self.skipped = [(str(s.image), e) for s, e in zip(self.samples, errors, strict=True)
                        if e is not None]
        if self.skipped:
            lines = "\n".join(f"  {err}" for _, err in self.skipped)  # errors name the file
            print(f"{type(self).__name__} ({self.split}): skipped {len(self.skipped)} bad "
                  f"sample(s) of {len(self.samples)} (skip_bad=True):\n{lines}", flush=True)
        if not keep:
            raise DatasetError(f"{type(self).__name__}: every sample of split {self.split!r} "
                               f"under {self.root} is bad (see the list above).")
        self.samples = keep

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
                f"{len(self)} samples, {len(self.classes)} classes)")


def _as_long_tensor(mask: Any) -> torch.Tensor:
    if isinstance(mask, torch.Tensor):
        return mask.long()
    return torch.from_numpy(np.ascontiguousarray(mask)).long()


def require_dir(path: Path, what: str, layout: str) -> Path:
    """``path`` if it is a folder, else a DatasetError naming it and the expected layout."""
    if not path.is_dir():
        raise DatasetError(f"expected {what} at {path}, but that folder does not exist. "
                           f"Expected layout:\n{layout}")
    return path


def read_id_list(path: Path, layout: str) -> list[str]:
    """Sample names of a split list file (e.g. VOC's ImageSets): the first column of each
    non-empty line; an entry written as a file path (``/JPEGImages/x.jpg``, the common
    two-column ``train_aug.txt`` format, or ``x.png``) gives its stem."""
    if not path.is_file():
        raise DatasetError(f"split list {path} does not exist. Expected layout:\n{layout}")
    ids = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = line.split()[0]
        if "/" in entry or Path(entry).suffix.lower() in IMAGE_SUFFIXES:
            entry = Path(entry).stem
        ids.append(entry)
    if not ids:
        raise DatasetError(f"split list {path} is empty.")
    return ids


def missing_files_error(kind: str, missing: Sequence[Path], hint: str = "") -> DatasetError:
    shown = "\n".join(f"  {p}" for p in missing[:20])
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    return DatasetError(f"{len(missing)} {kind} missing:\n{shown}{more}" +
                        (f"\n{hint}" if hint else ""))


def pair_with_masks(images: Iterable[Path], mask_dir: Path, mask_suffix: str) -> list[Sample]:
    """One sample per image, its mask ``mask_dir / (image stem + mask_suffix)``; a
    :class:`DatasetError` listing every image whose mask is missing."""
    samples = [Sample(p, mask_dir / f"{p.stem}{mask_suffix}") for p in images]
    missing = [s.mask for s in samples if not s.mask.is_file()]
    if missing:
        raise missing_files_error("annotations are", missing)
    return samples
