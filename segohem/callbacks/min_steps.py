"""Train small datasets for enough optimizer steps: raise ``max_epochs`` to a step budget."""

from __future__ import annotations

import logging
import math

import lightning.pytorch as pl

log = logging.getLogger(__name__)


class MinTrainSteps(pl.Callback):
    """Raise the trainer's ``max_epochs`` so that a run takes at least ``min_steps``
    optimizer steps.

    An epoch count is a poor default across dataset sizes: 18 epochs are ~6 700 steps on
    Cityscapes (batch 8) but 450 on a folder of 200 images, too few to learn rare classes
    (measured in docs/benchmarks.md). Decided in ``setup``, before the optimizer and the LR
    schedule are built, from Lightning's own step estimate (batches per epoch on this rank,
    gradient accumulation, ``limit_train_batches``), so the schedule spans the longer run and a
    resumed run gets the same length. ``max_steps`` and explicit larger ``max_epochs`` win.

    Args:
        min_steps: the step budget; None or 0 turns it off.
    """

    def __init__(self, min_steps: int | None) -> None:
        if min_steps is not None and (isinstance(min_steps, bool) or min_steps < 0):
            raise ValueError(f"min_train_steps must be None or an int >= 0, got {min_steps!r}.")
        self.min_steps = int(min_steps or 0)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        epochs = trainer.fit_loop.max_epochs
        if stage != "fit" or not self.min_steps or epochs is None or epochs < 1:
            return
        steps = trainer.estimated_stepping_batches
        if not math.isfinite(steps) or steps >= self.min_steps or trainer.max_steps != -1:
            return
        per_epoch = steps / epochs
        if per_epoch <= 0:
            return
        new_epochs = math.ceil(self.min_steps / per_epoch)
        trainer.fit_loop.max_epochs = new_epochs
        log.info("Small training set: %d optimizer steps per epoch, so trainer.max_epochs %d -> "
                 "%d for at least min_train_steps=%d steps (set min_train_steps=null to keep %d "
                 "epochs).", round(per_epoch), epochs, new_epochs, self.min_steps, epochs)
