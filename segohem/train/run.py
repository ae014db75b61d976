"""The training run behind ``segohem-train``: build everything from the config, fit, report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from omegaconf import DictConfig, OmegaConf

from segohem.config.checks import ConfigError, check_config
from segohem.config.hydra_logging import use_hydra_logging
from segohem.config.resolvers import DEVICE
from segohem.data import build_dataset
from segohem.data.class_counts import class_pixel_counts, describe_counts
from segohem.data.geometry import resolve_auto_geometry
from segohem.losses import BinaryOhemLoss, OhemCELoss
from segohem.report.metrics_json import class_mean_iou, read_report, summary_table
from segohem.sweep.pruning import OptunaPruning
from segohem.train.abandonment import abandonment_message

log = logging.getLogger(__name__)


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_safe_strategy(strategy: Any) -> str | None:
    """``"ddp_fork"`` when ``strategy`` is ``"ddp"`` inside a Hydra multirun, else None
    (keep the configured strategy).

    Lightning's ``ddp`` starts ranks >= 1 by re-running the command line: inside a multirun
    each child would re-run the whole sweep (a second sweep folder, and with Optuna other
    hyperparameters than rank 0). Forked ranks share the job's already-composed config
    instead. Not switched when a cluster (SLURM, torchrun) starts the ranks itself.
    """
    if strategy != "ddp" or not _is_multirun():
        return None
    if SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return None
    log.info("Multirun: trainer.strategy=ddp -> ddp_fork (each job forks its ranks, so "
             "they share its hyperparameters and the sweep is not re-run).")
    return "ddp_fork"


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``None`` | a checkpoint file | ``last`` (this run dir's ``checkpoints/last.ckpt``)."""
    if ckpt_path in (None, ""):
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = (" `ckpt_path=last` resumes from the run directory's own last checkpoint: "
                "point hydra.run.dir at the run to resume." if ckpt_path == "last" else "")
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no checkpoint file at {path}.{hint}")
    return str(path)


def _set_loss_class_counts(loss: Any, dataset_cfg: DictConfig, class_names: Any) -> None:
    """Give every loss term whose weight follows the class imbalance
    (``MinorityRectificationLoss`` with ``alpha=None``) the training set's pixel counts per
    class; fails before training on an empty or unlabelled training set. The masks are read
    from a copy of the training set without its transform (the seeded augmentation stream
    stays untouched)."""
    num_classes = dataset_cfg.num_classes
    names = list(class_names) if class_names is not None else [
        f"class_{i}" for i in range(num_classes)]
    train_set = build_dataset(dataset_cfg.train_set, transform=None)
    counts = class_pixel_counts(train_set, num_classes, dataset_cfg.ignore_index)
    for term in loss.modules():
        if getattr(term, "needs_class_counts", False):
            try:
                alpha = term.set_class_counts(counts, names)
            except ValueError as err:
                raise ConfigError(f"loss.alpha=null: {err}") from None
            log.info("Training pixels per class: %s -> loss alpha = %.4g",
                     describe_counts(counts, names), alpha)
    absent = [n for n, c in zip(names, counts, strict=True) if c == 0]
    if absent:
        log.warning("Classes without a single training pixel (they cannot be learned): %s",
                    absent)


FALLBACK_DOMINATES = 0.5
"""Fallback rate from which the end-of-run report says the minimum-count rule dominated."""


def mining_report(summary: dict[str, Any], loss: Any) -> str | None:
    """One line on what decided the pixel selection over the run: the loss threshold or its
    minimum-count fallback (``summary``: ``SegmentationModule.mining_summary``). None when
    there is no summary or the loss has no such rule (top-k keeps a fixed fraction)."""
    rate = (summary.get("run") or {}).get("fallback_rate")
    modules = loss.modules() if hasattr(loss, "modules") else ()
    miner = next((m for m in modules if isinstance(m, (OhemCELoss, BinaryOhemLoss))), None)
    if rate is None or miner is None:
        return None
    dominated = rate >= FALLBACK_DOMINATES
    if isinstance(miner, OhemCELoss):
        rule = "n_min fallback"
        verdict = ("dominated: the threshold rarely kept n_min pixels; raise loss.thresh or "
                   "lower loss.n_min" if dominated else "the threshold decided")
    else:
        rule = "min_neg floor"
        verdict = ("dominated: neg_ratio x positives was rarely above it; lower loss.min_neg "
                   "or raise loss.neg_ratio" if dominated else "neg_ratio decided")
    return f"Mining: {rule} used in {100 * rate:.0f} % of training steps ({verdict})"


