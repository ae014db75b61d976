"""``trainer=auto``, the default: one GPU when CUDA is available (bf16-mixed from compute
capability 8.0, 16-mixed below), else the CPU in 32-true; every trainer has one run length."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from segohem.train.run import device_line
from tests._support.configs import compose_train


def resolved_trainer(tmp_path, *overrides: str) -> dict:
    return OmegaConf.to_container(compose_train(list(overrides), tmp_path).trainer, resolve=True)


def fake_cuda(monkeypatch, capability: tuple[int, int] | None) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: capability is not None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation


@pytest.mark.parametrize(("capability", "accelerator", "precision"), [
    (None, "cpu", "32-true"),
    ((7, 5), "gpu", "16-mixed"),      # T4: bf16 only emulated (is_bf16_supported() says True)
    ((8, 0), "gpu", "bf16-mixed"),    # A100
    ((9, 0), "gpu", "bf16-mixed"),    # H100
])
def test_auto_is_the_default_and_picks_the_device(monkeypatch, tmp_path, capability,
                                                 accelerator, precision):
    fake_cuda(monkeypatch, capability)
    trainer = resolved_trainer(tmp_path)
    assert (trainer["accelerator"], trainer["precision"], trainer["devices"]) == (
        accelerator, precision, 1)
    assert "strategy" not in trainer  # several GPUs only through an explicit trainer=ddp


@pytest.mark.parametrize(("option", "accelerator", "precision", "devices"), [
    ("cpu", "cpu", "32-true", 1), ("gpu", "gpu", "16-mixed", 1), ("ddp", "gpu", "16-mixed", -1),
    ("ddp_cpu", "cpu", "32-true", 2)])
def test_named_trainers_stay_and_share_the_run_length(monkeypatch, tmp_path, option,
                                                      accelerator, precision, devices):
    fake_cuda(monkeypatch, (9, 0))
    trainer = resolved_trainer(tmp_path, f"trainer={option}")
    assert (trainer["accelerator"], trainer["precision"], trainer["devices"]) == (
        accelerator, precision, devices)
    assert trainer["max_epochs"] == resolved_trainer(tmp_path)["max_epochs"] == 18


def test_the_user_precision_wins(monkeypatch, tmp_path):
    fake_cuda(monkeypatch, (9, 0))
    assert resolved_trainer(tmp_path, "trainer.precision=32-true")["precision"] == "32-true"


def test_one_log_line_says_what_was_chosen(tmp_path, caplog):
    """On this (CUDA-less or CUDA) machine: the Device line names the device, the precision
    and, under trainer=auto, why."""
    from hydra.utils import instantiate

    cfg = compose_train([], tmp_path)
    trainer = instantiate(cfg.trainer, logger=False)
    line = device_line(trainer, cfg.trainer)
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    assert line.startswith(f"Device: 1 x {kind}") and "trainer=auto" in line
    assert f"precision {trainer.precision}" in line
    named = compose_train(["trainer=cpu"], tmp_path)
    assert "trainer=auto" not in device_line(instantiate(named.trainer, logger=False),
                                             named.trainer)
