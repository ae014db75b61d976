"""``SegmentationModule``: an SMP model, a (mining) loss and dataset-level metrics in Lightning."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MaxMetric

from segohem.infer.core import padded_logits
from segohem.metrics import SegmentationMetrics
from segohem.report.metrics_json import metrics_summary
from segohem.train.abandonment import (
    AbandonmentRule,
    AbandonmentWatch,
    abandonment_message,
    rule_from,
)
from segohem.train.epoch_stats import (
    MINING_PREFIX,
    OHEM_STATS,
    EpochSums,
    add_totals,
    class_names_for,
    mining_section,
)
from segohem.train.loss_counts import needs_class_counts, set_class_counts
from segohem.train.module_state import CheckpointedModule

# Validation metrics are computed from confusion matrices already summed across ranks, so
# they are identical on every rank; Lightning's hint to sync them again is noise.
warnings.filterwarnings(
    "ignore", message=r"It is recommended to use `self\.log\('val/(mIoU|mAcc|aAcc|IoU/)")
# The per-class mining ratios are computed from sums already reduced across ranks.
warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('train/mining/")

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class SegmentationModule(CheckpointedModule):
    """Trains ``model`` with ``loss``; validates with confusion-matrix metrics.

    Batches are dicts with ``image`` ``(B, 3, H, W)`` float and ``mask`` ``(B, H, W)``
    int64 (``ignore_index`` on ignored pixels). Logits smaller than the mask (models with
    an output stride) are upsampled bilinearly to the mask size before the loss and the
    metrics.

    Logged: ``train/loss`` (every step) and ``train/loss_epoch``, on the trainer's logging steps
    ``lr`` and the loss's mining statistics ``train/ohem/{kept_fraction,fallback,threshold}``
    with their epoch means ``train/ohem/<name>_epoch`` (``fallback_epoch`` is the fallback
    rate), ``val/loss``, ``val/mIoU``, ``val/mAcc``, ``val/aAcc``, ``val/IoU/<class name>`` and
    ``val/mIoU_best`` (the best ``val/mIoU`` so far: a ``torchmetrics.MaxMetric``, synced
    across ranks and kept in checkpoints) with ``val/IoU_best/<class name>`` (each class's IoU
    at that epoch: the HPARAMS tab's columns). A minority-class rectification loss adds the epoch
    means ``train/crl/{minority_classes,rectification,active_triplets,alpha}_epoch``.

    Losses whose statistics count pixels per class (``class_valid`` / ``class_kept``) also
    get, per epoch and class, ``train/mining/kept_of_class/<class>`` (kept / valid pixels of
    that class; left out for a class without valid pixels in the epoch) and
    ``train/mining/share_of_kept/<class>`` (the class's share of all kept pixels), from sums
    over the epoch and the ranks (kept in :mod:`segohem.train.epoch_stats`). They count what
    the loss saw: the pixels of the training batches as drawn (after augmentation and, with
    ``data.sampler=rare_class``, of the sampled images), not the dataset; the dataset's own
    shares are the data module's ``train_stats`` (``metrics.json``'s ``data``). ``mining_summary``
    holds these ratios for the last epoch and the whole run with the fallback rate (see
    :func:`~segohem.train.epoch_stats.mining_section`); it is kept in checkpoints and written to
    ``metrics.json`` by :class:`~segohem.train.callbacks.MetricsWriter`.

    Abandoned classes (:mod:`segohem.train.abandonment`): after every training epoch that had a
    validation, a class whose validation IoU stayed below ``abandonment.iou_below`` while its
    ``kept_of_class`` stayed above ``abandonment.kept_above`` for the last
    ``abandonment.validations`` validations (from ``abandonment.start`` x
    ``trainer.max_epochs`` on) is logged as a TensorBoard text
    (``warnings/abandoned_classes``, rank 0), ``train/mining/abandoned_classes`` counts such
    classes per epoch, and ``mining_summary["abandoned_classes"]`` lists those still
    abandoned (``metrics.json``; ``segohem-train`` repeats them in ``train.log`` at the end).

    Args:
        model: maps ``(B, 3, H, W)`` images to ``(B, C, h, w)`` logits.
        loss: ``(logits, labels) -> scalar``; may expose ``last_stats`` (mining statistics)
            and ``selected_pixels`` (used by the image logger).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``(optimizer, total_steps=...) -> LRScheduler`` stepped every iteration,
            or None for a constant rate.
        num_classes: C.
        class_names: C names (default ``class_0`` ...).
        ignore_index: label value excluded from loss and metrics.
        compile: ``torch.compile`` the model.
        channels_last: use the channels_last memory format for model and inputs.
        abandonment: the :class:`~segohem.train.abandonment.AbandonmentRule` (or a mapping of its
            fields, ``enabled: false`` or None: off).
        run_config: the run's resolved config (``segohem-train`` gives it), kept in checkpoints
            (``checkpoint["segohem"]["config"]``, to rebuild the model) and read by the
            ``HparamsLogger`` / ``RankConfigCheck`` callbacks.

    Loss terms whose weight follows the class imbalance (``needs_class_counts``: CRL with
    ``alpha=None``) get the training set's pixel counts per class in :meth:`setup`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        compile: bool = False,
        channels_last: bool = False,
        abandonment: AbandonmentRule | Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        names = list(class_names) if class_names is not None else [
            f"class_{i}" for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names given for num_classes={num_classes}: "
                             f"{names}")
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = num_classes
        self.class_names = names
        self.ignore_index = ignore_index
        self.compile_model = compile
        self.channels_last = channels_last
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
        # The best val/mIoU so far: a torchmetrics state (synced across ranks, in state_dict).
        self.best_miou = MaxMetric(nan_strategy="ignore")
        self.best_miou.persistent(True)
        self.last_val: dict[str, Any] = {}
        self.best_val: dict[str, Any] = {}
        self.run_config = dict(run_config) if run_config is not None else None
        self._epoch_sums = EpochSums()  # this epoch's training steps, summed on the device
        self._mining_run: dict[str, Any] = {}  # run totals (host), see _end_mining_epoch
        self.mining_summary: dict[str, Any] = {}
        rule = rule_from(abandonment)
        self._abandonment = AbandonmentWatch(rule) if rule is not None else None

    def setup(self, stage: str) -> None:
        """Before a fit: the loss terms that wait for the class counts get them from the data
        module's ``train_stats`` (computed in its ``setup``, which runs first) or its
        ``train_set`` (:func:`~segohem.train.loss_counts.set_class_counts`)."""
        if stage == "fit" and needs_class_counts(self.loss):
            data = self.trainer.datamodule
            set_class_counts(self.loss, getattr(data, "train_set", None),
                             self.class_names, self.ignore_index,
                             report=self.trainer.is_global_zero,
                             stats=getattr(data, "train_stats", None))

    def configure_model(self) -> None:
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.compile_model and not getattr(self, "_compiled", False):
            # In place (nn.Module.compile): the state_dict keys stay those of the plain
            # model, so checkpoints load with or without compile.
            self.model.compile()
            self._compiled = True

    def forward(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` images -> ``(B, C, h, w)`` logits."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def logits_for(self, images: Tensor, size: Sequence[int]) -> Tensor:
        """``(B, C, H', W')`` logits for the label size ``size = (H', W')``.

        The input is zero-padded (the mean colour after normalisation) to a multiple of 32 for
        the network and the padding is cut off again (:func:`segohem.infer.core.padded_logits`,
        the same as ``segohem-eval`` / ``segohem-predict``), so validation images of any size
        work; logits are upsampled bilinearly when the label is larger than the image."""
        logits = padded_logits(self, images, 32)
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        masks = batch["mask"]
        logits = self.logits_for(batch["image"], masks.shape[-2:])
        loss = self.loss(logits, masks)
        batch_size = masks.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch_size)
        # self.log costs ~0.2-0.6 ms per call on the host: log the rest only on the
        # steps Lightning writes, and accumulate the epoch means on the device.
        values = self._epoch_sums.add(loss, getattr(self.loss, "last_stats", None),
                                 getattr(self.loss, "last_rectification", None))
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True,
                     on_epoch=False, batch_size=batch_size)
            if values is not None:
                for name, value in zip(OHEM_STATS, values, strict=True):
                    self.log(f"train/ohem/{name}", value, on_step=True, on_epoch=False,
                             batch_size=batch_size)
        return loss

    def on_train_epoch_end(self) -> None:
        sums, self._epoch_sums = self._epoch_sums, EpochSums()
        for name, value in sums.loss_means().items():
            self.log(name, value, sync_dist=True)
        if sums.steps and sums.mines:
            self._end_mining_epoch(sums)
        for name, value in sums.rectification_means().items():
            self.log(name, value, sync_dist=True)

    def _end_mining_epoch(self, sums: EpochSums) -> None:
        """Sum the epoch's per-class pixels over the ranks (one collective; the epoch's fallback
        rate is averaged), log the per-class ratios, add the epoch to the run totals and
        update :attr:`mining_summary`."""
        epoch = sums.mining_totals(
            lambda packed: self.trainer.strategy.reduce(packed, reduce_op="sum"),
            self.trainer.world_size)
        names = class_names_for(self.class_names, len(epoch.get("class_valid", ())))
        section = mining_section(epoch, names)
        for key in ("kept_of_class", "share_of_kept"):
            for name, value in section.get(key, {}).items():
                if value is not None:
                    self.log(f"{MINING_PREFIX}/{key}/{name}", value)
        self._mining_run = add_totals(self._mining_run, epoch)
        self.mining_summary = {"epoch": self.current_epoch, "step": self.global_step,
                               "last_epoch": section,
                               "run": mining_section(self._mining_run, names)}
        if self._abandonment is not None and "kept_of_class" in section:
            self._watch_abandoned(section["kept_of_class"])

    def _watch_abandoned(self, kept_of_class: dict[str, float | None]) -> None:
        """Feed this epoch's validation IoU and kept ratios to the abandonment watch (only
        when this epoch was validated), log the count and a TensorBoard text per warning."""
        watch = self._abandonment
        if watch is None or self.last_val.get("epoch") != self.current_epoch:
            return
        fired = watch.update(self.current_epoch, self.last_val.get("IoU") or {}, kept_of_class,
                             self.trainer.max_epochs)
        self.log(f"{MINING_PREFIX}/abandoned_classes", float(len(fired)))
        if watch.flagged:
            self.mining_summary["abandoned_classes"] = list(watch.flagged.values())
        if fired and self.trainer.is_global_zero:
            ce_weight = getattr(self.loss, "ce_weight", None)
            text = "\n\n".join(abandonment_message(e, ce_weight) for e in fired)
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_text("warnings/abandoned_classes", text,
                                               global_step=self.global_step)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        masks = batch["mask"]
        logits = self.logits_for(batch["image"], masks.shape[-2:])
        self.log("val/loss", self.loss(logits, masks), on_epoch=True,
                 batch_size=masks.shape[0], sync_dist=True)
        self.val_metrics.update(logits.argmax(1), masks)

    def on_validation_epoch_end(self) -> None:
        results = self.val_metrics.compute()
        self.val_metrics.reset()
        if self.trainer.sanity_checking:
            return
        miou = results["mIoU"]
        previous = self.best_val.get("mIoU")  # None before the first (non-NaN) validation
        if previous is None or miou.item() > previous:
            self.best_val = self._summary(results)
        self.last_val = self._summary(results)
        self.best_miou.update(miou)
        best = self.best_miou.compute()  # -inf while every mIoU was NaN: logged as NaN
        best = torch.where(best > -math.inf, best, math.nan)
        self.log_dict({"val/mIoU": miou, "val/mAcc": results["mAcc"],
                       "val/aAcc": results["aAcc"], "val/mIoU_best": best})
        for name, iou in zip(self.class_names, results["IoU"], strict=True):
            self.log(f"val/IoU/{name}", iou)
        for name, iou in (self.best_val.get("IoU") or {}).items():  # the HPARAMS tab's columns
            self.log(f"val/IoU_best/{name}", math.nan if iou is None else iou)

    def _summary(self, results: dict[str, Tensor]) -> dict[str, Any]:
        """JSON-friendly metrics of one validation epoch
        (:class:`~segohem.report.metrics_json.ValidationSummary`)."""
        return {"epoch": self.current_epoch, "step": self.global_step,
                **metrics_summary(results, self.class_names)}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=max(total, 1))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
