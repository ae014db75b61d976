"""Cluster launch configurations compose (they cannot run here: no SLURM, no GPUs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from segohem.config.compose import compose_config
from segohem.train.run import sweep_safe_strategy

ROOT = Path(__file__).resolve().parents[2]


def compose_with_hydra(overrides: list[str]):
    return compose_config("train", overrides, hydra=True)


def test_slurm_launcher_config_composes_one_task_per_gpu():
    cfg = compose_with_hydra(["hydra/launcher=slurm_ddp", "trainer=ddp", "trainer.devices=4",
                              "trainer.num_nodes=2", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu"
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm


def test_ddp_trainer_configs_compose():
    for option, accelerator in (("ddp", "gpu"), ("ddp_cpu", "cpu")):
        cfg = compose_with_hydra([f"trainer={option}"])
        assert cfg.trainer.accelerator == accelerator and cfg.trainer.strategy == "ddp"


def test_strategy_is_kept_outside_a_multirun_and_under_slurm(monkeypatch):
    assert sweep_safe_strategy("ddp") is None  # no Hydra app running: a single run
    assert sweep_safe_strategy("auto") is None
    monkeypatch.setattr("segohem.train.run._is_multirun", lambda: True)
    assert sweep_safe_strategy("ddp") == "ddp_fork"
    assert sweep_safe_strategy("ddp_spawn") is None
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_JOB_NAME", "segohem")
    assert sweep_safe_strategy("ddp") is None  # SLURM creates the ranks itself


def test_slurm_script_is_valid_bash():
    script = ROOT / "scripts" / "slurm_train.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "srun python -m segohem.cli.train" in text and "hydra.run.dir=" in text
