"""Cluster launch configurations compose (they cannot run here: no SLURM, no GPUs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from segohem.config.compose import compose_config

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


def test_slurm_script_is_valid_bash():
    script = ROOT / "scripts" / "slurm_train.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "srun python -m segohem.cli.train" in text and "hydra.run.dir=" in text