def device_line(trainer: pl.Trainer, trainer_cfg: DictConfig) -> str:
    """``Device: 1 x cuda (NVIDIA H100, compute capability 9.0), precision bf16-mixed`` plus,
    under ``trainer=auto``, why it was chosen."""
    import torch

    kind = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    where = ""
    if kind == "cuda":
        index = trainer.strategy.root_device.index or 0
        major, minor = torch.cuda.get_device_capability(index)
        where = f" ({torch.cuda.get_device_name(index)}, compute capability {major}.{minor})"
    line = (f"Device: {trainer.num_devices} x {kind}{where}, precision {trainer.precision}, "
            f"strategy {type(trainer.strategy).__name__}")
    raw = OmegaConf.to_container(trainer_cfg, resolve=False).get("accelerator")
    if str(raw).startswith("${" + DEVICE + ":"):
        line += (" (trainer=auto: " + ("CUDA available; bf16-mixed from compute capability "
                                       "8.0, else 16-mixed" if kind == "cuda" else
                                       "no CUDA device") + "; trainer=cpu / gpu / ddp to choose)")
    return line


def _check_optimized_classes(classes: Any, class_names: Any) -> None:
    unknown = [c for c in classes or () if c not in list(class_names)]
    if unknown:
        raise ConfigError(f"optimized_classes={list(classes)}: {unknown} not among the "
                          f"dataset's classes {list(class_names)}.")


def _pruned_at(callbacks: list[Any]) -> int | None:
    """The epoch after which an Optuna sweep's pruner stopped this run, else None."""
    pruning = next((c for c in callbacks if isinstance(c, OptunaPruning)), None)
    return pruning.pruned_at() if pruning is not None else None


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """One object per node of a group of named ``_target_`` nodes (callbacks, logger)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None]


def train(cfg: DictConfig) -> float | None:
    """Fit ``cfg.module`` on ``cfg.data``; returns the value of ``cfg.optimized_metric``.

    Everything is built from the config's ``_target_`` nodes: the data module (conf/data/,
    over the dataset config), the Lightning module (conf/module/: model, loss, optimizer,
    scheduler), the callbacks, the loggers and the trainer (its plugins included).
    """
    use_hydra_logging()
    check_config(cfg)
    resolve_auto_geometry(cfg.dataset)  # crop_size / scale_range: auto -> from the images
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_dataset(cfg.data)
    class_names = cfg.dataset.get("class_names") or getattr(datamodule.train_set, "classes", None)
    module = instantiate(cfg.module, class_names=class_names)
    _check_optimized_classes(cfg.get("optimized_classes"), module.class_names)
    if any(getattr(m, "needs_class_counts", False) for m in module.loss.modules()):
        _set_loss_class_counts(module.loss, cfg.dataset, class_names)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)

    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    extra = {}
    strategy = sweep_safe_strategy(cfg.trainer.get("strategy"))
    if strategy is not None:
        extra["strategy"] = strategy
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      **extra)

    log.info("Run directory: %s", output_dir)
    log.info(device_line(trainer, cfg.trainer))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    # Under ddp_fork / ddp_spawn the ranks ran in child processes: read rank 0's results.
    report = read_report(output_dir)
    best = module.best_val or report.get("best") or {}
    if trainer.is_global_zero and best:
        log.info("Best validation epoch %s:\n%s", best.get("epoch"),
                 summary_table(best, module.class_names))
    mining = module.mining_summary or report.get("mining") or {}
    mining_line = mining_report(mining, module.loss)
    if trainer.is_global_zero and mining_line:
        log.info(mining_line)
    if trainer.is_global_zero:
        for entry in mining.get("abandoned_classes") or ():
            log.warning("Abandoned class: %s", abandonment_message(
                entry, getattr(module.loss, "ce_weight", None)))
    if (pruned := _pruned_at(callbacks)) is not None:
        raise optuna.TrialPruned(f"pruned by the study's pruner after epoch {pruned}")
    metric_name = cfg.get("optimized_metric")
    if not metric_name:
        return None
    if classes := cfg.get("optimized_classes"):
        return class_mean_iou(best, list(classes)) if best.get("IoU") else None
    if metric_name == "val/mIoU_best" and best.get("mIoU") is not None:
        return best["mIoU"]
    value = trainer.callback_metrics.get(metric_name)
    if value is None:
        log.warning("optimized_metric=%r was never logged (no validation ran?); returning "
                    "None. Logged metrics: %s", metric_name, sorted(trainer.callback_metrics))
        return None
    return float(value)
