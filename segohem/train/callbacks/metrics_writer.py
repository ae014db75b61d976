"""``metrics.json``: last and best validation metrics, per-class IoU by class name, the mining
summary and the class statistics of the data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from segohem.report.metrics_json import split_section, training_report, write_report


class MetricsWriter(pl.Callback):
    """After every validation and at the end of training (rank 0), writes the run's
    :class:`~segohem.report.metrics_json.TrainingReport` to ``path``:
    ``{"last": ..., "best": ...}``, each
    the ``SegmentationModule`` summary (epoch, step, mIoU, mAcc, aAcc, IoU and Acc by class
    name; null for classes absent from both prediction and ground truth), plus ``"mining"``
    (the module's ``mining_summary``) for losses that report mining statistics and ``"data"``
    (:func:`data_section`). ``last`` / ``best`` are ``{}`` when no validation ran. Written
    atomically (:func:`segohem.report.metrics_json.write_report`)."""

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
        data = data_section(getattr(trainer, "datamodule", None),
                            getattr(pl_module, "class_names", ()))
        write_report(self.path, training_report(last, best, mining, data))


def data_section(datamodule: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """``metrics.json``'s ``data``: the data module's ``train_stats`` / ``val_stats``
    (:class:`~segohem.data.class_stats.ClassStats`) as ``"train"`` / ``"val"``
    :class:`~segohem.report.metrics_json.SplitSection` (classes by ``class_names``, or
    ``class_<i>`` when the statistics count another number of classes) and its
    ``sampler_summary`` (a dict: the training sampler and its settings) as ``"sampler"``;
    empty without any."""
    out: dict[str, Any] = {}
    for split in ("train", "val"):
        stats = getattr(datamodule, f"{split}_stats", None)
        if stats is None:
            continue
        c = len(stats.pixels)
        names = list(class_names) if len(class_names) == c else [f"class_{i}" for i in range(c)]
        out[split] = split_section(names, stats.pixels.tolist(), stats.image_counts.tolist(),
                                   stats.num_images)
    if sampler := getattr(datamodule, "sampler_summary", None):
        out["sampler"] = dict(sampler)
    return out
