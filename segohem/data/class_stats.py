"""Class statistics of a dataset split, read from its masks: labelled pixels per class and which
images contain which class (the pixel share and the *image* share of every class).

Each mask is decoded once, in threads (Pillow releases the GIL while decoding), and the per-image
counts are cached as ``.npz`` under :func:`default_cache_dir`, keyed by the dataset's class
settings and the list of mask files; a cached row is reused while its file keeps its size and
``mtime_ns``, so a second run decodes nothing and an edited mask is decoded again alone.
Datasets without mask files on disk (``SyntheticDataset``, lists) are computed without a cache.
A cache that cannot be read or written is logged and skipped, never an error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from segohem.data.datasets import DatasetError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Part of every cache key: bump it when the counting or a dataset's mask decoding changes."""
CACHE_ENV = "SEGOHEM_CACHE_DIR"
"""Environment variable naming segohem's cache folder (class statistics under ``class_stats/``)."""
RARE_IMAGE_SHARE = 0.1
"""A class in fewer than this share of the training images is warned about as image-rare."""


@dataclass(frozen=True)
class ClassStats:
    """Class statistics of one split of N images and C classes.

    Attributes:
        pixels: ``(C,)`` int64 labelled pixels per class (``ignore_index`` not counted).
        presence: ``(N, C)`` bool, ``presence[i, c]``: image ``i`` holds a pixel of class ``c``.
        num_images: N.
    """

    pixels: np.ndarray
    presence: np.ndarray
    num_images: int

    @property
    def image_counts(self) -> np.ndarray:
        """``(C,)`` int64: images that contain each class."""
        return self.presence.sum(axis=0, dtype=np.int64)

    @property
    def pixel_share(self) -> np.ndarray:
        """``(C,)`` float64 share of the labelled pixels per class (0 without any)."""
        return self.pixels / max(int(self.pixels.sum()), 1)

    @property
    def image_share(self) -> np.ndarray:
        """``(C,)`` float64 fraction of the images that contain each class."""
        return self.image_counts / max(self.num_images, 1)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> ClassStats:
        """From ``(N, C)`` per-image labelled pixel counts."""
        counts = np.asarray(counts, np.int64)
        return cls(counts.sum(axis=0), counts > 0, counts.shape[0])


def default_cache_dir() -> Path:
    """``$SEGOHEM_CACHE_DIR/class_stats``, else ``$XDG_CACHE_HOME/segohem/class_stats``, else
    ``~/.cache/segohem/class_stats`` (a user cache: dataset folders are often read-only)."""
    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segohem"
    return Path(root).expanduser() / "class_stats"


def untransformed(dataset: Any) -> Any:
    """``dataset`` as it reads its masks without augmentation: itself when it reads masks alone
    (``load_mask``, segohem's on-disk datasets), else a shallow copy with ``transform=None``,
    so that counting leaves the dataset's seeded augmentation stream untouched."""
    if hasattr(dataset, "load_mask") or not hasattr(dataset, "transform"):
        return dataset
    plain = copy.copy(dataset)
    plain.transform = None
    return plain


class _Source(NamedTuple):
    """How to read a dataset's masks: ``load(i)`` -> (H, W) mask; ``files``: the mask file of
    every sample (None: a sample without a mask) or None when not on disk; ``settings``: what
    besides the files decides the decoded values."""

    length: int
    load: Callable[[int], Any]
    files: list[Path | None] | None
    settings: list[Any]


def _source(dataset: Any) -> _Source:
    inner, indices = getattr(dataset, "dataset", None), getattr(dataset, "indices", None)
    if inner is not None and indices is not None:  # torch.utils.data.Subset
        src = _source(inner)
        idx = [int(i) for i in indices]
        files = [src.files[i] for i in idx] if src.files is not None else None
        return _Source(len(idx), lambda i: src.load(idx[i]), files, src.settings)
    dataset = untransformed(dataset)
    load = getattr(dataset, "load_mask", None)
    samples = getattr(dataset, "samples", None)
    files = None
    if load is not None and isinstance(samples, list) and all(hasattr(s, "mask")
                                                              for s in samples):
        files = [s.mask for s in samples]
    return _Source(len(dataset), load or (lambda i: dataset[i]["mask"]), files,
                   _settings(dataset))


