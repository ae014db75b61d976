"""Class names have one source: a dataset class's ``classes`` table, which its config in
conf/dataset/ reads through ``${segohem.classes:<class>}`` instead of restating it (folder:
the command line's ``dataset.class_names``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from segohem.config.resolvers import CLASSES
from tests._support.configs import compose_train, group_options

DATASETS = Path(__file__).resolve().parents[2] / "conf" / "dataset"
OPTIONS = group_options()["dataset"]  # not the bases, conf/dataset/_*.yaml
USER_NAMED = {"folder"}
"""Datasets whose classes the user names (``dataset.class_names=[...]``, required)."""


@pytest.mark.parametrize("option", OPTIONS)
def test_dataset_config_reads_the_class_table_instead_of_restating_it(option):
    raw = OmegaConf.load(DATASETS / f"{option}.yaml")
    targets = {raw.train_set._target_, raw.val_set._target_}
    assert len(targets) == 1, targets
    stored = OmegaConf.to_container(raw)["class_names"]
    if option in USER_NAMED:
        assert stored == "???"
    else:
        assert stored == f"${{{CLASSES}:{targets.pop()}}}", (
            f"conf/dataset/{option}.yaml: class_names must read the dataset class's table, "
            f"not restate it (a second list can diverge)")


@pytest.mark.parametrize("option", sorted(set(OPTIONS) - USER_NAMED))
def test_composed_names_are_the_dataset_class_table(option):
    cfg = compose_train([f"dataset={option}", "dataset.root=/data/x"])
    table = get_class(cfg.dataset.train_set._target_).classes
    names = OmegaConf.to_container(cfg.dataset, resolve=True)["class_names"]
    assert names == list(table)
    assert len(names) == cfg.dataset.num_classes == len(set(names))
    assert all(isinstance(name, str) and name for name in names)


def test_user_named_classes_come_from_the_command_line():
    cfg = compose_train(["dataset=folder", "dataset.root=/data/cracks", "dataset.num_classes=2",
                         "dataset.class_names=[background,crack]"])
    for names in (cfg.dataset.class_names, cfg.dataset.train_set.classes,
                  cfg.module.class_names):
        assert list(names) == ["background", "crack"]


def test_the_command_line_resolves_the_names_in_place(tmp_path):
    """``--cfg job --resolve`` resolves in place (``OmegaConf.resolve``); the entry point
    finds the resolver registered by ``segohem.conf``."""
    done = subprocess.run(
        [sys.executable, "-m", "segohem.cli.train", "--cfg", "job", "--resolve",
         "dataset=cityscapes", "dataset.root=/data/cityscapes"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dataset = OmegaConf.create(done.stdout).dataset
    assert list(dataset.class_names) == list(get_class(dataset.train_set._target_).classes)
