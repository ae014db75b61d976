"""Trained runs shared by the command tests (session-scoped: each is trained once per test
session, by the first test that needs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._support import data_trees
from tests._support.configs import TINY, compose_train


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a tiny synthetic training run (one epoch of 64 images at 64 px,
    validated on an odd number of images: 9; no logger): its checkpoints and metrics.json.
    segohem-eval, -predict and -export tests read it; none of them writes into it except
    export's default output next to the checkpoint."""
    from segohem.train.run import train

    out = tmp_path_factory.mktemp("tiny_run")
    train(compose_train([*TINY, "dataset.val_set.num_samples=9", "logger=none"], out))
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: Path) -> Path:
    """``last.ckpt`` of :func:`tiny_run`: 6 synthetic classes."""
    return tiny_run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def cityscapes_run(tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """``python -m segohem.cli.train`` (what the segohem-train console script runs) for two epochs
    on a tiny tree in the real Cityscapes layout (2 images per city, 64 x 128 px): the tree's
    root, the run directory (a 19-class checkpoint, metrics.json, TensorBoard) and the
    finished process."""
    base = tmp_path_factory.mktemp("cityscapes")
    root = data_trees.make_cityscapes(base / "cityscapes", per_city=2, size=(64, 128))
    run_dir = base / "run"
    args = [sys.executable, "-m", "segohem.cli.train", "dataset=cityscapes",
            f"dataset.root={root}", f"hydra.run.dir={run_dir}", "dataset.crop_size=[64,128]",
            "dataset.batch_size=2", "dataset.val_batch_size=2", "dataset.num_workers=0",
            "trainer.max_epochs=2", "min_train_steps=null", "trainer.enable_progress_bar=false"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"segohem-train on the Cityscapes tree failed:\n{done.stderr[-3000:]}")
    return root, run_dir, done
