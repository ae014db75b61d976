"""Loading a trained model back from a segohem checkpoint (for eval, predict and export).

A checkpoint written by ``segohem-train`` holds, besides Lightning's state, the resolved
training config, the class names and the validation summaries under ``checkpoint["segohem"]``,
so the model can be rebuilt without repeating any option.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import torch
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from segohem.viz import Palette, resolve_palette

log = logging.getLogger(__name__)


# Modules moved when the package was cut by purpose (issue 22): a checkpoint written before keeps
# the old ``_target_`` paths in its config; they are rewritten when the config is read.
MOVED_MODULES: dict[str, str] = {
    "segohem.training": "segohem.train.run",
    "segohem.module": "segohem.train.module",
    "segohem.optim": "segohem.train.optim",
    "segohem.epoch_stats": "segohem.train.epoch_stats",
    "segohem.checkpoint": "segohem.train.checkpoint",
    "segohem.abandonment": "segohem.train.abandonment",
    "segohem.callbacks.optuna_pruning": "segohem.sweep.pruning",
    "segohem.callbacks.OptunaPruning": "segohem.sweep.pruning.OptunaPruning",
    "segohem.callbacks": "segohem.train.callbacks",
    "segohem.compose": "segohem.config.compose",
    "segohem.config_checks": "segohem.config.checks",
    "segohem.config_resolvers": "segohem.config.resolvers",
    "segohem.hydra_logging": "segohem.config.hydra_logging",
    "segohem.inference": "segohem.infer.core",
    "segohem.evaluation": "segohem.infer.evaluate",
    "segohem.prediction_files": "segohem.infer.predict.files",
    "segohem.prediction_formats": "segohem.infer.predict.formats",
    "segohem.prediction": "segohem.infer.predict.run",
    "segohem.model_export": "segohem.infer.export.run",
    "segohem.export_formats": "segohem.infer.export.formats",
    "segohem.optuna_sweep": "segohem.sweep.sweeper",
    "segohem.optuna_study": "segohem.sweep.study",
    "segohem.optuna_storage": "segohem.sweep.storage",
    "segohem.search_space": "segohem.sweep.space",
    "segohem.sweep_params": "segohem.sweep.params",
    "segohem.report": "segohem.report.metrics_json",
    "segohem.job_status": "segohem.report.job_status",
    "segohem.sweeps": "segohem.report.jobs",
    "segohem.sweep_summary": "segohem.report.sweep_summary",
    "segohem.study_summary": "segohem.report.study_summary",
    "segohem.loss_comparison": "segohem.report.loss_comparison",
    "segohem.dataset_browser": "segohem.data.browser",
    "segohem.losses.compose": "segohem.losses.weighted_sum",
}


def upgrade_targets(node: Any) -> Any:
    """``node`` (a plain config: dicts, lists, scalars) with every ``_target_`` under a moved
    module rewritten to the module's new path (the longest matching old path wins)."""
    if isinstance(node, list):
        return [upgrade_targets(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: upgrade_targets(value) for key, value in node.items()}
    target = result.get("_target_")
    if isinstance(target, str):
        for old in sorted(MOVED_MODULES, key=len, reverse=True):
            rest = target[len(old) + 1:]
            # An old module's target is <module>.<name>; only the old callbacks package had
            # deeper ones. (New targets such as segohem.report.job_status.X stay as they are.)
            if target == old or (target.startswith(old + ".")
                                 and ("." not in rest or old == "segohem.callbacks")):
                result["_target_"] = MOVED_MODULES[old] + target[len(old):]
                break
    return result


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


@dataclass
class LoadedModel:
    """A trained model in eval mode and what is needed to use it."""

    model: nn.Module
    """``(B, 3, H, W)`` normalised images -> ``(B, C, h, w)`` logits."""
    config: DictConfig
    """The resolved training config."""
    class_names: list[str]
    palette: Palette
    ignore_index: int
    path: Path
    held_out: dict[str, Any] | None = None
    """The held-out split lists of a folder trained without split files
    (:class:`segohem.data.split.HeldOutSplit` as a dict), else None."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    trust: bool = False) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` (no arbitrary code runs); ``trust=True``
    allows a full unpickle for checkpoints that need it (only for files you trust)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    if not zipfile.is_zipfile(path):  # torch.save's format since 1.6 is a zip archive
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (not a complete zip "
                              f"archive: truncated or corrupt?).")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as err:
        if trust:
            raise CheckpointError(f"{path}: cannot unpickle the checkpoint ({err}).") from None
        raise CheckpointError(
            f"{path}: the checkpoint holds objects that safe loading (weights_only=True) "
            f"refuses ({str(err).splitlines()[0]}). If you trust the file, allow a full load "
            f"with trust_checkpoint=true.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or "
                              f"corrupt? {str(err).splitlines()[0]}).") from None


def load_model(path: str | os.PathLike, num_classes: int | None = None,
               map_location: str | torch.device = "cpu", trust: bool = False) -> LoadedModel:
    """Rebuild the trained model of a segohem checkpoint.

    Args:
        path: ``.ckpt`` file written by ``segohem-train`` (``checkpoints/best.ckpt`` ...).
        num_classes: the number of classes the caller's data has; a checkpoint trained for
            another number is an error (instead of silently wrong predictions).
        map_location: where to load the weights.
        trust: allow a full (pickle) load if safe loading refuses the file.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location, trust)
    saved = checkpoint.get("segohem") if isinstance(checkpoint, dict) else None
    if not saved or not saved.get("config") or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a segohem training checkpoint (no 'segohem' "
                              f"config inside); segohem-train writes them under "
                              f"<run dir>/checkpoints/.")
    config = OmegaConf.create(upgrade_targets(saved["config"]))
    class_names = list(saved.get("class_names") or [])
    trained_classes = int(config.dataset.num_classes)
    if not class_names:
        class_names = [f"class_{i}" for i in range(trained_classes)]
    if num_classes is not None and num_classes != trained_classes:
        raise CheckpointError(
            f"{path}: the model was trained for {trained_classes} classes "
            f"({', '.join(class_names[:6])}{', ...' if trained_classes > 6 else ''}) but the "
            f"data has {num_classes}. Use a checkpoint trained on this dataset, or evaluate "
            f"on the dataset it was trained on.")
    # Normal tensors even if the caller is in inference mode (build_model runs an autograd
    # probe, and inference tensors cannot be loaded into later for training).
    with torch.inference_mode(False), torch.enable_grad():
        model = instantiate(config.model)
    state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items()
             if k.startswith("model.")}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise CheckpointError(f"{path}: the checkpoint lacks weights of the configured model "
                              f"({len(result.missing_keys)} tensors, e.g. "
                              f"{result.missing_keys[:3]}); was it written by another segohem "
                              f"or model version?")
    if result.unexpected_keys:  # e.g. encoder stages that build_model now removes
        log.info("%s: ignored %d checkpoint tensors the model does not use (e.g. %s)", path,
                 len(result.unexpected_keys), result.unexpected_keys[0])
    model.to(map_location).eval()
    return LoadedModel(model=model, config=config, class_names=class_names,
                       palette=dataset_palette(config, len(class_names)),
                       ignore_index=int(config.dataset.get("ignore_index", 255)), path=path,
                       held_out=saved.get("split"))


