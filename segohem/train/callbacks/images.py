"""TensorBoard image grids: input | ground truth | prediction | pixels OHEM selected."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from segohem.viz import Palette, colorize, legend, legend_entries, resolve_palette, to_display


class SegmentationImageLogger(pl.Callback):
    """Every ``every_n_epochs`` validation epochs, logs ``val/samples``: one row per image
    of the first validation batch with input | ground truth | prediction | selected pixels
    (white = kept by the loss, black = dropped, grey = tie share; ignored pixels black), and
    under the rows a legend: each class's colour and name (with more than 24 classes, those
    in the shown masks and predictions) and the ignore colour. Rank 0 only, TensorBoard
    loggers only."""

    def __init__(self, every_n_epochs: int = 1, num_samples: int = 4) -> None:
        if every_n_epochs < 1 or num_samples < 1:
            raise ValueError(f"every_n_epochs and num_samples must be >= 1, got "
                             f"{every_n_epochs}, {num_samples}.")
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples

    def _due(self, trainer: pl.Trainer) -> bool:
        return (not trainer.sanity_checking and trainer.is_global_zero
                and (trainer.current_epoch + 1) % self.every_n_epochs == 0
                and any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers))

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or not self._due(trainer):
            return
        images = batch["image"][: self.num_samples]
        masks = batch["mask"][: self.num_samples]
        with torch.no_grad():
            logits = pl_module.logits_for(images, masks.shape[-2:])
            selected_fn = getattr(pl_module.loss, "selected_pixels", None)
            selected = selected_fn(logits, masks) if selected_fn is not None else None
        if selected is None:
            selected = (masks != pl_module.ignore_index).float()
        palette = self._palette(trainer, pl_module.num_classes)
        ignore = pl_module.ignore_index
        columns = [to_display(images), colorize(masks, palette, ignore),
                   colorize(logits.argmax(1), palette, ignore),
                   selected[:, None].float().expand(-1, 3, -1, -1)]
        tiles = torch.stack(columns, dim=1).flatten(0, 1).cpu()  # row per image
        grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=0.5)
        shown = torch.cat([masks.unique(), logits.argmax(1).unique()]).tolist()
        entries = legend_entries(list(pl_module.class_names), palette, ignore, present=shown)
        grid = torch.cat([grid, legend(grid.shape[2], entries).float() / 255.0], dim=1)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Lightning writes validation scalars at global_step - 1 (last train step).
                logger.experiment.add_image("val/samples", grid, max(trainer.global_step - 1, 0))

    @staticmethod
    def _palette(trainer: pl.Trainer, num_classes: int) -> Palette:
        """The validation set's ``palette`` (:func:`segohem.viz.resolve_palette`)."""
        dataset = getattr(getattr(trainer, "datamodule", None), "val_set", None)
        return resolve_palette(getattr(dataset, "palette", None), num_classes)
