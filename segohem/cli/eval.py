"""``segohem-eval``: measure a checkpoint with the composed conf/eval.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from segohem.cli import exit_on


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    """Returns the mIoU."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.config.checks import ConfigError
    from segohem.data import DatasetError
    from segohem.infer.evaluate import evaluate
    from segohem.train.checkpoint import CheckpointError

    return exit_on((ConfigError, DatasetError, CheckpointError), "segohem-eval", evaluate, cfg)


if __name__ == "__main__":
    main()
