"""``metrics.json``: last and best validation metrics, per-class IoU by class name, and the
mining summary."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl

from segohem.report.metrics_json import training_report, write_report


class MetricsWriter(pl.Callback):
    """After every validation and at the end of training (rank 0), writes the run's
    :class:`~segohem.report.metrics_json.TrainingReport` to ``path``:
    ``{"last": ..., "best": ...}``, each
    the ``SegmentationModule`` summary (epoch, step, mIoU, mAcc, aAcc, IoU and Acc by class
    name; null for classes absent from both prediction and ground truth), plus ``"mining"``
    (the module's ``mining_summary``) for losses that report mining statistics. ``last`` /
    ``best`` are ``{}`` when no validation ran. Written atomically
    (:func:`segohem.report.metrics_json.write_report`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The last epoch's mining statistics are summed after its validation.
        self._write(trainer, pl_module)

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        last, best = getattr(pl_module, "last_val", {}), getattr(pl_module, "best_val", {})
        mining = getattr(pl_module, "mining_summary", {})
        if not last and not mining:
            return
        write_report(self.path, training_report(last, best, mining))
