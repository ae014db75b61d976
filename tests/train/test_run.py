"""segohem.train.run's pieces: the metric returned to sweepers (from the trainer's
callback_metrics), and trainer=ddp's strategy inside and outside a multirun (the
``${segohem.sweep_safe_strategy:ddp}`` resolver), which the Device line explains."""

import math
from types import SimpleNamespace

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate

from segohem.config.checks import ConfigError, check_config
from segohem.config.resolvers import sweep_safe_strategy
from segohem.train.run import device_line, optimized_value
from tests._support.configs import compose_train

METRICS = {"val/mIoU_best": torch.tensor(0.625), "val/mIoU": torch.tensor(0.5),
           "val/IoU_best/bg": torch.tensor(0.75), "val/IoU_best/wire": torch.tensor(0.25),
           "val/IoU_best/dot": torch.tensor(math.nan)}


def test_optimized_value_reads_the_callback_metrics(caplog):
    assert optimized_value(METRICS, "val/mIoU_best") == 0.625
    assert optimized_value(METRICS, "val/mIoU") == 0.5
    assert optimized_value(METRICS, "val/mIoU_best", ["wire", "bg"]) == 0.5
    assert optimized_value(METRICS, "val/mIoU_best", ["wire", "dot"]) == 0.125  # NaN counts 0
    assert optimized_value(METRICS, None) is None
    assert optimized_value({}, "val/mIoU_best") is None
    assert "never logged" in caplog.text and "val/mIoU_best" in caplog.text
    assert optimized_value(METRICS, "val/mIoU_best", ["ring"]) is None
    assert "val/IoU_best/ring" in caplog.text


@pytest.fixture
def multirun(monkeypatch):
    """Pretend a Hydra multirun job is running (as the launcher sets HydraConfig)."""
    monkeypatch.setattr(HydraConfig.instance(), "cfg",
                        SimpleNamespace(hydra=SimpleNamespace(mode=RunMode.MULTIRUN)))
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)


def test_ddp_is_kept_outside_a_multirun(monkeypatch):
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)
    assert sweep_safe_strategy("ddp") == "ddp"
    single = SimpleNamespace(hydra=SimpleNamespace(mode=RunMode.RUN))
    monkeypatch.setattr(HydraConfig.instance(), "cfg", single)
    assert sweep_safe_strategy("ddp") == "ddp"


def test_ddp_forks_inside_a_multirun_unless_a_cluster_starts_the_ranks(multirun, monkeypatch):
    assert sweep_safe_strategy("ddp") == "ddp_fork"
    assert sweep_safe_strategy("ddp_spawn") == "ddp_spawn"  # other strategies as given
    assert sweep_safe_strategy("auto") == "auto"
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_JOB_NAME", "segohem")
    assert sweep_safe_strategy("ddp") == "ddp"  # SLURM creates the ranks itself


def test_trainer_ddp_config_builds_a_forking_trainer_in_a_multirun(multirun, tmp_path):
    cfg = compose_train(["trainer=ddp_cpu"], tmp_path)
    assert cfg.trainer.strategy == "ddp_fork"
    trainer = instantiate(cfg.trainer, logger=False)
    assert trainer.strategy._start_method == "fork"
    assert "multirun: ddp -> ddp_fork" in device_line(trainer, cfg.trainer)


def test_trainer_ddp_config_keeps_ddp_in_a_single_run(tmp_path):
    cfg = compose_train(["trainer=ddp_cpu"], tmp_path)
    assert cfg.trainer.strategy == "ddp"
    assert "multirun" not in device_line(instantiate(cfg.trainer, logger=False), cfg.trainer)


def test_a_typed_ddp_strategy_in_a_multirun_is_an_error(multirun, tmp_path):
    """What the user typed runs, so a typed trainer.strategy=ddp is not swapped: it would make
    every rank re-run the sweep, and the check says so before anything is built."""
    cfg = compose_train(["trainer=ddp_cpu", "trainer.strategy=ddp"], tmp_path)
    with pytest.raises(ConfigError, match=r"trainer.strategy=ddp inside a multirun.*ddp_fork"):
        check_config(cfg)
    check_config(compose_train(["trainer=ddp_cpu"], tmp_path))  # the config's own choice


def test_a_typed_ddp_strategy_outside_a_multirun_is_fine(tmp_path):
    check_config(compose_train(["trainer=ddp_cpu", "trainer.strategy=ddp"], tmp_path))
