"""Train small datasets for enough optimizer steps: raise the default ``max_epochs`` to a step
budget, never a run length the user set."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import lightning.pytorch as pl

log = logging.getLogger(__name__)


class MinTrainSteps(pl.Callback):
    """Raise the trainer's default ``max_epochs`` so that a run takes at least ``min_steps``
    optimizer steps.

    An epoch count is a poor default across dataset sizes: 18 epochs are ~6 700 steps on
    Cityscapes (batch 8) but 450 on a folder of 200 images, too few to learn rare classes
    (measured in docs/benchmarks.md). Decided in ``setup``, before the optimizer and the LR
    schedule are built, from Lightning's own step estimate (batches per epoch on this rank,
    gradient accumulation), so the schedule spans the longer run and a resumed run gets the
    same length.

    Args:
        min_steps: the step budget; None or 0 turns it off.
        typed: the trainer's run-length keys the user set (``max_epochs``, ``max_steps``,
            ``limit_train_batches``, ``max_time``, ``overfit_batches``, ``fast_dev_run``;
            ``${segohem.typed_run_length:}`` in conf/callbacks/minimal.yaml). When any is set
            the run length is the user's: nothing is raised, and the log says what
            ``min_steps`` would have chosen.
    """

    def __init__(self, min_steps: int | None, typed: Sequence[str] = ()) -> None:
        if min_steps is not None and (isinstance(min_steps, bool) or min_steps < 0):
            raise ValueError(f"min_train_steps must be None or an int >= 0, got {min_steps!r}.")
        self.min_steps = int(min_steps or 0)
        self.typed = list(typed)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not self.min_steps:
            return
        steps = trainer.estimated_stepping_batches  # also loads the training batches' count
        batches = trainer.num_training_batches
        if not math.isfinite(batches) or batches < 1:
            return
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        epochs = trainer.fit_loop.max_epochs
        needed = math.ceil(self.min_steps / per_epoch)
        if self.typed:
            values = ", ".join(f"trainer.{k}={getattr(trainer, k)!r}" if hasattr(trainer, k)
                               else f"trainer.{k}" for k in self.typed)
            log.info("Run length as you set it: %s, kept (min_train_steps=%d would have chosen "
                     "max_epochs=%d at %d optimizer steps per epoch).", values, self.min_steps,
                     needed, per_epoch)
            return
        if epochs is None or epochs < 1 or trainer.max_steps != -1 or steps >= self.min_steps:
            return
        trainer.fit_loop.max_epochs = needed
        log.info("Small training set: %d optimizer steps per epoch, so trainer.max_epochs %d -> "
                 "%d for at least min_train_steps=%d steps (set trainer.max_epochs or "
                 "min_train_steps=null to train exactly %d epochs).", per_epoch, epochs, needed,
                 self.min_steps, epochs)
