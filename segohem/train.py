"""``segohem-train`` / ``python -m segohem.train``: the Hydra entry point.

Only Hydra is imported here, so ``--help``, ``--cfg job`` and bad overrides answer
quickly; torch, Lightning and SMP are imported by :mod:`segohem.training` when a run
actually starts.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from segohem._failure_log import log_failure_to_files


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train with the composed config; returns ``cfg.optimized_metric`` for sweepers."""
    from segohem.training import train

    try:
        return train(cfg)
    except BaseException as err:  # into the run's log file too (sweeps summarise it)
        if not isinstance(err, KeyboardInterrupt):
            log_failure_to_files("train", err)
        raise


if __name__ == "__main__":
    main()
