"""OptunaPruning: reports each validation epoch's objective to the trial, stops the run when the
study's pruner says so, and leaves the decision in the study for segohem-train to read."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import torch

from segohem.sweep.pruning import OptunaPruning
from segohem.sweep.storage import open_storage
from segohem.sweep.study import PRUNER_ATTR


def fake_trainer(epoch: int, metrics: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(sanity_checking=False, is_global_zero=True, world_size=1,
                           current_epoch=epoch, should_stop=False,
                           callback_metrics={k: torch.tensor(v) for k, v in metrics.items()})


@pytest.fixture
def study(tmp_path):
    location = str(tmp_path / "optuna.journal")
    study = optuna.create_study(storage=open_storage(location), study_name="s",
                                direction="maximize")
    study.set_user_attr(PRUNER_ATTR, {"_target_": "optuna.pruners.ThresholdPruner",
                                      "lower": 0.2})
    return location, study


def test_reports_each_epoch_and_prunes_below_the_pruners_threshold(study):
    location, study = study
    trial = study.ask()
    callback = OptunaPruning(storage=location, study_name="s", trial=trial.number)
    trainer = fake_trainer(0, {"val/mIoU": 0.5})
    callback.on_validation_end(trainer, None)
    assert not trainer.should_stop and callback.pruned_at() is None
    trainer = fake_trainer(1, {"val/mIoU": 0.1})
    callback.on_validation_end(trainer, None)
    assert trainer.should_stop and callback.pruned_at() == 1
    assert study.trials[0].intermediate_values == {0: 0.5, 1: pytest.approx(0.1)}


def test_the_objective_can_be_the_mean_iou_of_chosen_classes(study):
    location, study = study
    trial = study.ask()
    callback = OptunaPruning(storage=location, study_name="s", trial=trial.number,
                             classes=["wire", "speck"])
    metrics = {"val/mIoU": 0.9, "val/IoU/wire": 0.3, "val/IoU/speck": float("nan")}
    assert callback.epoch_value(fake_trainer(0, metrics).callback_metrics) == pytest.approx(0.15)
    callback.on_validation_end(fake_trainer(0, metrics), None)
    assert study.trials[0].intermediate_values == {0: pytest.approx(0.15)}  # pruned: < 0.2
    assert callback.pruned_at() == 0


def test_outside_a_sweep_it_does_nothing():
    callback = OptunaPruning()
    trainer = fake_trainer(0, {"val/mIoU": 0.0})
    callback.on_validation_end(trainer, None)
    assert not trainer.should_stop and callback.pruned_at() is None
