"""``segohem-train``: fit a model on the composed conf/train.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns ``cfg.optimized_metric`` (for sweepers)."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.training import train

    return train(cfg)


if __name__ == "__main__":
    main()
