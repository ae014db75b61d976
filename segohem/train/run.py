"""The training run behind ``segohem-train``: check the config, seed, build everything from the
config, fit, return the optimized metric."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segohem.config.checks import ConfigError, check_config
from segohem.config.hydra_logging import use_hydra_logging
from segohem.config.resolvers import DEVICE, SWEEP_SAFE_STRATEGY
from segohem.data import build_dataset
from segohem.data.geometry import resolve_auto_geometry
from segohem.report.metrics_json import class_mean_iou
from segohem.sweep.pruning import OptunaPruning

log = logging.getLogger(__name__)


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


def device_line(trainer: pl.Trainer, trainer_cfg: DictConfig) -> str:
    """``Device: 1 x cuda (NVIDIA H100, compute capability 9.0), precision bf16-mixed`` plus,
    under ``trainer=auto``, why it was chosen, and inside a multirun, why ``ddp`` became
    ``ddp_fork``."""
    import torch

    kind = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    where = ""
    if kind == "cuda":
        index = trainer.strategy.root_device.index or 0
        major, minor = torch.cuda.get_device_capability(index)
        where = f" ({torch.cuda.get_device_name(index)}, compute capability {major}.{minor})"
    line = (f"Device: {trainer.num_devices} x {kind}{where}, precision {trainer.precision}, "
            f"strategy {type(trainer.strategy).__name__}")
    raw = OmegaConf.to_container(trainer_cfg, resolve=False)
    if str(raw.get("accelerator")).startswith("${" + DEVICE + ":"):
        line += (" (trainer=auto: " + ("CUDA available; bf16-mixed from compute capability "
                                       "8.0, else 16-mixed" if kind == "cuda" else
                                       "no CUDA device") + "; trainer=cpu / gpu / ddp to choose)")
    if (str(raw.get("strategy")).startswith("${" + SWEEP_SAFE_STRATEGY + ":")
            and trainer_cfg.strategy == "ddp_fork"):
        line += (" (multirun: ddp -> ddp_fork, each job forks its ranks, so they share its "
                 "hyperparameters and the sweep is not re-run)")
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


def optimized_value(metrics: Mapping[str, Any], name: str | None,
                    classes: Sequence[str] | None = None) -> float | None:
    """The value a sweeper optimizes, from the trainer's ``callback_metrics`` (under
    ``ddp_fork`` / ``ddp_spawn`` Lightning sends rank 0's back to the main process).

    ``classes`` (``optimized_classes``): the mean of their ``val/IoU_best/<class>`` (their IoU
    at the best-mIoU epoch; an undefined IoU counts 0); else the metric ``name``
    (``optimized_metric``, e.g. ``val/mIoU_best``). None without a ``name``, or with a warning
    when the metric was never logged (no validation ran)."""
    if not name:
        return None
    keys = [f"val/IoU_best/{c}" for c in classes] if classes else [name]
    missing = [key for key in keys if metrics.get(key) is None]
    if missing:
        log.warning("optimized_metric=%r: %s never logged (no validation ran?); returning "
                    "None. Logged metrics: %s", name, missing, sorted(metrics))
        return None
    values = {key: float(metrics[key]) for key in keys}
    if not classes:
        return values[name]
    iou = {c: None if math.isnan(v) else v for c, v in zip(classes, values.values(), strict=True)}
    return class_mean_iou({"IoU": iou}, list(classes))


def train(cfg: DictConfig) -> float | None:
    """Fit ``cfg.module`` on ``cfg.data``; returns the value of ``cfg.optimized_metric``
    (:func:`optimized_value`).

    Everything is built from the config's ``_target_`` nodes: the data module (conf/data/,
    over the dataset config), the Lightning module (conf/module/: model, loss, optimizer,
    scheduler; it gives the loss the class counts it needs in ``setup``), the callbacks (the
    end-of-run report included), the loggers and the trainer (its plugins, and the strategy
    that ``trainer=ddp`` picks for a multirun, included).
    """
    use_hydra_logging()
    check_config(cfg)
    resolve_auto_geometry(cfg.dataset)  # crop_size / scale_range: auto -> from the images
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_dataset(cfg.data)
    if hasattr(datamodule, "resume_from"):  # a resumed fit keeps its held-out split lists
        datamodule.resume_from = ckpt_path
    class_names = cfg.dataset.get("class_names") or getattr(datamodule.train_set, "classes", None)
    # A partial: the resolved config is an argument, not a config node to instantiate.
    module = instantiate(cfg.module, _partial_=True)(
        class_names=class_names, run_config=OmegaConf.to_container(cfg, resolve=True))
    _check_optimized_classes(cfg.get("optimized_classes"), module.class_names)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    log.info("Run directory: %s", output_dir)
    log.info(device_line(trainer, cfg.trainer))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    if (pruned := _pruned_at(callbacks)) is not None:
        raise optuna.TrialPruned(f"pruned by the study's pruner after epoch {pruned}")
    return optimized_value(trainer.callback_metrics, cfg.get("optimized_metric"),
                           cfg.get("optimized_classes"))
