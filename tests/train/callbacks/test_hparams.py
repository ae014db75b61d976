"""The HPARAMS tab compares runs: the knobs a user sets or sweeps, readable names, no wiring,
and the best epoch's metrics."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segohem.train.callbacks.hparams import flatten, hparams_metrics, run_hparams
from tests._support.tensorboard import hparams_of


def test_hparams_are_flattened():
    flat = flatten({"loss": {"thresh": 0.7, "n_min": None, "per_image": False},
                    "model": {"dims": [1, 2]}}, sep=".")
    assert flat == {"loss.thresh": 0.7, "loss.n_min": "null", "loss.per_image": "false",
                    "model.dims": "[1, 2]"}
    # One column per list, also for lists of dicts and empty lists (unlike Lightning's).
    flat = flatten({"t": {"transforms": [{"_target_": "A", "p": 0.5}], "ignore": []}})
    assert flat == {"t/transforms": "[{'_target_': 'A', 'p': 0.5}]", "t/ignore": "[]"}


CONFIG = {
    "seed": 3, "min_train_steps": 3000,
    "loss": {"_target_": "segohem.losses.OhemCELoss", "thresh": 0.7, "n_min": None},
    "model": {"_target_": "segohem.models.build_model", "_convert_": "all", "arch": "Unet",
              "encoder_name": "resnet18", "encoder_weights": None, "in_channels": 3},
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.003,
                  "weight_decay": 0.0001, "betas": [0.9, 0.999]},
    "scheduler": None,
    "dataset": {"name": "folder", "root": "/data/x", "crop_size": [64, 64], "batch_size": 8,
                "num_classes": 3, "num_workers": 4, "train_set": {"_target_": "X"}},
    "callbacks": {"image_logger": {"_target_": "Y", "every_n_epochs": 1}},
    "logger": {"tensorboard": {"_target_": "Z", "save_dir": "/out"}},
    "paths": {"output_dir": "/out"}, "trainer": {"accelerator": "cpu", "max_epochs": 18},
}


def test_run_hparams_keep_the_knobs_and_drop_the_wiring():
    hp = run_hparams(CONFIG, {"loss": "ohem", "scheduler": "none"},
                     ["loss=ohem", "loss.thresh=0.7", "dataset.root=/data/x", "seed=3",
                      "dataset.num_workers=0", "+callbacks.x=1", "trainer.max_epochs=18",
                      "hydra.run.dir=/out", "optimizer.betas=[0.9,0.99]"],
                     {"trainer.precision": "32-true", "trainer.devices": 1,
                      "trainer.max_epochs": 18, "trainer.max_steps": -1})
    assert hp == {
        "loss": "ohem", "loss.thresh": 0.7, "loss.n_min": "null",
        "model": "build_model", "model.arch": "Unet", "model.encoder_name": "resnet18",
        "model.encoder_weights": "null", "optimizer": "AdamW", "optimizer.lr": 0.003,
        "optimizer.weight_decay": 0.0001, "scheduler": "none", "dataset": "folder",
        "dataset.crop_size": "[64, 64]", "dataset.batch_size": 8, "dataset.num_classes": 3,
        "seed": 3, "min_train_steps": 3000, "trainer.precision": "32-true",
        "trainer.devices": 1, "trainer.max_epochs": 18, "trainer.max_steps": -1,
        "optimizer.betas": "[0.9, 0.999]",  # typed on the command line: a column
    }
    assert hparams_metrics(["a", "b"]) == ["val/mIoU_best", "val/mAcc", "val/IoU_best/a",
                                           "val/IoU_best/b"]


@pytest.mark.slow
def test_a_multirun_logs_the_swept_knobs_and_best_epoch_metrics(tmp_path):
    """A 2-job multirun over loss.thresh: each job's event file holds exactly these columns."""
    args = [sys.executable, "-m", "segohem.cli.train", "-m", "loss.thresh=0.6,0.8", "seed=1",
            f"hydra.sweep.dir={tmp_path}", "dataset.image_size=[64,64]",
            "dataset.train_set.num_samples=16", "dataset.val_set.num_samples=4",
            "dataset.num_workers=0", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {
        "loss", "loss.thresh", "loss.n_min", "loss.ignore_index", "loss.per_image",
        "loss.weight", "loss.check_labels", "loss.sync_across_ranks", "loss.dice_weight",
        "loss.ce_weight", "model", "model.arch", "model.encoder_name", "model.encoder_weights",
        "optimizer", "optimizer.lr", "optimizer.weight_decay", "scheduler", "scheduler.power",
        "scheduler.warmup_steps", "scheduler.warmup_start_factor", "scheduler.min_lr",
        "dataset", "dataset.batch_size", "dataset.num_classes", "seed", "min_train_steps",
        "trainer.precision", "trainer.devices", "trainer.max_epochs", "trainer.max_steps",
        "dataset.image_size", "dataset.train_set.num_samples", "dataset.val_set.num_samples"}
    classes = ["background", "blob", "box", "line", "dot", "ring"]
    for job, thresh in (("0", 0.6), ("1", 0.8)):
        hparams, metrics, differs = hparams_of(tmp_path / job / "tensorboard")
        assert set(hparams) == expected, set(hparams) ^ expected
        assert (hparams["loss"], hparams["loss.thresh"], hparams["model"]) == (
            "ohem_dice", pytest.approx(thresh), "unet")
        assert (hparams["seed"], hparams["trainer.precision"]) == (1, "32-true")
        assert differs == {"loss.thresh"}  # TensorBoard lists and shows it first
        assert metrics == ["val/mIoU_best", "val/mAcc",
                           *(f"val/IoU_best/{c}" for c in classes)]
