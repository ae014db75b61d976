"""SkippedStepCounter (segohem.callbacks.amp): fp16 steps skipped by the grad scaler."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from segohem.callbacks import SkippedStepCounter


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
