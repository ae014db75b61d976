"""loss=crl / loss=ohem_crl in the training app: configs, class counts for alpha, start-up
errors, a tiny fit that logs the rectification statistics."""

import data_trees
import numpy as np
import pytest
from app_helpers import TINY, compose_train
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segohem.data import DatasetError, FolderDataset
from segohem.data.class_counts import class_pixel_counts
from segohem.losses import CrossEntropyLoss, MinorityRectificationLoss, OhemCELoss
from segohem.training import ConfigError, train


@pytest.mark.parametrize(("option", "base"), [("crl", CrossEntropyLoss),
                                              ("ohem_crl", OhemCELoss)])
def test_loss_configs_build_the_rectification_loss(option, base):
    cfg = compose_train([f"loss={option}"])
    loss = instantiate(cfg.loss)
    assert isinstance(loss, MinorityRectificationLoss) and isinstance(loss.base, base)
    assert (loss.k, loss.rho, loss.alpha) == (32, 0.5, 0.5)


def test_class_pixel_counts_reads_masks_only(tmp_path):
    root = data_trees.make_folder(tmp_path / "data", stems=("a", "b"), num_classes=3,
                                  size=(8, 10))
    dataset = FolderDataset(root, "all", classes=["x", "y", "z"])
    expected = np.zeros(3, np.int64)
    for i in range(len(dataset)):
        mask = dataset[i]["mask"]
        expected += np.bincount(mask[mask != 255], minlength=3)
    for sample in dataset.samples:  # images are never decoded
        sample.image.write_bytes(b"not an image")
    assert class_pixel_counts(dataset, 3).tolist() == expected.tolist()
    with pytest.raises(DatasetError, match=r"mask values \[2\] are neither class ids in \[0, 2\)"):
        class_pixel_counts(dataset, 2)


def test_alpha_from_eta_is_set_from_the_training_set_at_start_up(tmp_path, caplog):
    cfg = compose_train([*TINY, "loss=crl", "loss.alpha=null",
                         "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                         "logger=none", "callbacks=none"], tmp_path / "run")
    counts = class_pixel_counts(instantiate(cfg.dataset.train_set, transform=None), 6)
    shares = counts / counts.sum()
    expected = np.clip(shares - 1 / 6, 0, None).sum()  # eta 0.01 x the paper's percentage
    assert 0.2 < expected < 1
    with caplog.at_level("INFO", logger="segohem.training"):
        train(cfg)
    line = next(r.getMessage() for r in caplog.records if "loss alpha" in r.getMessage())
    assert f"loss alpha = {expected:.4g}" in line
    assert "background" in line and "%" in line


def test_all_ignore_training_masks_fail_before_training(tmp_path):
    root = data_trees.make_folder(tmp_path / "data", stems=("a", "b", "c"),
                                  splits={"train": ["a", "b"], "val": ["c"]},
                                  raw_values=[255], size=(32, 32))
    cfg = compose_train(["dataset=folder", f"dataset.root={root}", "dataset.num_classes=2",
                         "dataset.class_names=[bg,fg]", "dataset.num_workers=0",
                         "loss=crl", "loss.alpha=null", "trainer.max_epochs=1",
                         "min_train_steps=null"],
                        tmp_path / "run")
    with pytest.raises(ConfigError, match=r"loss.alpha=null: .*no class \(\['bg', 'fg'\]\)"):
        train(cfg)


@pytest.mark.slow
def test_tiny_fit_logs_rectification_statistics(tmp_path):
    cfg = compose_train([*TINY, "loss=ohem_crl", "loss.k=8"], tmp_path / "run")
    best = train(cfg)
    assert best is not None and np.isfinite(best)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    for name in ("minority_classes", "rectification", "active_triplets", "alpha"):
        assert f"train/crl/{name}_epoch" in tags, tags
    assert "train/ohem/kept_fraction_epoch" in tags  # the OHEM base's statistics pass through
    minority = events.Scalars("train/crl/minority_classes_epoch")[-1].value
    assert minority >= 1  # the synthetic set's line and dot classes are rare in every batch
