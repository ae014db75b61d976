"""TensorBoard's HPARAMS tab for comparing runs: the knobs a user sets or sweeps, one column
each, and the best epoch's metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

Scalar = bool | int | float | str


def flatten(config: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Scalar]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (``sep``); lists become one string column, None
    ``"null"``, booleans ``"true"`` / ``"false"``.

    Not left to the logger's own flattening (``TensorBoardLogger.log_hyperparams`` flattens
    nested dicts too): Lightning also splits lists of dicts into one column per item and
    key and drops empty lists; here each list is one column."""
    flat: dict[str, Scalar] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + sep, sep))
        elif value is None:
            flat[name] = "null"
        elif isinstance(value, bool):  # a string: TensorBoard would show 1.0 / 0.0
            flat[name] = "true" if value else "false"
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


KNOBS: dict[str, tuple[str, ...] | None] = {
    "loss": None,                                  # None: every key of the group
    "model": ("arch", "encoder_name", "encoder_weights"),
    "optimizer": ("lr", "weight_decay", "momentum"),
    "scheduler": None,
    "dataset": ("crop_size", "batch_size", "num_classes"),
}
"""Per config group, the keys logged as ``<group>.<key>`` beside the group's option name."""

NOT_LOGGED = ("hydra", "callbacks", "logger", "paths", "data", "module")
"""Override prefixes never logged: wiring, callbacks, loggers and paths."""

PATH_WORDS = ("root", "dir", "path", "file", "ckpt")
"""An override key containing one of these names a path: not logged."""

NO_EFFECT = ("num_workers", "persistent_workers", "pin_memory", "enable_progress_bar",
             "enable_model_summary", "log_every_n_steps", "image_log_every_n_epochs",
             "image_log_samples")
"""Override keys (last part) that do not change what is learned: not logged."""


def run_hparams(config: Mapping[str, Any], choices: Mapping[str, str | None],
                overrides: Sequence[str] = (), run: Mapping[str, Scalar] | None = None
                ) -> dict[str, Scalar]:
    """The hyperparameters of a run as HPARAMS columns, with readable dotted names.

    Args:
        config: the run's resolved config (``SegmentationModule.run_config``).
        choices: the option chosen per config group (Hydra's ``runtime.choices``); a group
            without one is named by its ``_target_``'s class (``dataset``: its ``name``).
        overrides: the job's command-line overrides (a multirun: the swept values); every
            key not already a column, and not a hydra / callback / logger / path key nor
            one that does not change what is learned (:data:`NO_EFFECT`), is added with its
            value from ``config``.
        run: what only the trainer knows (``trainer.precision``, ``trainer.devices``,
            ``trainer.max_epochs`` after ``min_train_steps``, ``trainer.max_steps``).

    Returns:
        ``{"loss": "ohem_dice", "loss.thresh": 0.7, ..., "seed": 0, ...}``: no ``_target_``
        (or other ``_``-keys), no callback, logger or path key.
    """
    hp: dict[str, Scalar] = {}
    for group, keys in KNOBS.items():
        node = config.get(group)
        if not isinstance(node, Mapping):
            hp[group] = choices.get(group) or "null"
            continue
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        hp[group] = choices.get(group) or str(node.get("name") or target or "null")
        knobs = {k: v for k, v in node.items()
                 if not str(k).startswith("_") and (keys is None or k in keys)}
        hp.update(flatten(knobs, f"{group}.", "."))
    hp["seed"] = config.get("seed", "null")
    hp["min_train_steps"] = "null" if config.get("min_train_steps") is None else config[
        "min_train_steps"]
    hp.update(run or {})
    tree = OmegaConf.create(dict(config))  # dotted lookups (segohem.report.jobs, with pandas, is
    missing = object()                     #   too heavy to import at every run's start)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        last = key.rsplit(".", 1)[-1]
        if (key in hp or key.split(".", 1)[0] in NOT_LOGGED or "=" not in override
                or last in NO_EFFECT
                or any(word in last for word in PATH_WORDS)):
            continue
        value = OmegaConf.select(tree, key, default=missing)
        if value is not missing and OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        if value is missing or isinstance(value, Mapping):
            continue  # a group choice (loss=ce): its name and knobs are columns already
        hp.update(flatten({key: value}, sep="."))
    return hp


