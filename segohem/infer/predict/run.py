"""Segment image files with a trained checkpoint (the work of ``segohem-predict``).

::

    segohem-predict ckpt_path=run/checkpoints/best.ckpt input=photos/ output=pred/
    segohem-predict ... format=overlay overlay_alpha=0.4          # image + colour mask (JPEG)
    segohem-predict ... format=id                                 # 8-bit class-id PNGs
    segohem-predict ... input=cityscapes/leftImg8bit/test format=cityscapes  # city folders
    segohem-predict ... eval.mode=slide eval.crop_size=[512,1024] eval.scales=[0.75,1,1.25] \\
        eval.flip=true                                            # sliding window + TTA
    segohem-predict ckpt_path=... split=val output=pred/           # the run's own val images

``split=val`` (or ``train``) instead of ``input``: the images of that split of the dataset the
checkpoint was trained on (``data_root`` if it moved); for a folder trained without split files
these are the checkpoint's held-out lists, whatever was added to the folder since.

Formats (one output file per input image, under ``output``; the relative sub-folders of a
recursive input are kept):

* ``color``: palette PNG (mode ``P``) with the dataset's colours: small, and the pixel values
  are the class ids (``numpy.asarray(Image.open(f))``).
* ``overlay``: the image blended with the colour mask (``overlay_alpha``), JPEG or PNG
* ``legend=true`` (color, overlay): a colour key under the picture, each class's swatch and
  name (more than 24 classes: those predicted in the image) and the ignore colour; a color
  PNG is then RGB, for people (its values are no longer the class ids)
  (``overlay_ext``).
* ``id``: 8-bit grayscale PNG of class ids.
* ``cityscapes``: 8-bit PNG of Cityscapes *labelIds* (the 19 trainIds mapped back with the
  official table), written as ``<output>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` for the
  official evaluation / benchmark server. Needs a 19-class Cityscapes checkpoint.

Normalisation: the image is normalised with the ``albumentations.Normalize`` of the
checkpoint's ``dataset.val_transform`` (instantiated from the config saved in the checkpoint,
so mean / std / max_pixel_value are exactly those of training), followed by ``ToTensorV2``.
The rest of the validation pipeline (e.g. ``PadIfNeeded`` to a multiple of 32) is not applied:
:func:`segohem.infer.core.predict_scores` pads to ``eval.size_divisor`` itself (with the mean
colour) and cuts the padding off again, so every prediction has the input's size.

The command line is :mod:`segohem.cli.predict`; finding the inputs and planning the outputs
is :mod:`segohem.infer.predict.files`, writing the formats :mod:`segohem.infer.predict.formats`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from segohem.infer.core import InferenceConfig, predict_scores
from segohem.infer.predict.files import (
    PredictError,
    find_images,
    plan_outputs,
    read_rgb,
    safe_destination,
)
from segohem.infer.predict.formats import FORMATS, check_cityscapes_model, save_prediction
from segohem.train.checkpoint import LoadedModel, image_transform, load_model
from segohem.viz import legend_entries

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    """What :func:`predict` did."""

    output: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Unreadable inputs skipped with ``skip_bad=true``: (file, reason)."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if available, else ``cpu``; a CUDA device without CUDA ->
    :class:`PredictError`."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PredictError(f"device={device}: no CUDA device is available; use device=cpu "
                           f"(or device=auto).")
    return str(device)


def inference_config(node: DictConfig | dict | None) -> InferenceConfig:
    """``eval`` node -> :class:`~segohem.infer.core.InferenceConfig` (bad values ->
    :class:`PredictError`)."""
    options = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) \
        else dict(node or {})
    try:
        return InferenceConfig(**options)
    except (TypeError, ValueError) as err:
        raise PredictError(str(err)) from None


def check_options(cfg: DictConfig) -> None:
    if cfg.get("split") and not OmegaConf.is_missing(cfg, "input") and cfg.input:
        raise PredictError(f"input={cfg.input} and split={cfg.split}: give one (split= "
                           f"predicts the checkpoint's own images of that split).")
    for key in ("ckpt_path", "output") if cfg.get("split") else ("ckpt_path", "input",
                                                                  "output"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
            raise PredictError(f"{key}=... is required, e.g. segohem-predict "
                               f"ckpt_path=run/checkpoints/best.ckpt input=images/ "
                               f"output=predictions/")
    if cfg.format not in FORMATS:
        raise PredictError(f"format={cfg.format!r}: choose one of {', '.join(FORMATS)}.")
    if not 0.0 <= float(cfg.overlay_alpha) <= 1.0:
        raise PredictError(f"overlay_alpha={cfg.overlay_alpha} must be in [0, 1].")
    if str(cfg.overlay_ext).lower() not in ("jpg", "jpeg", "png"):
        raise PredictError(f"overlay_ext={cfg.overlay_ext!r}: choose jpg or png.")
    if cfg.get("legend") and cfg.format not in ("color", "overlay"):
        raise PredictError(f"legend=true draws a colour key under format=color or overlay "
                           f"pictures; format={cfg.format} writes ids: drop legend=true.")


def split_images(cfg: DictConfig, loaded: LoadedModel) -> tuple[Path, Path, list[Path]]:
    """``split=...``: (source, root, images) of that split of the checkpoint's dataset (its
    held-out lists for a folder trained without split files)."""
    from segohem.infer.evaluate import build_split, dataset_config  # Lazy: Lightning

    dataset = build_split(dataset_config(cfg, loaded.config), str(cfg.split), loaded.held_out)
    images = [Path(sample.image) for sample in getattr(dataset, "samples", [])]
    if not images:
        raise PredictError(f"split={cfg.split}: the checkpoint's dataset has no image files "
                           f"for it; give input=<file|folder> instead.")
    root = Path(os.path.commonpath([p.parent for p in images]))
    return root, root, images


def predict(cfg: DictConfig) -> PredictResult:
    """Predict every image of ``cfg.input`` into ``cfg.output`` (see the module docstring).

    Everything that can be checked before the model runs is (options, file names, output
    paths, the checkpoint), so a mistake writes nothing.
    """
    check_options(cfg)
    fmt = str(cfg.format)
    infer_cfg = inference_config(cfg.get("eval"))
    output = Path(cfg.output)
    if output.exists() and not output.is_dir():
        raise PredictError(f"output={str(output)!r} is a file; give a folder.")
    device = resolve_device(cfg.device)
    loaded = None
    if cfg.get("split"):  # the checkpoint says which images
        loaded = load_model(cfg.ckpt_path, map_location=device, trust=bool(cfg.trust_checkpoint))
        source, root, images = split_images(cfg, loaded)
    else:
        source = Path(cfg.input)
        # The Cityscapes layout always keeps its images in <split>/<city>/ folders.
        recursive = bool(cfg.recursive) or fmt == "cityscapes"
        root, images = find_images(source, recursive, exclude=output)
    pairs = plan_outputs(images, root, output, fmt, str(cfg.overlay_ext).lower())
    loaded = loaded or load_model(cfg.ckpt_path, map_location=device,
                                  trust=bool(cfg.trust_checkpoint))
    if fmt == "cityscapes":
        check_cityscapes_model(loaded)
    elif loaded.num_classes > 256:
        raise PredictError(f"format={fmt} writes 8-bit PNGs, but the model has "
                           f"{loaded.num_classes} classes.")
    transform = image_transform(loaded.config, loaded.path)
    palette = loaded.palette
    alpha = float(cfg.overlay_alpha)
    log.info("%s (%d classes) on %s: %d image(s) from %s -> %s", loaded.path,
             loaded.num_classes, device, len(pairs), source, output)

    result = PredictResult(output=output)
    output.mkdir(parents=True, exist_ok=True)
    progress = tqdm(pairs, desc="predict", unit="img", disable=not source.is_dir(),
                    dynamic_ncols=True)
    for image_path, destination in progress:
        try:
            rgb = read_rgb(image_path)
        except PredictError as err:
            if not cfg.skip_bad:
                raise
            result.skipped.append((image_path, str(err)))
            continue
        batch = transform(image=rgb)["image"][None].to(device)
        with torch.inference_mode():
            scores = predict_scores(loaded.model, batch, infer_cfg)
        ids = scores.argmax(1)[0].to(torch.uint8).cpu().numpy()
        safe_destination(output, destination.relative_to(output))  # sub-folders made since
        key = (legend_entries(loaded.class_names, palette, loaded.ignore_index,
                              present=np.unique(ids).tolist()) if cfg.get("legend") else None)
        save_prediction(ids, rgb, destination, fmt, palette, alpha, legend=key)
        result.written.append(destination)

    log.info("Wrote %d %s prediction(s) to %s", len(result.written), fmt, output.resolve())
    if result.skipped:
        log.warning("Skipped %d unreadable image(s):\n%s", len(result.skipped),
                    "\n".join(f"  {path}" for path, _ in result.skipped))
    return result
