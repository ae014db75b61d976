"""Fixtures shared by every folder of the suite; folder-specific ones live in the folder's own
conftest.py (tests/losses/, tests/cli/). Plain helpers (data builders, reference losses, config
composition) are the modules of tests/_support, imported as ``tests._support.<module>``."""

from __future__ import annotations

import os

# Under pytest-xdist (addopts: -n logical) every CPU runs a worker: one OpenMP thread per worker
# and per process a test starts (inherited), set before torch is imported. Several torch
# processes with a thread per core each spin-wait for one another: a 2-thread training step was
# ~7x slower than a 1-thread one on a busy 2-core machine (tests/test_notebooks.py, kernel_env).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from omegaconf import DictConfig

from tests._support.configs import TINY, compose_train, real_dataset_overrides

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile("ci")


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """``tiny_config(*overrides, output_dir=tmp_path)``: the composed ``train`` config with the
    tiny settings (``TINY``: synthetic 64 px images, 64 / 16 samples, one epoch, no progress
    bar) and ``overrides``; a run of it writes to ``output_dir``."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_train([*TINY, *overrides], tmp_path if output_dir is None else output_dir)

    return make


@pytest.fixture
def dataset_tree(tmp_path: Path) -> Callable[[str], list[str]]:
    """``dataset_tree(option)``: writes a tiny tree of dataset ``option`` (cityscapes, voc,
    ade20k, camvid, folder) in its real layout under ``tmp_path / "data"`` and returns the
    overrides that train on it with tiny settings (64 x 96 px images, 64 x 64 crops, batch 2)."""
    return lambda option: real_dataset_overrides(option, tmp_path / "data")


@pytest.fixture
def folder_dataset(dataset_tree: Callable[[str], list[str]]) -> list[str]:
    """Overrides that train on a tiny ``dataset=folder`` tree: images a, b, c (train) and d
    (val), 3 classes, 64 x 96 px."""
    return dataset_tree("folder")