def _settings(dataset: Any) -> list[Any]:
    """The dataset's type and its plain attributes and label tables (``lut``), for a cache key."""
    out: list[Any] = [type(dataset).__module__, type(dataset).__qualname__]
    plain = (str, int, float, bool, type(None), os.PathLike)
    for name, value in sorted(vars(dataset).items() if hasattr(dataset, "__dict__") else []):
        if name in ("transform", "samples", "skipped"):
            continue
        lut = getattr(value, "lut", None)
        if lut is not None:  # LabelMap (array) / ColourMap (dict)
            data = lut.tobytes() if isinstance(lut, np.ndarray) else \
                repr(sorted(lut.items())).encode()
            out.append([name, hashlib.sha256(data).hexdigest()])
        elif isinstance(value, plain) or (isinstance(value, tuple | list)
                                          and all(isinstance(v, plain) for v in value)):
            out.append([name, repr(value)])
    return out


def _stamps(files: Sequence[Path | None]) -> np.ndarray | None:
    """``(N, 2)`` int64 (size, mtime_ns) per file (-1 for no file), or None if one is missing."""
    out = np.full((len(files), 2), -1, np.int64)
    try:
        for i, path in enumerate(files):
            if path is not None:
                st = os.stat(path)
                out[i] = st.st_size, st.st_mtime_ns
    except OSError:
        return None  # decoding names the file
    return out


