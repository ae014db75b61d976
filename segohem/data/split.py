"""A held-out validation split for a folder that has none: reproducible (its own
``split_seed``), stratified by class, and kept with the run (``<run dir>/splits/``, the
checkpoint) so that a resumed fit, ``segohem-eval`` and ``segohem-predict`` use the same lists.

:func:`stratified_split` is the pure rule; :class:`HeldOutSplit` the record that travels;
:func:`setup_held_out` what the data module does at the start of a fit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segohem.data.datasets._common import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "val")


@dataclass
class HeldOutSplit:
    """The stems of a held-out split and how they were drawn (``checkpoint["segohem"]
    ["split"]`` holds :meth:`as_dict`)."""

    train: list[str]
    val: list[str]
    val_fraction: float
    split_seed: int
    root: str = ""
    unmatched: list[int] = field(default_factory=list)
    """Classes in >= 2 images that could not be put in both splits (val was full)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> HeldOutSplit:
        known = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        return cls(**{**known, "train": list(known.get("train") or []),
                      "val": list(known.get("val") or [])})


def check_split_options(val_fraction: float, split_seed: int) -> None:
    """A clear error for a bad ``dataset.val_fraction`` / ``dataset.split_seed``."""
    if isinstance(val_fraction, bool) or not 0.0 < float(val_fraction) < 1.0:
        raise DatasetError(f"dataset.val_fraction={val_fraction!r}: the share of the images "
                           f"held out for validation must be in (0, 1), e.g. 0.15.")
    if isinstance(split_seed, bool) or int(split_seed) != split_seed:
        raise DatasetError(f"dataset.split_seed={split_seed!r} must be an integer.")


def stratified_split(stems: Sequence[str], presence: np.ndarray, val_fraction: float,
                     split_seed: int) -> tuple[list[str], list[str], list[int]]:
    """Split ``stems`` into (train, val) stems, deterministic given ``split_seed``.

    Greedy: classes in order of how few images contain them (ties: class id); for each class in
    at least two images and not yet in val, one random image containing it moves to val. An
    image never moves when it is the last training image of any class, so every class stays in
    train. Then val is filled at random up to ``round(N * val_fraction)`` images (at least 1,
    at most N - 1).

    Args:
        stems: N image stems (their order is part of the input: pass them sorted).
        presence: ``(N, C)`` bool, class ``c`` occurs in image ``i``.
        val_fraction: the share of images for val, in (0, 1).
        split_seed: seeds the draw (independent of the training seed).

    Returns:
        Sorted train stems, sorted val stems, and the classes (in >= 2 images) that did not
        end up in both splits.
    """
    check_split_options(val_fraction, split_seed)
    n = len(stems)
    presence = np.asarray(presence, bool).reshape(n, -1)
    if n < 2:
        raise DatasetError(f"{n} image(s): too few to hold out a validation share "
                           f"(dataset.val_fraction={val_fraction}); add images, or give explicit "
                           f"lists splits/train.txt + splits/val.txt.")
    n_val = min(max(round(n * float(val_fraction)), 1), n - 1)
    rng = np.random.default_rng(int(split_seed))
    in_val = np.zeros(n, bool)
    train_count = presence.sum(0)  # images per class still in train

    def movable(i: int) -> bool:
        return not in_val[i] and bool((train_count[presence[i]] >= 2).all())

    def move(i: int) -> None:
        in_val[i] = True
        train_count[presence[i]] -= 1

    totals = presence.sum(0)
    for c in sorted(np.flatnonzero(totals >= 2), key=lambda c: (totals[c], c)):
        if in_val.sum() >= n_val:
            break
        if (presence[:, c] & in_val).any():
            continue
        candidates = [i for i in np.flatnonzero(presence[:, c]) if movable(i)]
        if candidates:
            move(int(rng.choice(candidates)))
    order = rng.permutation(n)
    for i in [*[i for i in order if movable(i)], *order]:  # the guarded images first
        if in_val.sum() >= n_val:
            break
        if not in_val[i]:
            move(int(i))
    both = presence[~in_val].any(0) & presence[in_val].any(0)
    unmatched = [int(c) for c in np.flatnonzero((totals >= 2) & ~both)]
    return (sorted(s for s, v in zip(stems, in_val, strict=True) if not v),
            sorted(s for s, v in zip(stems, in_val, strict=True) if v), unmatched)


def read_held_out(ckpt_path: str | os.PathLike) -> HeldOutSplit | None:
    """The held-out split stored in a segohem checkpoint (``checkpoint["segohem"]["split"]``),
    or None (none stored, or a file that safe loading cannot read: Lightning's own load then
    reports it). Memory-mapped: the weights are not read."""
    import torch

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # any failure: the resume itself reports a bad file
        log.warning("Could not read the held-out split of %s (%s); it is drawn anew.",
                    ckpt_path, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    record = (checkpoint.get("segohem") or {}).get("split") if isinstance(checkpoint, dict) \
        else None
    return HeldOutSplit.from_dict(record) if record else None


def write_lists(split: HeldOutSplit, run_dir: str | os.PathLike) -> Path:
    """``<run_dir>/splits/{train,val}.txt`` (one stem per line); returns the folder."""
    folder = Path(run_dir) / "splits"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        (folder / f"{name}.txt").write_text("".join(f"{s}\n" for s in getattr(split, name)))
    return folder


def setup_held_out(train_set: Any, val_set: Any, resume_from: str | None,
                   run_dir: str | os.PathLike | None, report: bool) -> HeldOutSplit | None:
    """At the start of a fit: the held-out split of ``train_set`` / ``val_set`` (folder
    datasets without split files; None for any other data), the checkpoint's lists when
    resuming from one that has them, written to ``<run_dir>/splits/`` and logged (``report``:
    rank 0). Every rank computes (or reads) the same lists itself."""
    split: HeldOutSplit | None = getattr(train_set, "held_out", None)
    if split is None:
        return None
    saved = read_held_out(resume_from) if resume_from else None
    added: list[str] = []
    if saved is not None:
        added = sorted(set(train_set.folder_stems()) - {*saved.train, *saved.val})
        for dataset in (train_set, val_set):
            dataset.reuse_split(saved)
        split = saved
    if not report:
        return split
    where = write_lists(split, run_dir) if run_dir is not None else None
    lists = f"lists in {where}/" if where is not None else "lists not written (no run dir)"
    total = len(split.train) + len(split.val)
    if saved is not None:
        changed = (f"; the folder changed since: {len(added)} new image(s) not used "
                   f"(e.g. {', '.join(added[:3])}); train anew to include them" if added else "")
        log.info("Split: the checkpoint's held-out lists (%d train / %d val images, "
                 "val_fraction=%s, split_seed=%s); %s%s", len(split.train), len(split.val),
                 split.val_fraction, split.split_seed, lists, changed)
        return split
    log.info("Split: no split files under %s: held out %.0f %% (%d of %d images) for validation, "
             "stratified by class, split_seed=%s; %s (set dataset.val_fraction / "
             "dataset.split_seed, or give splits/train.txt + val.txt)", split.root,
             100 * split.val_fraction, len(split.val), total, split.split_seed, lists)
    if split.unmatched:
        names = [train_set.classes[c] for c in split.unmatched]
        log.warning("Split: classes %s are in >= 2 images but not in both splits (the val share "
                    "was full); raise dataset.val_fraction to place them.", names)
    return split
