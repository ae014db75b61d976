"""``segohem-export``: a checkpoint to ONNX / TorchScript, with conf/export.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from segohem.cli import exit_on


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """A known mistake ends with its message and exit status 1 (:func:`~segohem.cli.exit_on`)."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.infer.export.run import ExportError, export
    from segohem.train.checkpoint import CheckpointError

    exit_on((ExportError, CheckpointError), "segohem-export", export, cfg)


if __name__ == "__main__":
    main()
