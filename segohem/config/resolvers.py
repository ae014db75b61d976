"""The OmegaConf resolvers the packaged configs use. ``segohem.conf`` (conf/__init__.py)
registers them on import, so they exist wherever Hydra loads the configs."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

CLASSES = "segohem.classes"
"""``${segohem.classes:<dataset class>}``: that class's ``classes`` table."""


def dataset_classes(target: str) -> ListConfig:
    """The class names of the dataset class ``target`` (e.g.
    ``segohem.data.CityscapesDataset``): its ``classes`` table, the one source of the names
    that configs, checkpoints, ``metrics.json`` and TensorBoard show. A ``ListConfig``, not a
    list, so that ``OmegaConf.resolve`` (``--cfg job --resolve``) can store it in place."""
    return ListConfig(list(get_class(target).classes))


DEFAULT = "segohem.default"
"""``${segohem.default:18}``: the value 18, marked as a toolkit default that segohem may adapt
to the data (``trainer.max_epochs``); a value the user types replaces the mark."""

TYPED_RUN_LENGTH = "segohem.typed_run_length"
"""``${segohem.typed_run_length:}``: the trainer's run-length keys the user set."""

DEVICE = "segohem.device"
"""``${segohem.device:accelerator}`` / ``${segohem.device:precision}``: ``trainer=auto``'s
choice for this machine (:func:`auto_device`)."""

CHECK_LABELS = "segohem.check_labels"
"""``${segohem.check_labels:${oc.select:dataset.labels_validated,false}}``: a loss checks its
labels (one host sync per step) unless the dataset validated its masks as it read them."""

SWEEP_SAFE_STRATEGY = "segohem.sweep_safe_strategy"
"""``${segohem.sweep_safe_strategy:ddp}``: ``trainer=ddp``'s strategy, ``ddp_fork`` inside a
Hydra multirun (:func:`sweep_safe_strategy`)."""

RUN_LENGTH_KEYS = ("max_epochs", "max_steps", "limit_train_batches", "max_time",
                   "overfit_batches", "fast_dev_run")
"""Trainer arguments that decide how long a run trains."""


def check_labels(labels_validated: Any) -> bool:
    """``not labels_validated``: a loss's ``check_labels`` when the dataset says whether its
    reader already rejects unknown mask values (``dataset.labels_validated``)."""
    return not bool(labels_validated)


def toolkit_default(value: Any) -> Any:
    """``value`` itself: the resolver only marks the config value as not typed by the user."""
    return value


def typed_run_length(*, _root_: DictConfig) -> ListConfig:
    """The :data:`RUN_LENGTH_KEYS` that ``trainer`` sets, by whatever source (command line,
    experiment or debug config, a trainer config of the user's): present, not null and not a
    ``${segohem.default:...}`` mark. A typed value counts even when it equals the default."""
    trainer = _root_.get("trainer")
    if trainer is None:
        return ListConfig([])
    raw = OmegaConf.to_container(trainer, resolve=False)
    typed = [key for key in RUN_LENGTH_KEYS if raw.get(key) is not None
             and not str(raw[key]).startswith("${" + DEFAULT + ":")]
    return ListConfig(typed)


def sweep_safe_strategy(strategy: str) -> str:
    """``ddp_fork`` for ``strategy="ddp"`` inside a Hydra multirun, else ``strategy``.

    Lightning's ``ddp`` starts ranks >= 1 by re-running the command line: inside a multirun
    each child would re-run the whole sweep (a second sweep folder, and with Optuna other
    hyperparameters than rank 0). Forked ranks share the job's already-composed config
    instead. Kept as ``ddp`` when a cluster (SLURM, torchrun) starts the ranks itself.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if strategy != "ddp" or not HydraConfig.initialized():
        return strategy
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return strategy
    # Lazy: composing a config does not import Lightning (nor torch).
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return strategy
    return "ddp_fork"


BF16_CAPABILITY = (8, 0)
"""Compute capability from which bf16 runs natively (Ampere); below it,
``torch.cuda.is_bf16_supported()`` is still true through emulation, and slow."""


def auto_device(key: str) -> str:
    """``trainer=auto`` on this machine: with CUDA, ``accelerator`` ``gpu`` and ``precision``
    ``bf16-mixed`` from compute capability 8.0 on, else ``16-mixed``; without it ``cpu`` and
    ``32-true``. ``key``: ``accelerator`` or ``precision``."""
    import torch  # lazy: composing a config (--help, bad overrides) does not import torch

    if key not in ("accelerator", "precision"):
        raise ValueError(f"${{{DEVICE}:{key}}}: the key must be accelerator or precision.")
    if not torch.cuda.is_available():
        return {"accelerator": "cpu", "precision": "32-true"}[key]
    bf16 = tuple(torch.cuda.get_device_capability(0)) >= BF16_CAPABILITY
    return {"accelerator": "gpu", "precision": "bf16-mixed" if bf16 else "16-mixed"}[key]


def register_resolvers() -> None:
    """Register the resolvers (once per process; later calls do nothing)."""
    for name, resolver in ((CLASSES, dataset_classes), (CHECK_LABELS, check_labels),
                           (DEFAULT, toolkit_default),
                           (TYPED_RUN_LENGTH, typed_run_length), (DEVICE, auto_device),
                           (SWEEP_SAFE_STRATEGY, sweep_safe_strategy)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
