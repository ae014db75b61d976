"""The packaged configs from Python (Hydra's compose API), for code that is not a Hydra app:
the dataset browser, the benchmark scripts, the notebooks and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import DictConfig, open_dict

CONFIG_MODULE = "segohem.conf"
"""Where the configs ship (conf/ of the repository, ``segohem.conf`` in the wheel)."""


def compose_config(name: str = "train", overrides: Sequence[str] = (),
                   output_dir: str | Path | None = None, *, hydra: bool = False) -> DictConfig:
    """The packaged config ``name`` (``train``, ``eval``, ``predict``, ``export``) with the
    command line's ``overrides``, as ``segohem-<name> --cfg job`` would print it.

    Args:
        name: the primary config of :data:`CONFIG_MODULE`.
        overrides: Hydra overrides, e.g. ``["loss=topk", "trainer.max_epochs=1"]``.
        output_dir: sets ``paths.output_dir``; None keeps ``${hydra:runtime.output_dir}``,
            which resolves only inside a Hydra app (not under the compose API).
        hydra: also return the ``hydra`` node (launcher, sweeper, run dirs).

    Works while a Hydra app runs or after an earlier compose left Hydra initialised: the
    global Hydra state is set aside for the compose and put back afterwards.
    """
    saved = get_gh_backup() if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
            cfg = compose(name, overrides=list(overrides), return_hydra_config=hydra)
    finally:
        if saved is not None:
            restore_gh_from_backup(saved)
    if output_dir is not None:
        if "paths" not in cfg:
            raise ValueError(f"compose_config({name!r}, output_dir={str(output_dir)!r}): the "
                             f"{name} config has no `paths` group to hold output_dir; leave "
                             "output_dir unset for it.")
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg
