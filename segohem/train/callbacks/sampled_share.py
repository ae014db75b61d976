"""Per-class image share of the training batches: what a sampler (``data.sampler``) and the
crop made the loss see."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor


def images_with_class(masks: Tensor, num_classes: int) -> Tensor:
    """``(C,)`` int64: how many of the masks ``(N, H, W)`` contain each class at least once
    (values outside ``[0, C)``, e.g. ``ignore_index``, count for no class). Stays on the
    masks' device (no host sync)."""
    n = masks.shape[0]
    flat = masks.reshape(n, -1).long()
    known = (flat >= 0) & (flat < num_classes)
    offsets = torch.arange(n, device=flat.device).unsqueeze(1) * num_classes
    slots = torch.where(known, flat + offsets, n * num_classes).reshape(-1)
    present = torch.bincount(slots, minlength=n * num_classes + 1)[:-1] > 0
    return present.reshape(n, num_classes).sum(0)


class SampledClassShare(pl.Callback):
    """Logs ``train/sampled_image_share/<class>`` at every training epoch end: the share of
    the epoch's training images (after augmentation and crop: the batches' masks) that contain
    the class, over all ranks. With plain shuffling it is the dataset's image share of the
    class (less what crops cut away); with ``data.sampler=rare_class`` it shows how much more
    often the rare classes were drawn. A repeated draw counts each time."""

    def __init__(self) -> None:
        self._counts: Tensor | None = None
        self._images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._counts, self._images = None, 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        masks = batch["mask"]
        counts = images_with_class(masks, len(pl_module.class_names))
        self._counts = counts if self._counts is None else self._counts + counts
        self._images += masks.shape[0]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._counts is None:
            return
        totals = torch.cat([self._counts, self._counts.new_tensor([self._images])])
        totals = trainer.strategy.reduce(totals, reduce_op="sum")  # one collective under DDP
        shares = totals[:-1].float() / totals[-1].clamp(min=1).float()
        # Identical on every rank after the reduction: no further sync.
        pl_module.log_dict({f"train/sampled_image_share/{name}": share
                            for name, share in zip(pl_module.class_names, shares, strict=True)},
                           sync_dist=False, rank_zero_only=True)
