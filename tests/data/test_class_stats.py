"""segohem.data.class_stats: pixel and image shares per class of a tiny tree with known content,
the mask cache (hit, invalidation, unwritable folder), the start-up table and warnings of the
data module, and the ``data`` section of metrics.json."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from segohem.data import DatasetError, FolderDataset, SyntheticDataset
from segohem.data.class_stats import (
    ClassStats,
    class_statistics,
    stats_table,
    stats_warnings,
)
from segohem.data.datamodule import SegmentationDataModule
from segohem.train.callbacks.metrics_writer import MetricsWriter, data_section
from tests._support import data_trees

NAMES = ["ground", "part", "speck"]


def train_masks() -> list[np.ndarray]:
    """4 masks 8 x 8: ``speck`` (2) only in the first, 3 pixels; ``part`` (1) in two, 32 + 16
    pixels; two ignored pixels; ``ground`` (0) everywhere else (254 - 51 = 203 pixels)."""
    masks = [np.zeros((8, 8), np.uint8) for _ in range(4)]
    masks[0][:4] = 1
    masks[0][7, :3] = 2
    masks[0][7, 7] = 255
    masks[1][:2] = 1
    masks[3][0, 0] = 255
    return masks


def val_masks() -> list[np.ndarray]:
    """2 masks 8 x 8 without ``speck``."""
    masks = [np.zeros((8, 8), np.uint8) for _ in range(2)]
    masks[1][2:4, 2:4] = 1
    return masks


def make_tree(root: Path, extra_ground: int = 0) -> Path:
    """``images/`` + ``masks/`` + ``splits/{train,val}.txt``: :func:`train_masks` (plus
    ``extra_ground`` all-ground training masks) and :func:`val_masks`."""
    splits = {"train": [*train_masks(), *[np.zeros((8, 8), np.uint8)] * extra_ground],
              "val": val_masks()}
    for split, masks in splits.items():
        stems = [f"{split}{i:02d}" for i in range(len(masks))]
        for i, (stem, mask) in enumerate(zip(stems, masks, strict=True)):
            data_trees.save_png(root / "masks" / f"{stem}.png", mask)
            data_trees.save_image(root / "images" / f"{stem}.png",
                                  data_trees.label_image(np.where(mask == 255, 0, mask), i))
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


def folder(root: Path, split: str = "train") -> FolderDataset:
    return FolderDataset(root, split, classes=NAMES)


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "data")


def test_pixel_and_image_shares_are_exact(tree, tmp_path):
    stats = class_statistics(folder(tree), 3, cache_dir=tmp_path / "cache", workers=2)
    assert stats.num_images == 4
    assert stats.pixels.dtype == np.int64 and stats.pixels.tolist() == [203, 48, 3]
    assert stats.presence.shape == (4, 3) and stats.presence.dtype == bool
    assert stats.presence.tolist() == [[True, True, True], [True, True, False],
                                       [True, False, False], [True, False, False]]
    assert stats.pixel_share.tolist() == pytest.approx([203 / 254, 48 / 254, 3 / 254])
    assert stats.image_share.tolist() == [1.0, 0.5, 0.25]
    assert stats.image_counts.tolist() == [4, 2, 1]
    # Through a Subset (a held-out split of one folder): the rows of its indices.
    subset = class_statistics(Subset(folder(tree), [1, 0]), 3, cache_dir=tmp_path / "cache")
    assert subset.presence.tolist() == stats.presence[[1, 0]].tolist()


def test_a_second_call_decodes_no_mask_and_an_edited_mask_is_decoded_again(tree, tmp_path,
                                                                          monkeypatch):
    cache = tmp_path / "cache"
    first = class_statistics(folder(tree), 3, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    decoded: list[Path] = []
    real = FolderDataset.load_mask

    def spy(self, i):
        decoded.append(self.samples[i].mask)
        return real(self, i)

    def refuse(self, i):
        raise AssertionError("a mask was decoded on a cache hit")

    monkeypatch.setattr(FolderDataset, "load_mask", refuse)
    again = class_statistics(folder(tree), 3, cache_dir=cache)
    assert again.pixels.tolist() == first.pixels.tolist()
    assert again.presence.tolist() == first.presence.tolist()

    monkeypatch.setattr(FolderDataset, "load_mask", spy)
    edited = tree / "masks" / "train03.png"
    mask = np.zeros((8, 8), np.uint8)
    mask[5, 5:7] = 2  # two more speck pixels, in a second image
    data_trees.save_png(edited, mask)
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks
    changed = class_statistics(folder(tree), 3, cache_dir=cache)
    assert decoded == [edited]  # only the edited mask
    assert changed.pixels.tolist() == [202, 48, 5]
    assert changed.image_counts.tolist() == [4, 2, 2]

    decoded.clear()  # a touch alone (same content, new mtime) is decoded again too
    os.utime(tree / "masks" / "train00.png", ns=(0, 10**18))
    assert class_statistics(folder(tree), 3, cache_dir=cache).pixels.tolist() == \
        changed.pixels.tolist()
    assert decoded == [tree / "masks" / "train00.png"]
    # Other dataset settings (here the class count) are another cache entry: decoded, checked.
    with pytest.raises(DatasetError, match=r"mask values \[2\] are neither class ids in \[0, 2\)"):
        class_statistics(folder(tree), 2, cache_dir=cache)


def test_an_unwritable_cache_is_logged_and_the_run_goes_on(tree, tmp_path, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would be")
    with caplog.at_level(logging.WARNING, logger="segohem"):
        stats = class_statistics(folder(tree), 3, cache_dir=blocker / "class_stats")
    assert stats.pixels.tolist() == [203, 48, 3]
    assert any("Could not write the class statistics cache" in r.getMessage()
               for r in caplog.records)


def test_datasets_without_mask_files_are_counted_without_a_cache(tmp_path):
    data = SyntheticDataset(split="val", num_samples=4, image_size=32)
    stats = class_statistics(data, 6, cache_dir=tmp_path / "cache")
    expected = np.zeros((4, 6), np.int64)
    for i in range(4):
        mask = data[i]["mask"]
        expected[i] = np.bincount(mask[mask != 255], minlength=6)
    assert stats.pixels.tolist() == expected.sum(0).tolist()
    assert stats.presence.tolist() == (expected > 0).tolist()
    assert not (tmp_path / "cache").exists()
    items = [{"mask": torch.tensor([[0, 1], [1, 255]])}, {"mask": torch.zeros(2, 2)}]
    assert class_statistics(items, 2).image_share.tolist() == [1.0, 0.5]


def test_warnings_name_image_rare_classes_and_classes_absent_from_val():
    train = ClassStats.from_counts(np.array([[50, 9, 0]] * 4 + [[50, 0, 0]] * 116))
    val = ClassStats.from_counts(np.array([[40, 0, 0], [40, 0, 0]]))
    warnings = stats_warnings(["ground", "crack", "hole"], train, val)
    assert warnings == [
        "rare across images: crack in 4 of 120 training images (3.3 %): most batches hold "
        "none of it. data.sampler=rare_class draws its 4 image(s) more often, which helps when "
        "they are many and over-fits when they are few (docs/datasets.md, 'When to use it')",
        "crack has no pixel in the validation split: its IoU is undefined",
        "hole has no pixel in the training split: it cannot be learned",
        "hole has no pixel in the validation split: its IoU is undefined"]
    assert stats_warnings(["ground", "crack", "hole"], train) == [warnings[0], warnings[2]]


def test_the_data_module_logs_the_table_and_warnings_once(tmp_path, caplog):
    root = make_tree(tmp_path / "data", extra_ground=8)  # speck: 1 of 12 training images
    data = SegmentationDataModule(folder(root), folder(root, "val"), batch_size=2,
                                  num_workers=0, stats_cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="segohem"):
        data.setup("fit")
    assert data.train_stats.num_images == 12 and data.val_stats.num_images == 2
    assert data.val_stats.image_counts.tolist() == [2, 1, 0]
    messages = [r.getMessage() for r in caplog.records]
    table = next(m for m in messages if m.startswith("Class statistics (share"))
    lines = table.splitlines()
    assert "train images (12)" in lines[1] and "val images (2)" in lines[1]
    assert lines[-1].split() == ["speck", "|", "0.39", "%", "|", "1", "(8.3", "%)", "|",
                                 "0.00", "%", "|", "0", "(0.0", "%)"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["rare across images: speck in 1 of 12 training images (8.3 %): most "
                      "batches hold none of it. data.sampler=rare_class draws its 1 image(s) "
                      "more often, which helps when they are many and over-fits when they are "
                      "few (docs/datasets.md, 'When to use it')",
                      "speck has no pixel in the validation split: its IoU is undefined"]
    caplog.clear()
    data.setup("fit")  # once per run
    data.setup("validate")
    assert not caplog.records


def test_the_table_lists_every_class_of_both_splits(tree, tmp_path):
    train = class_statistics(folder(tree), 3, cache_dir=tmp_path)
    val = class_statistics(folder(tree, "val"), 3, cache_dir=tmp_path)
    lines = stats_table(NAMES, train, val).splitlines()
    assert len(lines) == 2 + len(NAMES)
    assert [cell.strip() for cell in lines[2].split("|")] == [
        "ground", "79.92 %", "4 (100.0 %)", "96.88 %", "2 (100.0 %)"]
    assert len(stats_table(NAMES, train).splitlines()[0].split("|")) == 3


def test_metrics_json_holds_the_data_section(tree, tmp_path):
    data = SegmentationDataModule(folder(tree), folder(tree, "val"), num_workers=0,
                                  stats_cache_dir=str(tmp_path / "cache"))
    data.setup("fit")
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, datamodule=data)
    module = SimpleNamespace(last_val={"epoch": 0, "mIoU": 0.5},
                             best_val={"epoch": 0, "mIoU": 0.5}, mining_summary={},
                             class_names=NAMES)
    MetricsWriter(tmp_path / "run" / "metrics.json").on_validation_end(trainer, module)
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["data"]["train"]["images"] == 4
    assert report["data"]["train"]["classes"]["speck"] == {
        "pixels": 3, "pixel_share": pytest.approx(3 / 254), "images": 1, "image_share": 0.25}
    assert report["data"]["val"]["classes"]["speck"]["images"] == 0
    assert list(data_section(data, ["a", "b"])["train"]["classes"]) == [
        "class_0", "class_1", "class_2"]  # names that do not fit: by index
    assert data_section(SimpleNamespace(), NAMES) == {}
    sampled = SimpleNamespace(val_stats=data.val_stats,
                              sampler_summary={"name": "rare_class", "temperature": 0.01})
    assert data_section(sampled, NAMES) == {
        "val": report["data"]["val"], "sampler": {"name": "rare_class", "temperature": 0.01}}


def test_a_training_run_logs_the_table_and_reports_the_shares(tmp_path, monkeypatch, caplog):
    from segohem.train.run import train
    from tests._support.configs import compose_train, real_dataset_overrides

    monkeypatch.setenv("SEGOHEM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = compose_train([*real_dataset_overrides("folder", tmp_path / "data"),
                         "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"],
                        tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="segohem"):
        train(cfg)
    assert sum(r.getMessage().startswith("Class statistics (share") for r in caplog.records) == 1
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    train_set = FolderDataset(tmp_path / "data", "train", classes=["a", "b", "c"])
    expected = class_statistics(train_set, 3)
    assert report["data"]["train"]["images"] == 3 and report["data"]["val"]["images"] == 1
    assert [report["data"]["train"]["classes"][n]["pixel_share"] for n in "abc"] == \
        pytest.approx(expected.pixel_share.tolist())
    assert list((tmp_path / "cache" / "class_stats").glob("*.npz"))


def test_the_loss_class_counts_are_the_statistics_pixels():
    from segohem.losses import CrossEntropyLoss, MinorityRectificationLoss
    from segohem.train.loss_counts import set_class_counts

    loss = MinorityRectificationLoss(CrossEntropyLoss(), k=4, alpha=None)
    stats = ClassStats.from_counts(np.array([[900, 0], [0, 100]]))
    set_class_counts(loss, object(), ["a", "b"], 255, stats=stats)  # the set is never read
    assert not loss.needs_class_counts
    reference = MinorityRectificationLoss(CrossEntropyLoss(), k=4, alpha=None)
    assert loss.current_alpha() == reference.set_class_counts([900, 100])
