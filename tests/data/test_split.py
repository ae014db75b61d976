"""The held-out split of a folder without split files (segohem/data/split.py, FolderDataset rule
4): stratified, reproducible from its own split_seed, written to the run dir and the checkpoint,
and reused on resume."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from segohem.data import DatasetError, FolderDataset
from segohem.data.split import HeldOutSplit, read_held_out, stratified_split
from segohem.train.run import train
from tests._support import data_trees as dt
from tests._support.configs import compose_train

CLASSES = ["background", "common", "pair", "trio"]


def write_folder(root: Path, content: dict[str, set[int]], size: tuple[int, int] = (16, 16)
                 ) -> Path:
    """``root/images/<stem>.png`` + ``root/masks/<stem>.png``, the mask holding background (0)
    and a stripe of each class in ``content[stem]``."""
    for index, (stem, classes) in enumerate(content.items()):
        mask = np.zeros(size, np.uint8)
        for c in sorted(classes):
            mask[2 * c: 2 * c + 2] = c
        dt.save_png(root / "masks" / f"{stem}.png", mask)
        dt.save_image(root / "images" / f"{stem}.png", dt.label_image(mask, index))
    return root


def tree_content(n: int = 20) -> dict[str, set[int]]:
    """``n`` images: ``common`` in every second one, ``pair`` in exactly 2, ``trio`` in 3."""
    content = {f"img_{i:02d}": ({1} if i % 2 else set()) for i in range(n)}
    for stem in ("img_03", "img_11"):
        content[stem].add(2)
    for stem in ("img_04", "img_07", "img_15"):
        content[stem].add(3)
    return content


def presence_of(content: dict[str, set[int]]) -> np.ndarray:
    presence = np.zeros((len(content), len(CLASSES)), bool)
    for i, classes in enumerate(content.values()):
        presence[i, [0, *classes]] = True
    return presence


@pytest.mark.parametrize("seed", range(8))
def test_every_class_in_two_images_lands_in_both_splits(seed):
    content = tree_content()
    presence = presence_of(content)
    train, val, unmatched = stratified_split(list(content), presence, 0.15, seed)
    assert len(val) == 3 and len(train) == 17  # round(20 * 0.15)
    assert sorted(train + val) == sorted(content) and not set(train) & set(val)
    for c in (1, 2, 3):
        holders = {s for s, classes in content.items() if c in classes}
        assert holders & set(val) and holders & set(train), (c, val)
    assert unmatched == []


def test_val_share_follows_the_fraction_and_keeps_one_each_side():
    stems = [f"s{i:03d}" for i in range(200)]
    presence = np.ones((200, 1), bool)
    for fraction, expected in ((0.1, 20), (0.15, 30), (0.5, 100)):
        assert len(stratified_split(stems, presence, fraction, 0)[1]) == expected
    train, val, _ = stratified_split(["a", "b"], np.ones((2, 1), bool), 0.15, 0)
    assert len(train) == len(val) == 1


def test_a_full_val_share_reports_the_classes_left_out():
    # 10 images, val holds 1: two classes each in two images cannot both reach val.
    presence = np.zeros((10, 3), bool)
    presence[:, 0] = True
    presence[[0, 1], 1] = presence[[2, 3], 2] = True
    _, val, unmatched = stratified_split([f"s{i}" for i in range(10)], presence, 0.1, 0)
    assert len(val) == 1 and len(unmatched) == 1 and unmatched[0] in (1, 2)


def test_same_seed_same_lists_other_seed_other_lists():
    content = tree_content(40)
    stems, presence = list(content), presence_of(content)
    first = stratified_split(stems, presence, 0.15, 0)
    assert stratified_split(stems, presence, 0.15, 0) == first
    assert stratified_split(stems, presence, 0.15, 1)[1] != first[1]


@pytest.mark.parametrize(("fraction", "match"), [(0.0, "val_fraction=0.0"),
                                                 (1.0, "val_fraction=1.0")])
def test_bad_fraction_names_the_option(fraction, match):
    with pytest.raises(DatasetError, match=match):
        stratified_split(["a", "b"], np.ones((2, 1), bool), fraction, 0)


def test_folder_dataset_holds_out_from_split_seed_not_the_training_seed(tmp_path):
    root = write_folder(tmp_path / "data", tree_content())
    lists = []
    for training_seed in (0, 123):
        random.seed(training_seed)
        np.random.seed(training_seed)
        torch.manual_seed(training_seed)
        train_set, val_set = (FolderDataset(root, s, classes=CLASSES) for s in ("train", "val"))
        lists.append(([Path(s.image).stem for s in train_set.samples],
                      [Path(s.image).stem for s in val_set.samples]))
        assert train_set.held_out == val_set.held_out and train_set.held_out is not None
    assert lists[0] == lists[1] and len(lists[0][1]) == 3
    assert lists[0][1] == train_set.held_out.val and lists[0][0] == train_set.held_out.train
    other = FolderDataset(root, "val", classes=CLASSES, split_seed=5)
    assert [Path(s.image).stem for s in other.samples] != lists[0][1]
    # The val images really hold every class of two or more images.
    held = np.stack([val_set.load_mask(i) for i in range(len(val_set))])
    assert set(np.unique(held)) == {0, 1, 2, 3}


def test_explicit_splits_win_over_holding_out(tmp_path):
    root = dt.make_folder(tmp_path / "d", stems=(), splits={"train": ["a", "b", "c"],
                                                            "val": ["d"]})
    val = FolderDataset(root, "val", classes=["x", "y", "z"])
    assert val.held_out is None and [Path(s.image).stem for s in val.samples] == ["d"]


def test_too_few_images_to_split_is_a_clear_error(tmp_path):
    root = write_folder(tmp_path / "one", {"only": {1}})
    with pytest.raises(DatasetError, match=r"too few to hold out.*val_fraction.*splits/train.txt"):
        FolderDataset(root, "train", classes=CLASSES)


def fit_folder(root: Path, run: Path, *extra: str) -> None:
    """A tiny ``segohem-train`` run (in-process) on the folder ``root`` into ``run``."""
    train(compose_train([
        "dataset=folder", f"dataset.root={root}", f"dataset.num_classes={len(CLASSES)}",
        f"dataset.class_names=[{','.join(CLASSES)}]", "dataset.crop_size=[16,16]",
        "dataset.scale_range=[1,1]", "dataset.batch_size=4", "dataset.num_workers=0",
        "trainer.max_epochs=1", "min_train_steps=null", "logger=none",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *extra], run))


@pytest.mark.slow
def test_fit_writes_the_lists_keeps_them_in_the_checkpoint_and_resume_reuses_them(
        tmp_path, caplog):
    root = write_folder(tmp_path / "data", tree_content())
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="segohem.data.split"):
        fit_folder(root, run)
    assert "held out 15 % (3 of 20 images) for validation, stratified by class, split_seed=0" \
        in caplog.text
    saved = read_held_out(run / "checkpoints" / "last.ckpt")
    assert isinstance(saved, HeldOutSplit) and len(saved.val) == 3
    assert (run / "splits" / "val.txt").read_text().split() == saved.val
    assert (run / "splits" / "train.txt").read_text().split() == saved.train
    first_epoch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]

    # New images since, and another split_seed: the resumed fit keeps the checkpoint's lists.
    write_folder(tmp_path / "more", {"zz_new_1": {2}, "zz_new_2": {3}})
    for path in (tmp_path / "more").rglob("*.png"):
        shutil.copy(path, root / path.parent.name / path.name)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="segohem.data.split"):
        fit_folder(root, run, "ckpt_path=last", "trainer.max_epochs=2", "dataset.split_seed=7")
    assert "the checkpoint's held-out lists (17 train / 3 val images" in caplog.text
    assert "2 new image(s) not used (e.g. zz_new_1, zz_new_2)" in caplog.text
    resumed = read_held_out(run / "checkpoints" / "last.ckpt")
    assert resumed.train == saved.train and resumed.val == saved.val
    assert (run / "splits" / "val.txt").read_text().split() == saved.val
    assert torch.load(run / "checkpoints" / "last.ckpt",
                      weights_only=True)["epoch"] > first_epoch  # it did resume and train on