def dataset_palette(config: DictConfig, num_classes: int) -> Palette:
    """The dataset's colours: ``dataset.palette`` of the config, else the dataset class's
    ``palette``, else :func:`segohem.viz.fallback_palette` (see
    :func:`segohem.viz.resolve_palette`)."""
    palette = config.dataset.get("palette")
    if palette is None:
        target = OmegaConf.select(config, "dataset.train_set._target_")
        if target:
            module, _, name = str(target).rpartition(".")
            try:
                palette = getattr(getattr(importlib.import_module(module), name), "palette", None)
            except (ImportError, AttributeError):
                palette = None
            if not isinstance(palette, (tuple, list)):  # a property of an instance
                palette = None
    return resolve_palette(palette, num_classes)


def find_normalize(transform: Any) -> Any | None:
    """The (last) ``albumentations.Normalize`` inside a (nested) albumentations pipeline, or
    None."""
    found = None
    for t in getattr(transform, "transforms", None) or []:
        found = find_normalize(t) or found
        if type(t).__name__ == "Normalize":
            found = t
    return found


def normalization_from_config(config: DictConfig, path: Path | str = "checkpoint") -> Any:
    """The ``albumentations.Normalize`` of the training config's ``dataset.val_transform``
    (instantiated, so its parameters are exactly those used in training and validation);
    :class:`CheckpointError` naming ``path`` if there is none. ``segohem-predict`` and
    ``segohem-export`` normalise their inputs with it."""
    node = OmegaConf.select(config, "dataset.val_transform")
    if node is None:
        raise CheckpointError(f"{path}: the saved config has no dataset.val_transform, so the "
                              f"input normalisation of training is unknown.")
    try:
        normalize = find_normalize(instantiate(node))
    except Exception as err:  # an unknown transform class, a bad argument
        raise CheckpointError(f"{path}: cannot rebuild the saved dataset.val_transform "
                              f"({err}).") from None
    if normalize is None:
        raise CheckpointError(f"{path}: the saved dataset.val_transform has no "
                              f"albumentations.Normalize; segohem-predict and segohem-export "
                              f"feed the model images normalised as in validation.")
    return normalize


def image_transform(config: DictConfig, path: Path | str = "checkpoint") -> Any:
    """``Normalize`` (from the checkpoint's val transform) + ``ToTensorV2``: uint8 HWC RGB
    -> float ``(3, H, W)`` tensor, the geometry unchanged."""
    return A.Compose([normalization_from_config(config, path), ToTensorV2()])
