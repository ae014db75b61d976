"""A short training run on a tiny tree in the real Cityscapes layout, through the real CLI
(``python -m segohem.train`` is what the ``segohem-train`` console script runs)."""

from __future__ import annotations

import json
import subprocess
import sys

import data_trees
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segohem.data.datasets.cityscapes import CITYSCAPES_CLASSES


@pytest.mark.slow
def test_segohem_train_on_a_cityscapes_tree(tmp_path):
    root = data_trees.make_cityscapes(tmp_path / "cityscapes", per_city=2, size=(64, 128))
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "segohem.train", "dataset=cityscapes",
            f"dataset.root={root}", f"hydra.run.dir={run_dir}", "dataset.crop_size=[64,128]",
            "dataset.batch_size=2", "dataset.val_batch_size=2", "dataset.num_workers=0",
            "trainer.max_epochs=2", "min_train_steps=null", "trainer.enable_progress_bar=false"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["last"]["epoch"] == 1
    assert set(metrics["last"]["IoU"]) == set(CITYSCAPES_CLASSES)
    present = {"road", "building", "sky", "vegetation", "car"}  # in every tree mask
    assert all(metrics["last"]["IoU"][name] is not None for name in present)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    assert "val/mIoU" in tags and "val/IoU/traffic sign" in tags
