"""Any ``images/`` + ``masks/`` folder pair, matched by file stem."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from segohem.data.datasets._common import (
    IGNORE_INDEX,
    DatasetError,
    Palette,
    Sample,
    SegmentationFolderDataset,
)
from segohem.data.datasets._label_maps import ColourMap, LabelMap
from segohem.data.datasets._layout import missing_files_error, read_id_list
from segohem.data.split import (
    SPLITS,
    HeldOutSplit,
    check_split_options,
    stratified_split,
)
from segohem.files import IMAGE_SUFFIXES
from segohem.viz import fallback_palette

_ALL = ("all", None)
_HELD_OUT: dict[tuple, HeldOutSplit] = {}  # see FolderDataset._hold_out


class FolderDataset(SegmentationFolderDataset):
    """Your own data: images and masks paired by file stem (``a.jpg`` <-> ``a.png``).

    Splits, first match wins:

    1. ``split_file``: a list of stems, one per line (relative to ``root`` or absolute;
       ``{split}`` in it is replaced by the split name, e.g. ``lists/{split}.txt``);
    2. ``<root>/splits/<split>.txt``;
    3. sub-folders ``<images_dir>/<split>/`` and ``<masks_dir>/<split>/``;
    4. otherwise ``"train"`` / ``"val"`` are a held-out split of every image
       (:func:`segohem.data.split.stratified_split`: ``val_fraction`` of the images, drawn
       with ``split_seed``, stratified by class; the masks are read once to know which classes
       each image holds) and ``"all"`` is every image.

    ``split_lists`` (``{"train": [stems], "val": [stems]}``, e.g. a checkpoint's held-out split)
    wins over all of these for the splits it names.

    Masks are either single-channel class ids (8/16-bit grayscale or palette PNGs, read as
    indices) or RGB colour masks (``mask_format="color"``, decoded with ``palette``); with
    ``"auto"`` the file decides. Ids must be class ids ``0..C-1`` or 255 unless ``value_map``
    maps stored values to class ids (or 255); colours must be in ``palette`` or
    ``ignore_colors``. Anything else is an error naming the file.

    Args:
        root: the dataset folder.
        split: split name (see above) or ``"all"``.
        classes: class names; their number is the number of classes.
        images_dir / masks_dir: folder names under ``root``.
        split_file: optional stem list (see above).
        palette: RGB colour per class (for colour masks and visualisation); default:
            :func:`segohem.viz.fallback_palette`.
        value_map: ``{stored value: class id or 255}`` for id masks (e.g. ``{0: 255, 1: 0,
            2: 1}``, or binary masks stored as 0/255: ``{0: 0, 255: 1}``).
        ignore_colors: colours of colour masks that mean "ignore".
        mask_format: ``"auto"``, ``"ids"`` or ``"color"``.
        skip_bad: drop bad samples at construction (printed) instead of raising on load.
        val_fraction: the held-out share of the images when no split is defined (rule 4).
        split_seed: seeds that draw (not the training seed, which loss comparisons vary).
        split_lists: stems per split that replace the split search (see above).

    Attributes:
        held_out: the :class:`~segohem.data.split.HeldOutSplit` of rule 4 (or of
            ``split_lists``), else None.
    """

    layout = """  <root>/
    images/<name>.{jpg,png,...}        (or images/<split>/...)
    masks/<name>.png                   class ids (or RGB colours with a palette)
    splits/<split>.txt                 optional: one <name> per line"""

    def __init__(self, root: str, split: str | None = "all", transform=None, *,
                 classes: Sequence[str], images_dir: str = "images", masks_dir: str = "masks",
                 split_file: str | os.PathLike | None = None,
                 palette: Sequence[Sequence[int]] | None = None,
                 value_map: Mapping[int, int] | None = None,
                 ignore_colors: Sequence[Sequence[int]] = (), mask_format: str = "auto",
                 skip_bad: bool = False, val_fraction: float = 0.15, split_seed: int = 0,
                 split_lists: Mapping[str, Sequence[str]] | None = None) -> None:
        classes = tuple(str(c) for c in classes or ())
        if not classes:
            raise DatasetError("FolderDataset: give the class names (dataset.class_names / "
                               "classes=[...]); their number is the number of classes.")
        if len(classes) >= IGNORE_INDEX:
            raise DatasetError(f"FolderDataset: at most {IGNORE_INDEX - 1} classes are "
                               f"supported (255 is the ignore value), got {len(classes)}.")
        if mask_format not in ("auto", "ids", "color"):
            raise DatasetError(f"FolderDataset: mask_format must be 'auto', 'ids' or 'color', "
                               f"got {mask_format!r}.")
        self.classes = classes
        if palette is not None:
            palette = tuple(tuple(int(c) for c in colour) for colour in palette)
            if len(palette) != len(classes) or any(len(c) != 3 for c in palette):
                raise DatasetError(f"FolderDataset: palette needs one RGB triple per class "
                                   f"({len(classes)}), got {list(palette)}.")
        self.palette: Palette = palette or tuple(fallback_palette(len(classes)))
        self.images_dir, self.masks_dir = images_dir, masks_dir
        self.split_file, self.mask_format = split_file, mask_format
        check_split_options(val_fraction, split_seed)
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self._lists = {k: list(v) for k, v in split_lists.items()} if split_lists else {}
        self.held_out: HeldOutSplit | None = None
        self._skip_bad = skip_bad
        self._mask_options = repr((sorted((value_map or {}).items()), palette, ignore_colors))
        try:
            if value_map:
                self._ids = LabelMap({int(k): int(v) for k, v in value_map.items()},
                                     len(classes), "value_map")
            else:
                self._ids = LabelMap.train_ids(
                    len(classes), f"class ids 0-{len(classes) - 1} and {IGNORE_INDEX}")
            self._colours = ColourMap(self.palette, ignore_colors,
                                      "the palette / ignore_colors") \
                if palette is not None or ignore_colors else None
        except ValueError as err:
            raise DatasetError(f"FolderDataset: {err}.") from None
        super().__init__(root, "all" if split is None else split, transform, skip_bad)

    def _find_samples(self) -> list[Sample]:
        images_root, masks_root = self.root / self.images_dir, self.root / self.masks_dir
        for folder in (images_root, masks_root):
            if not folder.is_dir():
                raise DatasetError(f"FolderDataset: expected folder {folder} does not exist. "
                                   f"Expected layout:\n{self.layout}")
        stems: list[str] | None = None
        draw = False  # rule 4: hold out a share of every image
        if self.split in self._lists:
            stems = self._lists[self.split]
        elif self.split_file:
            path = Path(str(self.split_file).replace("{split}", self.split))
            stems = read_id_list(path if path.is_absolute() else self.root / path, self.layout)
        elif (self.root / "splits" / f"{self.split}.txt").is_file():
            stems = read_id_list(self.root / "splits" / f"{self.split}.txt", self.layout)
        elif self.split not in _ALL and (images_root / self.split).is_dir():
            images_root, masks_root = images_root / self.split, masks_root / self.split
            if not masks_root.is_dir():
                raise DatasetError(f"FolderDataset: {images_root} exists but {masks_root} "
                                   f"does not; split sub-folders must exist in both.")
        elif self.split in SPLITS:
            draw = True
        elif self.split not in _ALL:
            raise DatasetError(
                f"FolderDataset: no split {self.split!r} under {self.root}. Define splits by "
                f"(1) split_file=<list of names>, (2) {self.root}/splits/{self.split}.txt, or "
                f"(3) sub-folders {images_root}/{self.split}/ and {masks_root}/{self.split}/; "
                f"or use split='all' for every image ('train' / 'val' are held out "
                f"automatically when no split is defined).")
        images = _by_stem(images_root)
        masks = _by_stem(masks_root)
        if stems is None:
            stems = sorted(images)
            orphans = sorted(set(masks) - set(images))
            if orphans:
                raise missing_files_error("masks have no image", [masks[s] for s in orphans],
                                          f"(images are looked up in {images_root} by stem)")
        missing_images = [images_root / f"{s}.*" for s in stems if s not in images]
        if missing_images:
            raise missing_files_error("images are", missing_images, (
                "(named by the checkpoint's held-out split lists: restore them, or train anew)"
                if self.split in self._lists else ""))
        missing_masks = [masks_root / f"{s}.png" for s in stems if s not in masks]
        if missing_masks:
            raise missing_files_error("masks are", missing_masks,
                                      f"(masks are looked up in {masks_root} by image stem)")
        samples = [Sample(images[s], masks[s]) for s in stems]
        if draw:
            self.held_out = self._hold_out(samples, stems)
            keep = set(getattr(self.held_out, self.split))
            samples = [s for s, stem in zip(samples, stems, strict=True) if stem in keep]
        return samples

    def _hold_out(self, samples: list[Sample], stems: list[str]) -> HeldOutSplit:
        """Rule 4: the held-out split of every image (cached per folder state and options, so
        the train and the val dataset read the masks once)."""
        key = (str(self.root.resolve()), self.images_dir, self.masks_dir, self.mask_format,
               self._mask_options, self.classes, self.val_fraction,
               self.split_seed, tuple((s.mask.name, s.mask.stat().st_mtime_ns,
                                       s.mask.stat().st_size) for s in samples))
        if key not in _HELD_OUT:
            # Lazy: class_stats imports this package. It reads self.samples via load_mask.
            from segohem.data.class_stats import class_statistics

            self.samples = samples
            try:
                presence = class_statistics(self, len(self.classes), IGNORE_INDEX).presence
                train, val, unmatched = stratified_split(stems, presence, self.val_fraction,
                                                         self.split_seed)
            except DatasetError as err:
                raise DatasetError(f"FolderDataset {self.root}: no split files, and {err}"
                                   ) from None
            if len(_HELD_OUT) > 8:
                _HELD_OUT.clear()
            _HELD_OUT[key] = HeldOutSplit(train, val, self.val_fraction, self.split_seed,
                                          str(self.root), unmatched)
        return _HELD_OUT[key]

    def folder_stems(self) -> list[str]:
        """The stems of every image in ``<root>/<images_dir>/`` (flat layout)."""
        return sorted(_by_stem(self.root / self.images_dir))

    def reuse_split(self, split: HeldOutSplit) -> None:
        """Use ``split``'s lists (a checkpoint's held-out split) instead of drawing one."""
        self._lists = {name: list(getattr(split, name)) for name in SPLITS}
        self.samples = sorted(self._find_samples(), key=lambda s: str(s.image))
        self.held_out = split
        if self._skip_bad:
            self._drop_bad_samples()

    def _decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        colour = raw.ndim == 3
        if self.mask_format == "ids" and colour:
            raise DatasetError(f"{path}: mask_format='ids' but this mask has colour channels; "
                               f"use mask_format='color' with a palette.")
        if self.mask_format == "color" and not colour:
            raise DatasetError(f"{path}: mask_format='color' but this mask is single-channel.")
        if colour:
            if self._colours is None:
                raise DatasetError(f"{path}: an RGB colour mask, but no palette was given to "
                                   f"decode it (dataset palette=[[r, g, b], ...] per class).")
            return self._colours(raw, path)
        return self._ids(raw, path)


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, list[Path]] = defaultdict(list)
    for path in folder.iterdir():
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            files[path.stem].append(path)
    dupes = {s: p for s, p in files.items() if len(p) > 1}
    if dupes:
        shown = "; ".join(", ".join(str(p) for p in sorted(ps)) for ps in dupes.values())
        raise DatasetError(f"FolderDataset: several files share a stem in {folder}: {shown}. "
                           f"Images and masks are paired by stem, so stems must be unique.")
    return {s: p[0] for s, p in files.items()}
