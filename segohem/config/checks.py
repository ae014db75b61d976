"""Checks of a composed config before anything is built: :class:`ConfigError` and the
cross-field rules Hydra's schema cannot express."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration problem found before training starts."""


def check_config(cfg: DictConfig) -> None:
    """Cross-field checks Hydra cannot do; raises :class:`ConfigError` with the fix."""
    if OmegaConf.is_missing(cfg.dataset, "name"):  # dataset=_base / _on_disk
        raise ConfigError("dataset: conf/dataset/_base.yaml and _on_disk.yaml are the keys the "
                          "dataset configs share, not datasets; pick one, e.g. dataset=folder "
                          "(segohem-train --help lists them).")
    name = cfg.dataset.get("name", "?")
    for key, example in (("root", "/data/" + str(name)), ("num_classes", "3"),
                         ("class_names", "[background,crack,rust]")):
        if key in list(cfg.dataset) and OmegaConf.is_missing(cfg.dataset, key):
            raise ConfigError(f"dataset={name} needs dataset.{key}; add e.g. "
                              f"'dataset.{key}={example}' to the command line.")
    dataset_classes = cfg.dataset.num_classes
    model_classes = cfg.model.get("num_classes", dataset_classes)
    if model_classes != dataset_classes:
        raise ConfigError(
            f"model.num_classes={model_classes} disagrees with dataset.num_classes="
            f"{dataset_classes} (dataset {cfg.dataset.get('name', '?')!r}). The model must "
            f"predict one channel per dataset class: drop the model.num_classes override "
            f"(it follows the dataset by default) or change both.")
    names = cfg.dataset.get("class_names")
    if names is not None and len(names) != dataset_classes:
        raise ConfigError(f"dataset.class_names has {len(names)} names but dataset.num_classes="
                          f"{dataset_classes}: {list(names)}")
    strategy = cfg.get("trainer", {}).get("strategy")
    if strategy == "ddp":
        from segohem.config.resolvers import sweep_safe_strategy

        if sweep_safe_strategy("ddp") != "ddp":  # a multirun, ranks not started by a cluster
            raise ConfigError(
                "trainer.strategy=ddp inside a multirun: Lightning's ddp starts each rank by "
                "re-running the command line, so every rank would re-run the whole sweep. Use "
                "trainer=ddp without a strategy override (it forks the ranks: ddp_fork), or "
                "trainer.strategy=ddp_fork.")
