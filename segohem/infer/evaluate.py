"""The evaluation run behind ``segohem-eval``: a checkpoint, a dataset split, whole-image or
sliding-window inference with optional TTA, dataset-level metrics (exact under DDP)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from segohem.config.hydra_logging import use_hydra_logging
from segohem.data import build_dataset
from segohem.data.datamodule import SegmentationDataModule
from segohem.infer.core import InferenceConfig, predict_scores
from segohem.metrics import SegmentationMetrics
from segohem.report.metrics_json import metrics_summary, read_report, summary_table, write_report
from segohem.train.checkpoint import load_model

log = logging.getLogger(__name__)


class EvaluationModule(pl.LightningModule):
    """Runs :func:`~segohem.infer.core.predict_scores` on validation batches and accumulates a
    confusion matrix (summed across ranks once, at the end).

    Args:
        model: ``(B, 3, H, W) -> (B, C, h, w)`` logits.
        inference: whole / sliding window / TTA settings.
        class_names: one name per class.
        ignore_index: label value that is not scored.
        output: the directory where rank 0 writes ``metrics.json`` (an
            :class:`~segohem.report.metrics_json.EvaluationReport`; None: nowhere).
        info: its entries besides the metrics (checkpoint, dataset, split, samples, eval).
    """

    def __init__(self, model: torch.nn.Module, inference: InferenceConfig,
                 class_names: list[str], ignore_index: int = 255,
                 output: Path | None = None, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.inference = inference
        self.class_names = list(class_names)
        self.metrics = SegmentationMetrics(len(class_names), ignore_index=ignore_index)
        self.output, self.info = output, info or {}
        self.results: dict[str, Any] = {}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        masks = batch["mask"]
        scores = predict_scores(self.model, batch["image"], self.inference)
        if scores.shape[-2:] != masks.shape[-2:]:  # a transform resized the image only
            raise ValueError(f"prediction {tuple(scores.shape[-2:])} and mask "
                             f"{tuple(masks.shape[-2:])} differ in size")
        self.metrics.update(scores.argmax(1), masks)

    def on_validation_epoch_end(self) -> None:
        results = self.metrics.compute()
        self.metrics.reset()
        self.results = dict(metrics_summary(results, self.class_names))
        self.log_dict({"eval/mIoU": results["mIoU"], "eval/mAcc": results["mAcc"],
                       "eval/aAcc": results["aAcc"]})
        if self.trainer.is_global_zero and self.output is not None:
            write_report(self.output, {**self.info, **self.results})
            log.info("Evaluation of %s:\n%s", self.info.get("checkpoint"),
                     summary_table(self.results, self.class_names))


def dataset_config(cfg: DictConfig, trained: DictConfig) -> DictConfig:
    """The dataset node to evaluate: the command line's ``dataset=...`` if given, else the
    checkpoint's (with ``data_root`` replacing its root)."""
    node = cfg.get("dataset")
    if node is None:
        node = OmegaConf.create(OmegaConf.to_container(trained.dataset, resolve=True))
        if cfg.get("data_root"):
            with open_dict(node):
                node.root = str(cfg.data_root)
                for key in ("train_set", "val_set"):
                    if key in node and "root" in node[key]:
                        node[key].root = str(cfg.data_root)
    elif cfg.get("data_root"):
        raise ValueError("data_root only applies to the checkpoint's dataset; with dataset=... "
                         "set dataset.root=... instead.")
    return node


def build_split(node: DictConfig, split: str, held_out: dict[str, Any] | None = None) -> Any:
    """The evaluation dataset: the config's ``val_set`` with ``split`` and the validation
    transform (whole images, no randomness). ``held_out``: the checkpoint's held-out split
    lists (a folder trained without split files), used for the split they name."""
    val = OmegaConf.create(OmegaConf.to_container(node.val_set, resolve=True))
    with open_dict(val):
        val.split = split
        if held_out and split in held_out:
            val.split_lists = {name: list(held_out[name]) for name in ("train", "val")}
            log.info("Split %r: the checkpoint's held-out list (%d images, val_fraction=%s, "
                     "split_seed=%s)", split, len(held_out[split]), held_out.get("val_fraction"),
                     held_out.get("split_seed"))
    return build_dataset(val)


def evaluate(cfg: DictConfig) -> float | None:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; writes ``metrics.json`` in the run
    directory and returns the mIoU."""
    use_hydra_logging()
    output_dir = Path(cfg.paths.output_dir)
    inference = InferenceConfig(**OmegaConf.to_container(cfg.eval, resolve=True))
    requested = cfg.get("dataset")
    loaded = load_model(cfg.ckpt_path, num_classes=requested.num_classes if requested else None,
                        trust=cfg.trust_checkpoint)
    node = dataset_config(cfg, loaded.config)
    # The checkpoint's held-out lists belong to its own dataset, not to a `dataset=...` given.
    dataset = build_split(node, cfg.split, None if requested else loaded.held_out)
    info = {"checkpoint": str(Path(cfg.ckpt_path).resolve()), "dataset": node.get("name"),
            "split": cfg.split, "samples": len(dataset),
            "eval": OmegaConf.to_container(cfg.eval, resolve=True)}
    module = EvaluationModule(loaded.model, inference, loaded.class_names,
                              loaded.ignore_index, output_dir, info)
    data = SegmentationDataModule(dataset, dataset, batch_size=cfg.batch_size,
                                  num_workers=cfg.num_workers, val_batch_size=cfg.batch_size)
    trainer: pl.Trainer = _trainer(cfg)
    log.info("Evaluating %s on %s/%s (%d images), mode=%s scales=%s flip=%s", cfg.ckpt_path,
             info["dataset"], cfg.split, len(dataset), inference.mode, inference.scales,
             inference.flip)
    trainer.validate(module, datamodule=data, verbose=False)
    # Ranks in child processes (ddp_fork / ddp_spawn): rank 0 wrote the file.
    results = module.results or read_report(output_dir)
    return results.get("mIoU")


def _trainer(cfg: DictConfig) -> pl.Trainer:
    return instantiate(cfg.trainer, logger=False, enable_checkpointing=False,
                       num_sanity_val_steps=0, limit_val_batches=None)
