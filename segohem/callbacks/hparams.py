"""Fill TensorBoard's HPARAMS tab with the run's flattened config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists and None become strings.

    Not left to the logger's own flattening (``TensorBoardLogger.log_hyperparams`` flattens
    nested dicts too): Lightning also splits lists of dicts into one column per item and
    key (an albumentations pipeline ``transforms: [...]`` becomes ~7 columns per transform,
    28 for the default config) and drops empty lists; here each list is one column."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "/"))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


WIRING = ("data", "module")
"""Config nodes that only interpolate other groups (conf/data/, conf/module/)."""


class HparamsLogger(pl.Callback):
    """Logs ``hparams`` (default: the run's config) with ``metric`` as the HPARAMS tab's
    metric at the start of fit.

    Done from ``on_fit_start`` (not before ``fit``): creating TensorBoard's writer
    before the trainer forks its processes deadlocks ``ddp_fork`` runs.
    """

    def __init__(self, hparams: Mapping[str, Any] | None = None,
                 metric: str = "val/mIoU_best") -> None:
        self.hparams = None if hparams is None else flatten(hparams)
        self.metric = metric

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Logs ``hparams``, or else the module's ``run_config`` (the run's resolved config,
        set by segohem-train) without its ``data`` / ``module`` wiring nodes, which only
        repeat the other groups."""
        hparams = self.hparams
        if hparams is None:
            config = getattr(pl_module, "run_config", None) or {}
            hparams = flatten({k: v for k, v in config.items() if k not in WIRING})
        for logger in trainer.loggers:
            # NaN: registers the metric for the HPARAMS tab without a fake 0 on its chart.
            logger.log_hyperparams(hparams, metrics={self.metric: float("nan")})
