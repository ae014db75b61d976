"""Checkpoints written before the package was cut by purpose still load: the old
``_target_`` paths of their config are rewritten by one table (no alias modules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from segohem.train.checkpoint import MOVED_MODULES, load_model, read_checkpoint, upgrade_targets

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_af4fd2a.ckpt"
"""Written by commit af4fd2a (before the move): Unet / mobilenet_v2 (depth 3), 6 synthetic
classes, one epoch at 64 px; 0.97 MB."""


def test_upgrade_targets_rewrites_old_paths_only():
    config = {"module": {"_target_": "segohem.module.SegmentationModule",
                         "scheduler": {"_target_": "segohem.optim.poly_lr"}},
              "callbacks": {"a": {"_target_": "segohem.callbacks.MetricsWriter"},
                            "b": {"_target_": "segohem.callbacks.OptunaPruning"},
                            "c": {"_target_": "segohem.callbacks.images.SegmentationImageLogger"}},
              "plugins": [{"_target_": "segohem.callbacks.AtomicCheckpointIO"}],
              "old_report": {"_target_": "segohem.report.read_report"},
              "new": {"_target_": "segohem.report.job_status.JobStatusFile"},
              "loss": {"_target_": "segohem.losses.OhemCELoss", "thresh": 0.7},
              "text": "segohem.module.SegmentationModule"}
    new = upgrade_targets(config)
    assert new["module"]["_target_"] == "segohem.train.module.SegmentationModule"
    assert new["module"]["scheduler"]["_target_"] == "segohem.train.optim.poly_lr"
    assert new["callbacks"]["a"]["_target_"] == "segohem.train.callbacks.MetricsWriter"
    assert new["callbacks"]["b"]["_target_"] == "segohem.sweep.pruning.OptunaPruning"
    assert (new["callbacks"]["c"]["_target_"]
            == "segohem.train.callbacks.images.SegmentationImageLogger")
    assert new["plugins"][0]["_target_"] == "segohem.train.callbacks.AtomicCheckpointIO"
    assert new["old_report"]["_target_"] == "segohem.report.metrics_json.read_report"
    assert new["new"] == config["new"] and new["loss"] == config["loss"]
    assert new["text"] == config["text"]  # only _target_ values are paths to rewrite
    assert upgrade_targets(new) == new  # idempotent: new checkpoints pass unchanged


def test_every_new_module_of_the_table_exists():
    import importlib

    from hydra.utils import get_object

    for old, new in MOVED_MODULES.items():
        if old == "segohem.callbacks.OptunaPruning":
            get_object(new)
        else:
            importlib.import_module(new)


def test_a_checkpoint_written_before_the_move_loads_and_predicts():
    saved = read_checkpoint(OLD)["segohem"]["config"]
    assert saved["module"]["_target_"] == "segohem.module.SegmentationModule"  # the old path
    loaded = load_model(OLD)
    assert loaded.num_classes == 6
    assert OmegaConf.select(loaded.config, "module._target_") == (
        "segohem.train.module.SegmentationModule")
    assert loaded.config.trainer.plugins[0]._target_ == (
        "segohem.train.callbacks.AtomicCheckpointIO")
    with torch.no_grad():
        logits = loaded.model(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 6, 64, 64) and torch.isfinite(logits).all()


def test_segohem_eval_runs_on_the_old_checkpoint(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "segohem.cli.eval", f"ckpt_path={OLD}", "num_workers=0",
         "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "metrics.json").is_file()
