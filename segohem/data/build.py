"""Datasets from config nodes."""

from __future__ import annotations

from typing import Any

from segohem.data.datasets import DatasetError


def build_dataset(node: Any, **kwargs: Any) -> Any:
    """Instantiate the dataset config ``node`` (a ``_target_`` node such as
    ``cfg.dataset.train_set``, or ``cfg.data``: a data module over such nodes) with Hydra;
    ``kwargs`` override its arguments (e.g. ``transform=None``). A
    :class:`~segohem.data.DatasetError` (bad folder, file or label) is raised as itself, with
    its message that names the file and shows the expected layout, not wrapped in Hydra's
    ``InstantiationException``."""
    # Lazy: segohem.data imports this module and promises to import only torch and numpy.
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException):  # nested nodes (a data module)
            cause = cause.__cause__
        if isinstance(cause, DatasetError):
            raise cause from None
        raise
