"""``segohem-train``: fit a model on the composed conf/train.yaml."""

from __future__ import annotations

import hydra
from hydra.core.plugins import Plugins
from omegaconf import DictConfig

from hydra_plugins.segohem_sweeper.optuna_sweeper import OptunaStudySweeper
from segohem.cli import exit_on

# Hydra finds plugins by walking the hydra_plugins namespace, which an editable install
# (setuptools' import hook) hides from it: register segohem's sweeper explicitly.
Plugins.instance().register(OptunaStudySweeper)


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns ``cfg.optimized_metric`` (for sweepers)."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.config.checks import ConfigError
    from segohem.data import DatasetError
    from segohem.train.checkpoint import CheckpointError
    from segohem.train.run import train

    return exit_on((ConfigError, DatasetError, CheckpointError), "segohem-train", train, cfg)


if __name__ == "__main__":
    main()
