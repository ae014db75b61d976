"""segohem.train.optim: the poly schedule (torch schedulers) against the former formula, its
checkpointed state, and reading a former PolyLR state."""

import itertools

import pytest
import torch
from torch import nn

from segohem.train.optim import poly_lr, state_at_step
from tests._support.schedules import former_poly_state, lr_sequence, old_poly_lr, sgd

POLY_CASES = {  # name: (total_steps, power, warmup_steps, warmup_start_factor, min_lr, lr)
    "default": (300, 0.9, 50, 0.1, 0.0, 0.01),
    "linear, floored at the end": (110, 1.0, 10, 0.1, 0.05, 1.0),
    "no warm-up": (40, 0.9, 0, 0.1, 0.0, 0.5),
    "warm-up from 0": (60, 2.0, 7, 0.0, 0.0, 1.0),
    "one-step warm-up from 0": (10, 0.9, 1, 0.0, 0.0, 1.0),
    "floor above the warm-up start": (80, 0.9, 20, 0.1, 0.3, 1.0),
    "floor equal to the rate": (12, 0.9, 3, 0.5, 0.2, 0.2),
    "start factor 1": (30, 1.5, 5, 1.0, 0.01, 0.1),
    "one step": (1, 0.9, 0, 0.1, 0.0, 1.0),
}


@pytest.mark.parametrize("case", POLY_CASES.values(), ids=list(POLY_CASES))
def test_poly_schedule_matches_the_former_formula(case):
    total, power, warmup, start, min_lr, lr = case
    optimizer = sgd(lr)
    schedule = poly_lr(optimizer, total_steps=total, power=power, warmup_steps=warmup,
                       warmup_start_factor=start, min_lr=min_lr)
    rates = lr_sequence(optimizer, schedule, total + 5)  # and past the end
    expected = [old_poly_lr(t, total, power, warmup, start, min_lr, lr) for t in range(total + 5)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_poly_schedule_warmup_and_decay():
    optimizer = sgd()
    schedule = poly_lr(optimizer, total_steps=110, power=1.0, warmup_steps=10,
                       warmup_start_factor=0.1, min_lr=0.05)
    rates = lr_sequence(optimizer, schedule, 110)
    assert rates[0] == pytest.approx(0.1)
    assert rates[5] == pytest.approx(0.1 + 0.9 * 0.5)
    assert rates[10] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.5)
    assert rates[109] == pytest.approx(0.05)  # floored at min_lr
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))


def test_poly_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="total_steps must be >= 1"):
        poly_lr(sgd(), total_steps=0)
    with pytest.raises(ValueError, match=r"min_lr=2\.0 is above the optimizer's lr=1\.0"):
        poly_lr(sgd(), total_steps=10, min_lr=2.0)
    groups = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 1.0},
                              {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1}])
    with pytest.raises(ValueError, match="one learning rate for all parameter groups"):
        poly_lr(groups, total_steps=10, min_lr=0.01)
    poly_lr(groups, total_steps=10)  # without a floor, groups may differ


def test_poly_schedule_state_survives_a_checkpoint(tmp_path):
    kwargs = {"total_steps": 60, "power": 0.9, "warmup_steps": 10, "warmup_start_factor": 0.0,
              "min_lr": 0.02}
    optimizer = sgd()
    schedule = poly_lr(optimizer, **kwargs)
    first = lr_sequence(optimizer, schedule, 25)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict()},
               tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt", weights_only=True)

    resumed_optimizer = sgd()
    resumed = poly_lr(resumed_optimizer, **kwargs)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    rest = lr_sequence(resumed_optimizer, resumed, 40)
    expected = [old_poly_lr(t, 60, 0.9, 10, 0.0, 0.02) for t in range(65)]
    assert first + rest == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_state_at_step_reads_a_former_polylr_state():
    kwargs = {"power": 0.9, "warmup": 10, "start": 0.1}
    optimizer_state, lambda_state = former_poly_state(30, 100, **kwargs)
    assert "lr_lambdas" in lambda_state and lambda_state["last_epoch"] == 30

    def build(opt):
        return poly_lr(opt, total_steps=100, power=0.9, warmup_steps=10)

    state = state_at_step(build, lambda_state["base_lrs"], lambda_state["last_epoch"])
    optimizer = sgd()
    schedule = build(optimizer)
    optimizer.load_state_dict(optimizer_state)
    schedule.load_state_dict(state)
    rates = lr_sequence(optimizer, schedule, 70)
    expected = [old_poly_lr(t, 100, **kwargs) for t in range(30, 100)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_poly_schedule_shortens_a_warmup_longer_than_half_the_run():
    optimizer = sgd()
    with pytest.warns(UserWarning, match=r"warmup_steps=50 is more than half of this run's 20"):
        schedule = poly_lr(optimizer, total_steps=20, power=1.0, warmup_steps=50)
    rates = lr_sequence(optimizer, schedule, 20)
    assert rates[10] == pytest.approx(1.0)  # warm-up of 10 steps, then decay
    assert rates[19] == pytest.approx(0.1)
