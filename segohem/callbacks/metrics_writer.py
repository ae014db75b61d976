"""``metrics.json``: last and best validation metrics, per-class IoU by class name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning.pytorch as pl


class MetricsWriter(pl.Callback):
    """After every validation (rank 0), writes ``{"last": ..., "best": ...}`` where each is
    the ``SegmentationModule`` summary (epoch, step, mIoU, mAcc, aAcc, IoU and Acc by
    class name; null for classes absent from both prediction and ground truth).
    Written atomically (temporary file + rename)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        last, best = getattr(pl_module, "last_val", {}), getattr(pl_module, "best_val", {})
        if not last:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"last": last, "best": best}, indent=2) + "\n")
        os.replace(tmp, self.path)
