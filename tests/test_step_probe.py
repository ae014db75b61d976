"""scripts/step_probe.py attributes time to forward / loss / backward / optimizer correctly,
including Lightning-style ``optimizer.step(closure)`` where the closure's own host time must
not be charged to the optimizer."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from step_probe import ComputeProbe


class Sleepy(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.lin(x)


class SleepyLoss(nn.Module):
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return y.square().mean()


def test_closure_host_time_is_not_optimizer_time() -> None:
    model, loss_fn = Sleepy(0.03), SleepyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = ComputeProbe(torch.device("cpu"))

    def closure() -> torch.Tensor:
        time.sleep(0.05)  # plumbing: host time, neither compute part
        loss = loss_fn(model(torch.randn(2, 4)))
        opt.zero_grad()
        loss.backward()
        return loss

    with probe.attach(model, loss_fn):
        opt.step(closure)  # outside the window: not counted
        assert sum(probe.seconds.values()) == 0.0
        probe.start()
        opt.step(closure)  # positional closure (as torch's docs show it)
        opt.step(closure=closure)  # keyword closure (as Lightning calls it)
        probe.stop()
    s = probe.seconds
    assert 0.055 <= s["forward"] < 0.09, s
    assert 0.035 <= s["loss"] < 0.07, s
    assert s["optimizer"] < 0.02, s  # the 0.1 s of closure sleeps went to host time
    assert s["backward"] > 0.0
    # hooks are gone after attach()
    assert torch.Tensor.backward.__name__ == "backward"
    before = dict(s)
    probe.start()
    opt.step(closure)
    assert probe.seconds == before