def _cache_file(cache_dir: Path, src: _Source, num_classes: int, ignore_index: int) -> Path:
    key = json.dumps([CACHE_VERSION, src.settings, num_classes, ignore_index,
                      [None if f is None else os.path.abspath(f) for f in src.files or ()]])
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def _read_cache(path: Path, stamps: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """Cached ``(N, C)`` counts and a ``(N,)`` mask of the rows still valid (none on a miss)."""
    n = len(stamps)
    try:
        with np.load(path) as data:
            counts, cached = data["counts"], data["stamps"]
        if counts.shape == (n, num_classes) and cached.shape == stamps.shape:
            return counts.astype(np.int64), (cached == stamps).all(axis=1)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as err:
        log.info("Class statistics cache %s unreadable (%s): decoding again.", path, err)
    return np.zeros((n, num_classes), np.int64), np.zeros(n, bool)


def _write_cache(path: Path, counts: np.ndarray, stamps: np.ndarray) -> None:
    """Write atomically; a failure is logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, counts=counts, stamps=stamps)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        log.warning("Could not write the class statistics cache %s (%s); the next run decodes "
                    "the masks again. Set %s to a writable folder to cache them.", path, err,
                    CACHE_ENV)


def class_statistics(dataset: Any, num_classes: int, ignore_index: int = 255,
                     cache_dir: Path | None = None, workers: int | None = None) -> ClassStats:
    """The :class:`ClassStats` of ``dataset``'s masks, each decoded once (in ``workers``
    threads, default ``min(8, CPUs)``); cached under ``cache_dir`` (default
    :func:`default_cache_dir`) when the masks are files (see the module docstring).

    Reads ``dataset.load_mask(i)`` when the dataset has it (no image decoded), else
    ``dataset[i]["mask"]`` without the dataset's transform; ``torch.utils.data.Subset`` is
    read through its dataset.

    Raises:
        DatasetError: the dataset is empty, or a mask holds a value that is neither a class id
            in ``[0, num_classes)`` nor ``ignore_index`` (the sample and values named).
    """
    if len(dataset) == 0:
        raise DatasetError(f"{dataset!r} has no samples: cannot count class pixels.")
    src = _source(dataset)
    stamps = _stamps(src.files) if src.files is not None else None
    path = None
    counts, valid = np.zeros((src.length, num_classes), np.int64), np.zeros(src.length, bool)
    if stamps is not None:
        path = _cache_file(Path(cache_dir or default_cache_dir()), src, num_classes, ignore_index)
        counts, valid = _read_cache(path, stamps, num_classes)

    def count(i: int) -> np.ndarray:
        mask = np.asarray(src.load(i)).reshape(-1).astype(np.int64, copy=False)
        known = ((mask >= 0) & (mask < num_classes)) | (mask == ignore_index)
        if not known.all():
            values = np.unique(mask[~known])[:10].tolist()
            raise DatasetError(f"sample {i} of {dataset!r}: mask values {values} are neither "
                               f"class ids in [0, {num_classes}) nor {ignore_index}.")
        return np.bincount(np.where(mask == ignore_index, num_classes, mask),
                           minlength=num_classes + 1)[:num_classes]

    todo = np.flatnonzero(~valid).tolist()
    if todo:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
            counts[todo] = list(pool.map(count, todo))
        log.info("Class statistics: decoded %d of %d masks of %r in %.1f s%s.", len(todo),
                 src.length, dataset, time.perf_counter() - start,
                 f" (cache: {path})" if path else "")
        if path is not None:
            _write_cache(path, counts, stamps)
    return ClassStats.from_counts(counts)


def dataset_classes(dataset: Any) -> list[str] | None:
    """The class names a dataset declares (``classes``; through a ``Subset``), or None."""
    classes = getattr(dataset, "classes", None)
    if classes is None and getattr(dataset, "dataset", None) is not None:
        return dataset_classes(dataset.dataset)
    return list(classes) if classes else None


def split_statistics(train_set: Any, val_set: Any | None, num_classes: int,
                     ignore_index: int = 255, cache_dir: Path | None = None,
                     ) -> tuple[ClassStats, ClassStats | None]:
    """:func:`class_statistics` of the training and (if any) the validation split."""
    train = class_statistics(train_set, num_classes, ignore_index, cache_dir)
    val = (class_statistics(val_set, num_classes, ignore_index, cache_dir)
           if val_set is not None else None)
    return train, val


def stats_table(class_names: Sequence[str], train: ClassStats,
                val: ClassStats | None = None) -> str:
    """Plain-text table: per class the pixel share and the images that contain it, of the
    training and (if given) the validation split."""
    splits = {"train": train} if val is None else {"train": train, "val": val}
    width = max([len("class"), *(len(str(n)) for n in class_names)])
    cells: list[list[str]] = [[f"{'class':<{width}}"]]
    for split, stats in splits.items():
        cells[0] += [f"{split} pixels", f"{split} images ({stats.num_images})"]
    for c, name in enumerate(class_names):
        row = [f"{name!s:<{width}}"]
        for stats in splits.values():
            row += [f"{100 * stats.pixel_share[c]:.2f} %",
                    f"{stats.image_counts[c]} ({100 * stats.image_share[c]:.1f} %)"]
        cells.append(row)
    widths = [max(len(r[k]) for r in cells) for k in range(len(cells[0]))]
    lines = [" | ".join(cell.rjust(w) if k else cell for k, (cell, w) in
                        enumerate(zip(row, widths, strict=True))) for row in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def stats_warnings(class_names: Sequence[str], train: ClassStats,
                   val: ClassStats | None = None) -> list[str]:
    """Warnings about classes without training pixels, present in fewer than
    :data:`RARE_IMAGE_SHARE` of the training images, or without a validation pixel."""
    out = []
    for c, name in enumerate(class_names):
        n = int(train.image_counts[c])
        if n == 0:
            out.append(f"{name} has no pixel in the training split: it cannot be learned")
        elif train.image_share[c] < RARE_IMAGE_SHARE:
            out.append(f"rare across images: {name} in {n} of {train.num_images} training "
                       f"images ({100 * train.image_share[c]:.1f} %): most batches hold none "
                       f"of it. data.sampler=rare_class draws its {n} image(s) more often, "
                       "which helps when they are many and over-fits when they are few "
                       "(docs/datasets.md, 'When to use it')")
        if val is not None and val.pixels[c] == 0:
            out.append(f"{name} has no pixel in the validation split: its IoU is undefined")
    return out
