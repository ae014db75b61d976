"""The packaged configs from Python (Hydra's compose API), for tools that are not Hydra apps:
the dataset browser and the benchmark scripts."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict


def compose_config(name: str = "train", overrides: Sequence[str] = (),
                   output_dir: str | Path | None = None) -> DictConfig:
    """The config ``name`` (``train``, ``eval``, ``predict``, ``export``) with ``overrides``;
    ``paths.output_dir`` (``${hydra:runtime.output_dir}`` does not resolve under the compose
    API) set to ``output_dir``, or the temp dir."""
    with initialize_config_module(version_base="1.3", config_module="segohem.conf"):
        cfg = compose(name, overrides=list(overrides))
    if "paths" in cfg:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir or tempfile.gettempdir())
    return cfg
