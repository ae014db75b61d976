"""Errors read as one line: a bad input ends segohem-train with its cause and fix, no Python
traceback (``HYDRA_FULL_ERROR=1`` and train.log keep it); unexpected errors keep theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from segohem.cli import InputError, exit_on, one_line
from segohem.config.checks import ConfigError
from tests._support import data_trees

SPLITS = {"train": ["a", "b", "c"], "val": ["d"]}


def bad_folder(case: str, root: Path) -> tuple[list[str], str]:
    """A folder tree with one mistake, the extra overrides, and the expected message part."""
    if case == "too few images to split":  # without split files 2+ images train as they are
        data_trees.make_folder(root, stems=("a",))
        return [], "1 image(s): too few to hold out a validation share (dataset.val_fraction="
    if case == "mask value out of range":
        data_trees.make_folder(root, splits=SPLITS, raw_values=[0, 1, 7])
        return [], "mask values 7 are not known ids"
    if case == "colour mask without palette":
        data_trees.make_folder(root, splits=SPLITS, mask_format="color")
        return ["dataset.mask_format=color"], "no palette was given"
    if case == "size mismatch":
        data_trees.make_folder(root, splits=SPLITS)
        Image.new("RGB", (10, 10)).save(root / "images" / "b.png")
        return [], "must have the same size"
    if case == "missing file":
        data_trees.make_folder(root, splits=SPLITS)
        (root / "masks" / "c.png").unlink()
        return [], "masks are missing"
    raise AssertionError(case)


def train(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None):
    args = [sys.executable, "-m", "segohem.cli.train", f"hydra.run.dir={tmp_path / 'run'}",
            "trainer.max_epochs=1", "trainer.enable_progress_bar=false", *overrides]
    return subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
@pytest.mark.parametrize("case", ["too few images to split", "mask value out of range",
                                  "colour mask without palette", "size mismatch",
                                  "missing file"])
def test_bad_data_is_one_line_without_traceback(case, tmp_path):
    extra, expected = bad_folder(case, tmp_path / "data")
    done = train(tmp_path, "dataset=folder", f"dataset.root={tmp_path / 'data'}",
                 "dataset.num_classes=3", "dataset.class_names=[a,b,c]",
                 "dataset.crop_size=[24,40]", "dataset.num_workers=2", *extra)  # workers too
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "segohem-train: error: " in line]
    assert len(errors) == 1 and expected in errors[0], done.stderr[-2000:]
    assert "Traceback" in (tmp_path / "run" / "train.log").read_text()  # kept for debugging


@pytest.mark.slow
def test_bad_option_has_no_traceback(tmp_path):
    done = train(tmp_path, "loss.thresh=1.5")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "thresh must be a number in (0, 1], got 1.5" in done.stderr


@pytest.mark.slow
def test_full_error_shows_the_traceback(tmp_path):
    bad_folder("too few images to split", tmp_path / "data")
    done = train(tmp_path, "dataset=folder", f"dataset.root={tmp_path / 'data'}",
                 "dataset.num_classes=3", "dataset.class_names=[a,b,c]",
                 env={"HYDRA_FULL_ERROR": "1"})
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "DatasetError: FolderDataset" in done.stderr


def test_known_errors_become_input_errors_and_others_propagate():
    def config_mistake(cfg):
        raise ConfigError("dataset.root is missing; add dataset.root=/data")

    def bug(cfg):
        raise KeyError("unexpected")

    with pytest.raises(InputError, match=r"^segohem-x: error: dataset\.root is missing") as info:
        exit_on((ConfigError,), "segohem-x", config_mistake, None)
    assert isinstance(info.value.__cause__, ConfigError)  # the trace stays chained
    with pytest.raises(KeyError):
        exit_on((ConfigError,), "segohem-x", bug, None)
    assert exit_on((ConfigError,), "segohem-x", lambda cfg: 0.5, None) == 0.5


def test_a_worker_error_keeps_only_the_original_message():
    wrapped = ValueError("Caught DatasetError in DataLoader worker process 0.\n"
                         "Original Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                         "segohem.data.DatasetError: m.png: value 7; fix the mask\n")
    assert one_line(wrapped) == "m.png: value 7; fix the mask"
    assert one_line(ValueError("plain message")) == "plain message"
