"""Counting the optimizer steps that fp16 mixed precision skips."""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import torch


class SkippedStepCounter(pl.Callback):
    """Counts optimizer steps the fp16 ``GradScaler`` skipped (inf / NaN gradients) and logs
    the running total as ``train/amp_skipped_steps`` at every epoch end.

    A skipped step shows as a drop of the scaler's scale between ``on_before_optimizer_step``
    and the end of the batch (``GradScaler.update`` backs off after an overflow). The
    comparison stays on the device (the scale is read through the scaler's scale tensor,
    not ``get_scale()``, which would sync every step). Without an enabled scaler (fp32,
    bf16) it does nothing.

    A skipped first step also makes PyTorch warn that ``lr_scheduler.step()`` ran before
    ``optimizer.step()``; that warning is silenced here because this counter reports it.
    """

    def __init__(self) -> None:
        self.skipped: torch.Tensor | None = None
        self._scale_before: torch.Tensor | None = None

    @staticmethod
    def _scale(trainer: pl.Trainer) -> torch.Tensor | None:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is None or not scaler.is_enabled():
            return None
        scale = getattr(scaler, "_scale", None)  # device tensor; None before the first step
        return scale if isinstance(scale, torch.Tensor) else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`"
                                    r" before `optimizer\.step\(\)`")

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: Any) -> None:
        scale = self._scale(trainer)
        self._scale_before = None if scale is None else scale.detach().clone()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        scale = self._scale(trainer)
        if scale is None or self._scale_before is None:
            return
        dropped = (scale < self._scale_before).to(torch.int64).reshape(())
        self.skipped = dropped if self.skipped is None else self.skipped + dropped
        self._scale_before = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.skipped is not None:
            pl_module.log("train/amp_skipped_steps", self.skipped.float())

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": None if self.skipped is None else int(self.skipped)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        value = state_dict.get("skipped")
        self.skipped = None if value is None else torch.tensor(value)
