"""The OmegaConf resolvers the packaged configs use. ``segohem.conf`` (conf/__init__.py)
registers them on import, so they exist wherever Hydra loads the configs."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import ListConfig, OmegaConf

CLASSES = "segohem.classes"
"""``${segohem.classes:<dataset class>}``: that class's ``classes`` table."""


def dataset_classes(target: str) -> ListConfig:
    """The class names of the dataset class ``target`` (e.g.
    ``segohem.data.CityscapesDataset``): its ``classes`` table, the one source of the names
    that configs, checkpoints, ``metrics.json`` and TensorBoard show. A ``ListConfig``, not a
    list, so that ``OmegaConf.resolve`` (``--cfg job --resolve``) can store it in place."""
    return ListConfig(list(get_class(target).classes))


def register_resolvers() -> None:
    """Register the resolvers (once per process; later calls do nothing)."""
    if not OmegaConf.has_resolver(CLASSES):
        OmegaConf.register_new_resolver(CLASSES, dataset_classes)
