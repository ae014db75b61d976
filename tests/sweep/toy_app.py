"""``python -m tests.sweep.toy_app hydra.sweep.dir=... [overrides]``: a task that returns
``-(x - 0.3)^2`` (after ``sleep_s``) and writes ``run.json`` (pid, x, y, the trial number) in
its job folder; started / finished markers let a test kill a worker mid-trial."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from omegaconf import DictConfig

from hydra_plugins.segohem_sweeper.optuna_sweeper import OptunaStudySweeper

Plugins.instance().register(OptunaStudySweeper)


@hydra.main(version_base="1.3", config_path="toy_conf", config_name="toy")
def main(cfg: DictConfig) -> float:
    out = Path(HydraConfig.get().runtime.output_dir)
    run = {"pid": os.getpid(), "x": cfg.x, "y": cfg.y, "trial": cfg.get("optuna", {}).get("trial")}
    (out / "started").write_text(json.dumps(run))
    time.sleep(cfg.sleep_s)
    (out / "run.json").write_text(json.dumps(run))
    return -((cfg.x - 0.3) ** 2)


if __name__ == "__main__":
    main()
