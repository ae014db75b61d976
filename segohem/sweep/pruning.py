"""Reporting a sweep trial's validation results to its Optuna study, and pruning it."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import optuna

from segohem.report.metrics_json import class_mean_iou
from segohem.sweep.study import PRUNED_AT_ATTR, frozen_trial, load_trial

log = logging.getLogger(__name__)


class OptunaPruning(pl.Callback):
    """After every validation epoch, rank 0 reports the epoch's objective to trial ``trial``
    of study ``study_name`` in ``storage`` and asks the study's pruner; the decision is
    broadcast so every DDP rank stops together. A pruned trial is marked in the study
    (``segohem_pruned_at_epoch``); ``segohem-train`` then ends the job with
    :class:`optuna.TrialPruned`, which the sweeper records as PRUNED.

    The objective of an epoch is ``val/mIoU`` (fraction), or with ``classes`` the mean of
    ``val/IoU/<class>`` over those classes (as ``optimized_classes`` for the final value).
    Outside a sweep (``trial`` None) the callback does nothing.
    """

    def __init__(self, storage: str | None = None, study_name: str | None = None,
                 trial: int | None = None, classes: Sequence[str] | None = None) -> None:
        self.storage, self.study_name, self.trial_number = storage, study_name, trial
        self.classes = list(classes) if classes else None
        self.active = storage is not None and study_name is not None and trial is not None
        self._trial: optuna.Trial | None = None

    def epoch_value(self, metrics: Mapping[str, Any]) -> float:
        """The objective of the epoch whose metrics Lightning holds (``callback_metrics``)."""
        if not self.classes:
            return float(metrics["val/mIoU"])
        iou = {name: _number(metrics.get(f"val/IoU/{name}")) for name in self.classes}
        return class_mean_iou({"IoU": iou}, self.classes)

    def _study_trial(self) -> optuna.Trial:
        if self._trial is None:
            assert self.storage and self.study_name and self.trial_number is not None
            self._trial = load_trial(self.storage, self.study_name, self.trial_number)
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active or trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            epoch = trainer.current_epoch
            value = self.epoch_value(trainer.callback_metrics)
            trial = self._study_trial()
            trial.report(value, step=epoch)
            prune = trial.should_prune()
            if prune:
                trial.set_user_attr(PRUNED_AT_ATTR, epoch)
                log.info("Optuna: trial %d pruned after epoch %d (objective %.4f).",
                         self.trial_number, epoch, value)
        if trainer.world_size > 1:
            prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            trainer.should_stop = True

    def pruned_at(self) -> int | None:
        """The epoch after which the study's pruner stopped this trial, else None (read from
        the study: under ddp_fork the ranks' callbacks ran in child processes)."""
        if not self.active:
            return None
        trial = frozen_trial(self.storage, self.study_name, self.trial_number)
        return trial.user_attrs.get(PRUNED_AT_ATTR)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
