"""``segohem-predict``: segment image files with conf/predict.yaml."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Known mistakes (bad options, files, checkpoints) end with their message and exit
    status 1; anything else with its traceback."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.checkpoint import CheckpointError
    from segohem.prediction import PredictError, predict

    try:
        predict(cfg)
    except (PredictError, CheckpointError) as err:
        print(f"segohem-predict: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
