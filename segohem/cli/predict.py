"""``segohem-predict``: segment image files with conf/predict.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from segohem.cli import exit_on


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """A known mistake ends with its message and exit status 1 (:func:`~segohem.cli.exit_on`)."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.infer.predict.run import PredictError, predict
    from segohem.train.checkpoint import CheckpointError

    exit_on((PredictError, CheckpointError), "segohem-predict", predict, cfg)


if __name__ == "__main__":
    main()
