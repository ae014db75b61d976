"""Finding the samples of a split on disk: required folders, split list files, images paired
with their masks; every missing piece is a :class:`~segohem.data.DatasetError` naming it and
the expected layout."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from segohem.data.datasets._common import DatasetError, Sample
from segohem.files import IMAGE_SUFFIXES


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
