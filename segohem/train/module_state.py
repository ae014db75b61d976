"""What :class:`~segohem.train.module.SegmentationModule` keeps in a checkpoint besides its
weights, and what a resumed fit restores: ``checkpoint["segohem"]`` (the run's config, the
class names, the validation summaries, the mining totals, the abandonment watch, the held-out
split lists of a folder without split files) and the LR schedule of the current run.

The split lists are not restored here: the data module reads them from the checkpoint before
the datasets are used (:func:`segohem.data.split.setup_held_out`)."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from segohem.train.abandonment import AbandonmentWatch
from segohem.train.optim import resume_schedule


class CheckpointedModule(pl.LightningModule):
    """The checkpoint hooks of ``SegmentationModule`` (its base class), over the attributes
    that ``SegmentationModule.__init__`` sets (declared here)."""

    run_config: dict[str, Any] | None
    class_names: list[str]
    best_val: dict[str, Any]
    last_val: dict[str, Any]
    mining_summary: dict[str, Any]
    _mining_run: dict[str, Any]
    _abandonment: AbandonmentWatch | None
    scheduler_factory: Any

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Checkpoints written before MaxMetric kept the best mIoU in a buffer (NaN = none yet).
        old = state_dict.pop(prefix + "best_miou", None)
        if old is not None:
            state_dict.setdefault(prefix + "best_miou.max_value", torch.nan_to_num(
                old.float(), nan=-math.inf))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds ``checkpoint["segohem"]`` (read back by :mod:`segohem.train.checkpoint`)."""
        checkpoint["segohem"] = {"config": self.run_config, "class_names": self.class_names,
                                 "best_val": self.best_val, "last_val": self.last_val,
                                 "mining": {"run": self._mining_run,
                                            "summary": self.mining_summary},
                                 "abandonment": (self._abandonment.state_dict()
                                                 if self._abandonment is not None else None),
                                 "split": self._held_out_record()}

    def _held_out_record(self) -> dict[str, Any] | None:
        """The data module's held-out split (a folder without split files:
        :class:`~segohem.data.split.HeldOutSplit`), else None."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        split = getattr(datamodule, "held_out", None)
        return split.as_dict() if split is not None else None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores ``checkpoint["segohem"]``; a resumed fit continues its own LR schedule
        (:func:`~segohem.train.optim.resume_schedule`)."""
        if (self.scheduler_factory is not None and self._trainer is not None
                and self.trainer.state.fn == "fit"):  # this run's schedule at the saved step
            resume_schedule(checkpoint, lambda opt: self.scheduler_factory(
                opt, total_steps=max(int(self.trainer.estimated_stepping_batches), 1)))
        saved = checkpoint.get("segohem", {})
        self.best_val = saved.get("best_val") or {}
        self.last_val = saved.get("last_val") or {}
        mining = saved.get("mining") or {}
        self._mining_run = mining.get("run") or {}
        self.mining_summary = mining.get("summary") or {}
        if self._abandonment is not None and saved.get("abandonment"):
            self._abandonment.load_state_dict(saved["abandonment"])
