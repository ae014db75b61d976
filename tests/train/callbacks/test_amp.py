"""SkippedStepCounter (segohem.train.callbacks.amp): fp16 steps skipped by the grad scaler."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from segohem.train.callbacks import SkippedStepCounter


def test_skipped_step_counter_counts_fp16_overflows():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler))
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1)
    counter = SkippedStepCounter()
    for bad in (False, True, False, True, True):
        opt.zero_grad()
        scaler.scale((param * (float("inf") if bad else 1.0)).sum()).backward()
        counter.on_before_optimizer_step(trainer, None, opt)
        scaler.step(opt)
        scaler.update()
        counter.on_train_batch_end(trainer, None, None, None, 0)
    assert int(counter.skipped) == 3
    assert counter.state_dict() == {"skipped": 3}


def test_skipped_step_counter_is_idle_without_a_scaler():
    counter = SkippedStepCounter()
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace())
    counter.on_before_optimizer_step(trainer, None, None)
    counter.on_train_batch_end(trainer, None, None, None, 0)
    assert counter.skipped is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_16_mixed_run_on_the_gpu_counts_few_skipped_steps(tiny_config, tmp_path):
    """A short fp16-mixed fit of the default model and loss on one GPU: finite losses, the
    scaler's skipped steps counted and logged (a few while the scale settles, at most)."""
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from segohem.train.run import train

    train(tiny_config("trainer=gpu", "trainer.precision=16-mixed", "trainer.max_epochs=2"))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    skipped = [e.value for e in events.Scalars("train/amp_skipped_steps")]
    losses = [e.value for e in events.Scalars("train/loss")]
    assert len(skipped) == 2 and skipped[-1] <= 5, skipped
    assert losses and all(math.isfinite(v) for v in losses)
    assert json.loads((tmp_path / "metrics.json").read_text())["best"]["mIoU"] is not None
