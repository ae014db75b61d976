"""dataset.crop_size / dataset.scale_range = auto: the rule, its resolution in the composed
config (segohem-train, the scripts), explicit values, and clear errors for bad ones."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from segohem.data import DatasetError
from segohem.data import browser as dataset_browser
from segohem.data.datamodule import SegmentationDataModule
from segohem.data.geometry import (
    check_crop_size,
    check_scale_range,
    derive_geometry,
    image_sizes,
    random_scale,
    resolve_auto_geometry,
)
from segohem.train.run import ConfigError, train
from tests._support import data_trees
from tests._support.configs import compose_train

# --------------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "crop", "scale"), [
    ([(96, 96)] * 5, (96, 96), (1.0, 1.0)),  # small crack / wire images: no rescale
    ([(1024, 2048)] * 3, (512, 512), (0.5, 2.0)),  # Cityscapes-like photos
    ([(64, 64), (96, 128), (200, 300)], (96, 128), (1.0, 1.0)),  # mixed: the median image
    ([(100, 150)] * 2, (96, 128), (1.0, 1.0)),  # rounded down to a multiple of 32
    ([(20, 20)] * 4, (32, 32), (1.0, 1.0)),  # tiny: at least 32 (padded with 255)
    ([(20, 700)], (32, 512), (1.0, 1.0)),  # each side on its own; capped at 512
    ([(1023, 3000)], (512, 512), (1.0, 1.0)),  # short side just under 2 x 512: off
    ([(1024, 1024)], (512, 512), (0.5, 2.0)),  # ... and at 2 x 512: on
    ([(64, 64), (128, 128)], (64, 64), (1.0, 1.0)),  # even count: the lower median
    ([(2000, 1500)] * 3 + [(96, 96)] * 2, (512, 512), (0.5, 2.0)),  # median short side 1500
])
def test_derive_geometry(sizes, crop, scale):
    geometry = derive_geometry(sizes)
    assert geometry.crop_size == crop
    assert geometry.scale_range == scale
    assert geometry.num_images == len(sizes)


def test_derive_geometry_needs_images():
    with pytest.raises(ValueError, match="at least one"):
        derive_geometry([])


def test_log_line():
    assert derive_geometry([(96, 96)] * 200).describe() == (
        "dataset: 200 training images, median 96x96 px -> crop 96x96, random scale off "
        "(images smaller than 2x512 px; set dataset.scale_range=[0.5,2.0] to turn it on)")
    assert derive_geometry([(1024, 2048)] * 3).describe() == (
        "dataset: 3 training images, median 1024x2048 px -> crop 512x512, random scale "
        "x0.5-2 (images at least 2x512 px; set dataset.scale_range=[1,1] to turn it off)")


def test_image_sizes_reads_headers_and_names_bad_files(tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(good)
    jpeg = tmp_path / "b.jpg"
    Image.fromarray(np.zeros((33, 17, 3), np.uint8)).save(jpeg)
    bad = tmp_path / "c.png"
    bad.write_bytes(b"not an image")
    assert image_sizes([good, jpeg]) == [(40, 70), (33, 17)]
    assert image_sizes([good, bad], skip_unreadable=True) == [(40, 70)]
    with pytest.raises(DatasetError, match=r"c\.png: unreadable image file"):
        image_sizes([good, bad])


def test_random_scale_transform():
    off = random_scale([1, 1])
    assert isinstance(off, A.NoOp) and off.p == 0  # no work, no random draw
    on = random_scale([0.5, 2.0])
    assert isinstance(on, A.RandomScale) and on.scale_limit == pytest.approx((-0.5, 1.0))
    with pytest.raises(ConfigError, match="resolve_auto_geometry"):
        random_scale("auto")


# --------------------------------------------------------------------------------------------
# Bad values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["big", 512, [512], [512, 512, 3], [0, 64], [-32, 64],
                                   [64.5, 64], ["64", "64"], [True, 64]])
def test_bad_crop_size(value):
    with pytest.raises(ConfigError, match=r"dataset\.crop_size=.*expected auto .* or \[height, "
                                          r"width\].*dataset\.crop_size=\[512,512\]"):
        check_crop_size(OmegaConf.create({"v": value}).v if isinstance(value, list) else value)


@pytest.mark.parametrize("value", ["on", 0.5, [0.5], [2.0, 0.5], [0, 1], [-0.5, 1.0],
                                   [float("nan"), 1.0], ["0.5", "2"]])
def test_bad_scale_range(value):
    with pytest.raises(ConfigError, match=r"dataset\.scale_range=.*0 < min <= max.*"
                                          r"dataset\.scale_range=\[0\.5,2\.0\]"):
        check_scale_range(value)


def test_good_values_pass():
    assert check_crop_size("auto") is None and check_scale_range("auto") is None
    assert check_crop_size([100, 200]) == (100, 200)  # any size: the model pads to 32
    assert check_scale_range([1, 1]) == (1.0, 1.0)
    assert check_scale_range(OmegaConf.create([0.75, 1.5])) == (0.75, 1.5)


def test_bad_value_fails_in_train_before_anything_is_built(folder_auto, tmp_path):
    cfg = compose_train([*folder_auto, "dataset.scale_range=[2,1]"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"dataset\.scale_range=\[2,1\]"):
        train(cfg)


# --------------------------------------------------------------------------------------------
# The composed config
# --------------------------------------------------------------------------------------------


@pytest.fixture
def folder_auto(folder_dataset: list[str]) -> list[str]:
    """dataset=folder overrides on the tiny 64x96 tree (tests/conftest.py), crop_size left at
    auto."""
    return [o for o in folder_dataset if not o.startswith("dataset.crop_size")]


def folder_of_size(tmp_path: Path, size: tuple[int, int]) -> list[str]:
    """dataset=folder overrides on a tiny tree of ``size`` images, crop_size left at auto."""
    root = data_trees.make_folder(tmp_path / "data", stems=("a", "b", "c", "d"),
                                  splits={"train": ["a", "b", "c"], "val": ["d"]}, size=size)
    return ["dataset=folder", f"dataset.root={root}", "dataset.num_classes=3",
            "dataset.class_names=[a,b,c]", "dataset.batch_size=2", "dataset.num_workers=0"]


def test_folder_auto_resolves_from_the_images(folder_auto, tmp_path, caplog):
    cfg = compose_train(folder_auto, tmp_path / "run")
    assert cfg.dataset.crop_size == "auto" and cfg.dataset.scale_range == "auto"
    with caplog.at_level(logging.INFO, logger="segohem.data.geometry"):
        geometry = resolve_auto_geometry(cfg.dataset)
    assert geometry.crop_size == (64, 96) and geometry.scale_range == (1.0, 1.0)
    assert list(cfg.dataset.crop_size) == [64, 96] and list(cfg.dataset.scale_range) == [1, 1]
    assert ("dataset: 3 training images, median 64x96 px -> crop 64x96, random scale off"
            in caplog.text)
    # The interpolations see the resolved values; what a run saves holds them.
    saved = OmegaConf.to_container(cfg, resolve=True)["dataset"]
    assert saved["train_transform"]["transforms"][1]["min_height"] == 64
    assert saved["train_transform"]["transforms"][2]["width"] == 96
    data = SegmentationDataModule(instantiate(cfg.dataset.train_set),
                                  instantiate(cfg.dataset.val_set), batch_size=2, num_workers=0)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 96) and batch["mask"].shape == (2, 64, 96)
    assert resolve_auto_geometry(cfg.dataset) is None  # resolved once: nothing left to do


def test_folder_auto_large_photos_scale_on(tmp_path):
    cfg = compose_train(folder_of_size(tmp_path, (1024, 1100)), tmp_path / "run")
    geometry = resolve_auto_geometry(cfg.dataset)
    assert geometry.crop_size == (512, 512) and geometry.scale_range == (0.5, 2.0)
    pipeline = instantiate(cfg.dataset.train_transform)
    assert isinstance(pipeline.transforms[0], A.RandomScale)
    assert pipeline.transforms[0].scale_limit == pytest.approx((-0.5, 1.0))


def test_explicit_values_override_auto(folder_auto, tmp_path, caplog):
    cfg = compose_train([*folder_auto, "dataset.crop_size=[32,32]",
                         "dataset.scale_range=[0.5,2.0]"], tmp_path / "run")
    assert resolve_auto_geometry(cfg.dataset) is None  # nothing to derive, nothing read
    pipeline = instantiate(cfg.dataset.train_transform)
    assert isinstance(pipeline.transforms[0], A.RandomScale)
    item = instantiate(cfg.dataset.train_set)[0]
    assert item["image"].shape == (3, 32, 32)
    # One explicit, one auto: only the auto one is derived, the line says which is which.
    cfg = compose_train([*folder_auto, "dataset.crop_size=[32,64]"], tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="segohem.data.geometry"):
        geometry = resolve_auto_geometry(cfg.dataset)
    assert geometry.crop_size == (32, 64) and geometry.scale_range == (1.0, 1.0)
    assert "crop 32x64 (dataset.crop_size), random scale off (images smaller" in caplog.text


def test_fixed_photo_datasets_keep_their_geometry_and_accept_auto(dataset_tree, tmp_path):
    overrides = dataset_tree("cityscapes")
    cfg = compose_train(overrides, tmp_path / "run")
    before = OmegaConf.to_container(cfg.dataset)
    assert resolve_auto_geometry(cfg.dataset) is None
    assert OmegaConf.to_container(cfg.dataset) == before  # nothing read, nothing changed
    cfg = compose_train([*overrides, "dataset.crop_size=auto", "dataset.scale_range=auto"],
                        tmp_path / "run")
    geometry = resolve_auto_geometry(cfg.dataset)  # tiny 64x96 tree
    assert geometry.crop_size == (64, 96) and geometry.scale_range == (1.0, 1.0)
    assert instantiate(cfg.dataset.train_set)[0]["image"].shape == (3, 64, 96)


def test_skip_bad_leaves_unreadable_images_out(folder_auto, tmp_path):
    overrides = folder_auto
    root = Path(next(o for o in overrides if o.startswith("dataset.root=")).split("=", 1)[1])
    image = next(p for p in sorted((root / "images").iterdir()) if p.stem == "a")
    image.write_bytes(b"broken")
    cfg = compose_train(overrides, tmp_path / "run")
    with pytest.raises(DatasetError, match=r"a\.png: unreadable image file"):
        resolve_auto_geometry(cfg.dataset)
    cfg = compose_train([*overrides, "dataset.skip_bad=true"], tmp_path / "run")
    assert resolve_auto_geometry(cfg.dataset).num_images == 2


def test_empty_or_missing_train_split_raises_the_dataset_error(folder_auto, tmp_path):
    cfg = compose_train([*folder_auto, "dataset.train_split=nosuchsplit"],
                        tmp_path / "run")
    with pytest.raises(DatasetError, match="nosuchsplit"):
        resolve_auto_geometry(cfg.dataset)
    cfg = compose_train([*folder_auto, f"dataset.root={tmp_path / 'absent'}"],
                        tmp_path / "run")
    with pytest.raises(DatasetError, match="absent"):
        resolve_auto_geometry(cfg.dataset)


def test_synthetic_has_nothing_to_resolve(tmp_path):
    cfg = compose_train([], tmp_path / "run")
    assert resolve_auto_geometry(cfg.dataset) is None


def test_browse_dataset_shows_the_resolved_pipeline(folder_auto, tmp_path, capsys):
    out = tmp_path / "grid.png"
    dataset_browser.main(["--num", "2", "--out", str(out), "--no-legend", *folder_auto])
    assert "-> crop 64x96, random scale off" in capsys.readouterr().out
    pad = dataset_browser.PAD
    with Image.open(out) as im:  # two rows of 64x96 tiles
        assert im.size == (3 * 96 + 4 * pad, 2 * 64 + 3 * pad)


def test_train_saves_the_resolved_geometry(folder_auto, tmp_path, caplog):
    run_dir = tmp_path / "run"
    cfg = compose_train([*folder_auto, "trainer.max_epochs=1", "min_train_steps=null",
                         "logger=none",
                         "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"],
                        run_dir)
    with caplog.at_level(logging.INFO, logger="segohem.data.geometry"):
        train(cfg)
    assert "-> crop 64x96, random scale off" in caplog.text
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    saved = ckpt["segohem"]["config"]["dataset"]
    assert saved["crop_size"] == [64, 96] and saved["scale_range"] == [1.0, 1.0]
    assert saved["train_transform"]["transforms"][0]["scale_range"] == [1.0, 1.0]