def hparams_metrics(class_names: Sequence[str]) -> list[str]:
    """The HPARAMS tab's metric columns: the best mIoU, the mean accuracy and each class's
    IoU at the best epoch (``val/IoU_best/<class>``; ``val/IoU/<class>`` is the last epoch)."""
    return ["val/mIoU_best", "val/mAcc", *(f"val/IoU_best/{name}" for name in class_names)]


def _hydra_job() -> tuple[dict[str, str | None], list[str], set[str]]:
    """Hydra's group choices, this job's overrides and, in a multirun, the swept keys (the
    sweep's overrides with several values, read from its ``multirun.yaml``, and
    ``hydra.sweeper.params``); empty outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return {}, [], set()
    hydra = HydraConfig.get()
    swept: set[str] = set()
    sweep_file = Path(hydra.sweep.dir) / "multirun.yaml"
    if hydra.mode == RunMode.MULTIRUN and sweep_file.is_file():
        sweep = OmegaConf.load(sweep_file).hydra
        parsed = OverridesParser.create().parse_overrides(list(sweep.overrides.task))
        swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
        swept |= set((OmegaConf.select(sweep, "sweeper.params") or {}).keys())
    return dict(hydra.runtime.choices), list(hydra.overrides.task), swept


@rank_zero_only  # as Lightning's own log_hyperparams: other ranks have no event writer
def write_tensorboard_hparams(logger: TensorBoardLogger, hparams: Mapping[str, Scalar],
                              metrics: Mapping[str, float], swept: set[str]) -> None:
    """What ``TensorBoardLogger.log_hyperparams`` writes (the experiment, session start and
    end summaries, ``metrics`` at step 0), with the swept columns marked ``differs``:
    TensorBoard then lists them first and shows them by default (it sorts by differs, then
    by name)."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    experiment, start, end = hparams_summaries(dict(hparams), dict(metrics))
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in swept
    value.metadata.plugin_data.content = data.SerializeToString()
    writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams does
    for summary in (experiment, start, end):
        writer.add_summary(summary)
    logger.log_metrics(dict(metrics), 0)


class HparamsLogger(pl.Callback):
    """Logs the run's hyperparameters (:func:`run_hparams`; or ``hparams`` as given) with the
    metric columns of :func:`hparams_metrics` at the start of fit.

    Only what is logged is filtered: checkpoints and ``.hydra/`` keep the full config. Done
    from ``on_fit_start`` (not before ``fit``): creating TensorBoard's writer before the
    trainer forks its processes deadlocks ``ddp_fork`` runs; by then ``min_train_steps`` has
    set the run length.
    """

    def __init__(self, hparams: Mapping[str, Any] | None = None) -> None:
        self.hparams = None if hparams is None else flatten(hparams, sep=".")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        hparams, swept = self.hparams, set()
        if hparams is None:
            choices, overrides, swept = _hydra_job()
            run = {"trainer.precision": str(trainer.precision),
                   "trainer.devices": trainer.num_devices * trainer.num_nodes,
                   "trainer.max_epochs": trainer.max_epochs if trainer.max_epochs is not None
                   else -1, "trainer.max_steps": trainer.max_steps}
            hparams = run_hparams(getattr(pl_module, "run_config", None) or {}, choices,
                                  overrides, run)
        names = getattr(pl_module, "class_names", None) or []
        # NaN: registers each metric for the HPARAMS tab without a fake 0 on its chart.
        metrics = dict.fromkeys(hparams_metrics(names), float("nan"))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                write_tensorboard_hparams(logger, hparams, metrics, swept)
            else:
                logger.log_hyperparams(hparams, metrics=metrics)
