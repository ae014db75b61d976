"""Shared machinery of the on-disk datasets: :class:`DatasetError`, file reading with clear
errors, and the base class that pairs images with masks (label mapping is in
``_label_maps.py``, finding a split's files in ``_layout.py``).

Everything here runs on the CPU inside the dataset (in DataLoader workers), so a bad file or
label fails with a message naming the file -- not later as an opaque device-side assert.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
# Base dataset
# --------------------------------------------------------------------------------------


class Sample:
    """One image file and its mask file (None when a split has no labels)."""

    __slots__ = ("image", "mask")

    def __init__(self, image: Path, mask: Path | None) -> None:
        self.image, self.mask = image, mask


class SegmentationFolderDataset(torch.utils.data.Dataset):
    """Base of the on-disk datasets: a sorted list of (image, mask) files.

    Subclasses set ``classes``, ``palette`` and ``splits`` and implement ``_find_samples``
    (pairing, with errors for missing folders / files) and ``_decode_mask`` (stored values ->
    train ids).

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
    #: The split names the dataset knows; empty: any (e.g. VOC's split list files).
    splits: tuple[str, ...] = ()
    #: Expected on-disk layout, shown when the root folder is missing or wrong.
    layout = ""

    def __init__(self, root: str | os.PathLike, split: str,
                 transform: Callable[..., dict[str, Any]] | None = None,
                 skip_bad: bool = False) -> None:
        super().__init__()
        if self.splits and split not in self.splits:
            raise DatasetError(f"{type(self).__name__}: unknown split {split!r}; choose one of "
                               f"{list(self.splits)}.")
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
