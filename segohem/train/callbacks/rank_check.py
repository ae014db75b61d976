"""Checking that every DDP rank trains with the same configuration."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import lightning.pytorch as pl
import torch

log = logging.getLogger(__name__)


def config_digest(config: Any) -> str:
    """Short SHA-1 of a JSON-able config (keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class RankConfigCheck(pl.Callback):
    """At fit start, logs on every rank ``rank r/N: config <digest> loss <loss config>`` and
    stops the run on all ranks if the ranks' resolved configs differ.

    This is the failure mode of a Hydra multirun (or an Optuna sweep) combined with a
    re-launching DDP strategy: the child ranks re-run the sweep and may get other
    hyperparameters than rank 0, silently. ``trainer=ddp`` avoids it (``ddp_fork`` in a multirun),
    and this check makes any such mismatch an error instead of a wrong result.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Compares ``config``, or else the module's ``run_config`` (given by segohem-train)."""
        config = self.config if self.config is not None else (
            getattr(pl_module, "run_config", None) or {})
        self.digest = config_digest(config)
        world = trainer.world_size
        log.info("rank %d/%d: config %s loss %s", trainer.global_rank, world, self.digest,
                 json.dumps(config.get("loss"), sort_keys=True, default=str))
        if world < 2:
            return
        mine = torch.tensor([int(self.digest, 16)], dtype=torch.int64,
                            device=pl_module.device)
        gathered = trainer.strategy.all_gather(mine).reshape(-1).tolist()
        if len(set(gathered)) > 1:
            digests = ", ".join(f"rank {r}: {v:012x}" for r, v in enumerate(gathered))
            raise RuntimeError(
                f"DDP ranks train with different configurations ({digests}). This happens "
                f"when a sweep is re-run inside re-launched rank processes; run multiruns "
                f"with trainer.strategy=ddp_fork or ddp_spawn (trainer=ddp picks ddp_fork in "
                f"a multirun).")
