"""``segohem-export``: a checkpoint to ONNX / TorchScript, with conf/export.yaml."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """Known mistakes (bad options, files, checkpoints) end with their message and exit
    status 1; anything else with its traceback."""
    # Lazy: the library imports torch; --help and bad overrides answer without it.
    from segohem.checkpoint import CheckpointError
    from segohem.model_export import ExportError, export

    try:
        export(cfg)
    except (ExportError, CheckpointError) as err:
        print(f"segohem-export: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
