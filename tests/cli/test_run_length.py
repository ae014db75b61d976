"""What the user set wins: a run-length key the user gives (command line, experiment or debug
config) is trained exactly, never raised by ``min_train_steps``; the default length still is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from segohem.config.resolvers import RUN_LENGTH_KEYS
from segohem.train.callbacks import MinTrainSteps
from segohem.train.run import train
from tests._support.configs import TINY, compose_train

CLI = {"max_epochs": "trainer.max_epochs=18",          # equal to the default: still the user's
       "max_steps": "+trainer.max_steps=5",
       "limit_train_batches": "trainer.limit_train_batches=2",
       "max_time": "+trainer.max_time=00:00:10:00",
       "overfit_batches": "+trainer.overfit_batches=2",
       "fast_dev_run": "+trainer.fast_dev_run=true"}
YAML = {"max_epochs": "max_epochs: 18", "max_steps": "max_steps: 5",
        "limit_train_batches": "limit_train_batches: 2", "max_time": "max_time: '00:00:10:00'",
        "overfit_batches": "overfit_batches: 2", "fast_dev_run": "fast_dev_run: true"}


def typed(cfg) -> list[str]:
    return OmegaConf.to_container(cfg.callbacks.min_train_steps, resolve=True)["typed"]


def experiment(tmp_path: Path, body: str) -> list[str]:
    """Overrides that select a user's own experiment config holding ``body`` under trainer."""
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(f"# @package _global_\ntrainer:\n  {body}\n")
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=mine"]


def test_every_length_key_is_covered():
    assert set(CLI) == set(YAML) == set(RUN_LENGTH_KEYS)


def test_nothing_typed_by_default(tmp_path):
    cfg = compose_train([], tmp_path)
    assert typed(cfg) == [] and cfg.trainer.max_epochs == 18


@pytest.mark.parametrize("key", RUN_LENGTH_KEYS)
def test_typed_on_the_command_line(key, tmp_path):
    assert typed(compose_train([CLI[key]], tmp_path)) == [key]


@pytest.mark.parametrize("key", RUN_LENGTH_KEYS)
def test_typed_in_an_experiment_config(key, tmp_path):
    assert typed(compose_train(experiment(tmp_path, YAML[key]), tmp_path)) == [key]


@pytest.mark.parametrize(("debug", "keys"), [("limit", ["max_epochs", "limit_train_batches"]),
                                             ("overfit", ["max_epochs", "overfit_batches"]),
                                             ("fdr", ["fast_dev_run"])])
def test_debug_configs_are_the_users_length(debug, keys, tmp_path):
    cfg = compose_train([f"debug={debug}", "dataset=cityscapes", "dataset.root=/data"], tmp_path)
    assert typed(cfg) == keys and cfg.min_train_steps == 3000  # no min_train_steps: null needed


# 16 training images at batch 8: 2 optimizer steps per epoch; min_train_steps=40 would raise a
# default-length run (18 epochs = 36 steps) to 20 epochs.
SMALL = [t for t in TINY if not t.startswith(("trainer.max_epochs", "min_train_steps"))] + [
    "dataset.train_set.num_samples=16", "dataset.val_set.num_samples=4", "logger=none",
    "image_log_every_n_epochs=100", "min_train_steps=40"]


def last(run: Path) -> tuple[int, int]:
    done = json.loads((run / "metrics.json").read_text())["last"]
    return done["epoch"], done["step"]


@pytest.mark.slow
def test_the_default_length_is_still_raised(tmp_path, caplog):
    with caplog.at_level("INFO", logger="segohem.train.callbacks.min_steps"):
        train(compose_train(SMALL, tmp_path))
    assert last(tmp_path) == (19, 40)
    assert "trainer.max_epochs 18 -> 20" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize(("source", "key", "expected"), [
    ("cli", "trainer.max_epochs=2", (1, 4)),
    ("cli", "+trainer.max_steps=4", (1, 4)),
    ("cli", "trainer.limit_train_batches=1", (17, 18)),   # 18 default epochs x 1 batch
    ("experiment", "max_epochs: 2", (1, 4)),
    ("experiment", "max_steps: 4", (1, 4)),
    ("experiment", "limit_train_batches: 1", (17, 18)),
])
def test_a_typed_length_is_trained_exactly(source, key, expected, tmp_path, caplog):
    overrides = [key] if source == "cli" else experiment(tmp_path, key)
    with caplog.at_level("INFO", logger="segohem.train.callbacks.min_steps"):
        train(compose_train([*SMALL, *overrides], tmp_path))
    assert last(tmp_path) == expected
    assert "Run length as you set it" in caplog.text and "kept" in caplog.text
    assert "min_train_steps=40 would have chosen max_epochs=" in caplog.text


@pytest.mark.slow
def test_issue_command_line_trains_two_epochs(tmp_path):
    """The report: ``trainer.max_epochs=2 ++trainer.limit_train_batches=2`` on a small set
    trained 3000 epochs; the console command now trains 2 epochs of 2 batches."""
    args = [sys.executable, "-m", "segohem.cli.train", f"hydra.run.dir={tmp_path}",
            *[t for t in SMALL if not t.startswith("min_train_steps")], "min_train_steps=3000",
            "trainer.max_epochs=2", "++trainer.limit_train_batches=2"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert last(tmp_path) == (1, 4)
    log = (tmp_path / "train.log").read_text()
    assert "trainer.max_epochs=2, trainer.limit_train_batches=2, kept" in log
    assert "min_train_steps=3000 would have chosen max_epochs=1500" in log


def test_bad_value():
    with pytest.raises(ValueError, match="min_train_steps must be None or an int >= 0, got -1"):
        MinTrainSteps(-1)
