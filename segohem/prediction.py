"""Segment image files with a trained checkpoint (the work of ``segohem-predict``).

::

    segohem-predict ckpt_path=run/checkpoints/best.ckpt input=photos/ output=pred/
    segohem-predict ... format=overlay overlay_alpha=0.4          # image + colour mask (JPEG)
    segohem-predict ... format=id                                 # 8-bit class-id PNGs
    segohem-predict ... input=cityscapes/leftImg8bit/test format=cityscapes  # city folders
    segohem-predict ... eval.mode=slide eval.crop_size=[512,1024] eval.scales=[0.75,1,1.25] \\
        eval.flip=true                                            # sliding window + TTA

Formats (one output file per input image, under ``output``; the relative sub-folders of a
recursive input are kept):

* ``color``: palette PNG (mode ``P``) with the dataset's colours: small, and the pixel values
  are the class ids (``numpy.asarray(Image.open(f))``).
* ``overlay``: the image blended with the colour mask (``overlay_alpha``), JPEG or PNG
  (``overlay_ext``).
* ``id``: 8-bit grayscale PNG of class ids.
* ``cityscapes``: 8-bit PNG of Cityscapes *labelIds* (the 19 trainIds mapped back with the
  official table), written as ``<output>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` for the
  official evaluation / benchmark server. Needs a 19-class Cityscapes checkpoint.

Normalisation: the image is normalised with the ``albumentations.Normalize`` of the
checkpoint's ``dataset.val_transform`` (instantiated from the config saved in the checkpoint,
so mean / std / max_pixel_value are exactly those of training), followed by ``ToTensorV2``.
The rest of the validation pipeline (e.g. ``PadIfNeeded`` to a multiple of 32) is not applied:
:func:`segohem.inference.predict_scores` pads to ``eval.size_divisor`` itself (with the mean
colour) and cuts the padding off again, so every prediction has the input's size.

The command line is :mod:`segohem.cli.predict`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from segohem.files import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import numpy as np

    from segohem.checkpoint import LoadedModel
    from segohem.inference import InferenceConfig

log = logging.getLogger(__name__)

FORMATS = ("color", "overlay", "id", "cityscapes")
#: ``<city>_<seq>_<frame>_leftImg8bit.png`` (city names may hold hyphens: ``bad-honnef``).
CITYSCAPES_IMAGE_NAME = re.compile(
    r"^(?P<city>[A-Za-z][A-Za-z0-9-]*)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.png$")


class PredictError(ValueError):
    """A problem with the inputs, outputs or options of ``segohem-predict``; the message
    names the file or option and the fix."""


@dataclass
class PredictResult:
    """What :func:`predict` did."""

    output: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Unreadable inputs skipped with ``skip_bad=true``: (file, reason)."""


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def find_images(source: Path, recursive: bool = False,
                exclude: Path | None = None) -> tuple[Path, list[Path]]:
    """``(root, images)``: a file is itself (root: its folder); a folder gives its image
    files by suffix, sorted (sub-folders too if ``recursive``; symlinked folders are not
    followed). Files under ``exclude`` (the output folder, when it lies inside the input)
    are left out, so a rerun does not predict on its own predictions."""
    if source.is_file():
        return source.parent, [source]
    if not source.is_dir():
        raise PredictError(f"input={str(source)!r}: no such file or folder.")
    excluded = exclude.resolve() if exclude is not None else None
    if excluded == source.resolve():  # output == input: plan_outputs guards the inputs
        excluded = None
    images: list[Path] = []
    nested = 0
    for folder, dirs, files in os.walk(source):
        here = Path(folder)
        if excluded is not None and (here.resolve() == excluded
                                     or excluded in here.resolve().parents):
            dirs.clear()
            continue
        found = [here / f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        if here == source or recursive:
            images.extend(found)
        else:
            nested += len(found)
            dirs.clear()
        dirs.sort()
    if not images:
        hint = (f" Its sub-folders hold {nested} image(s): pass recursive=true." if nested
                else f" Expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}.")
        raise PredictError(f"input={str(source)!r}: no image files found.{hint}")
    return source, sorted(images)


def output_relative_path(image: Path, root: Path, fmt: str, overlay_ext: str = "jpg") -> Path:
    """Where the prediction of ``image`` goes, relative to the output folder."""
    relative = image.relative_to(root)
    if fmt == "cityscapes":
        match = CITYSCAPES_IMAGE_NAME.match(image.name)
        if match is None:
            raise PredictError(
                f"{image}: format=cityscapes needs Cityscapes file names "
                f"<city>_<seq>_<frame>_leftImg8bit.png (e.g. frankfurt_000000_000294_"
                f"leftImg8bit.png), as the official evaluation matches predictions to ground "
                f"truth by name. Use format=id for other images.")
        return Path(match["city"]) / image.name
    return relative.with_suffix(f".{overlay_ext}" if fmt == "overlay" else ".png")


def safe_destination(root: Path, relative: Path) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``: absolute or
    ``..`` paths, and symlinks (of sub-folders or of the file itself) pointing elsewhere."""
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise PredictError(f"output file name {str(relative)!r} would leave the output folder "
                           f"{root}; refusing to write it.")
    destination = root / relative
    resolved, real_root = destination.resolve(), root.resolve()
    if not resolved.is_relative_to(real_root):
        raise PredictError(f"output file {destination} resolves to {resolved}, outside the "
                           f"output folder {real_root} (a symlinked sub-folder or file?); "
                           f"refusing to write there.")
    return destination


def plan_outputs(images: list[Path], root: Path, output: Path, fmt: str,
                 overlay_ext: str = "jpg") -> list[tuple[Path, Path]]:
    """``(image, destination)`` pairs, checked before anything is written: every destination
    inside ``output``, no two images writing the same file, no input file overwritten."""
    inputs = {image.resolve() for image in images}
    pairs, seen = [], {}
    for image in images:
        destination = safe_destination(
            output, output_relative_path(image, root, fmt, overlay_ext))
        key = destination.resolve()
        if key in inputs:
            raise PredictError(f"the {fmt} prediction of {image} would overwrite the input "
                               f"file {key}; choose an output folder other than the input's.")
        if key in seen:
            raise PredictError(f"{seen[key]} and {image} would both be written to "
                               f"{destination}; rename one of them or predict them into "
                               f"different output folders.")
        seen[key] = image
        pairs.append((image, destination))
    return pairs


def read_rgb(path: Path) -> np.ndarray:
    """Image file -> uint8 ``(H, W, 3)`` RGB (read as the datasets read it: Pillow, no EXIF
    rotation); :class:`PredictError` naming the file if it cannot be decoded."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise PredictError(f"{path}: unreadable or truncated image file ({err}). Fix or "
                           f"remove it, or pass skip_bad=true to skip unreadable files.") from None
    return np.asarray(rgb)


# --------------------------------------------------------------------------------------
# Model side
# --------------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PredictError(f"device={device}: no CUDA device is available; use device=cpu "
                           f"(or device=auto).")
    return str(device)


def inference_config(node: DictConfig | dict | None) -> InferenceConfig:
    """``eval`` node -> :class:`~segohem.inference.InferenceConfig` (bad values ->
    :class:`PredictError`)."""
    from segohem.inference import InferenceConfig

    options = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) \
        else dict(node or {})
    try:
        return InferenceConfig(**options)
    except (TypeError, ValueError) as err:
        raise PredictError(str(err)) from None


def label_id_table() -> np.ndarray:
    """trainId (0-18) -> Cityscapes labelId lookup table (uint8, 256 entries)."""
    import numpy as np

    from segohem.data.datasets.cityscapes import TRAIN_ID_TO_LABEL_ID

    table = np.zeros(256, np.uint8)
    for train_id, label_id in TRAIN_ID_TO_LABEL_ID.items():
        table[train_id] = label_id
    return table


def check_cityscapes_model(loaded: LoadedModel) -> None:
    """format=cityscapes needs the 19 Cityscapes trainIds, in the official order."""
    from segohem.checkpoint import CheckpointError
    from segohem.data.datasets.cityscapes import CITYSCAPES_CLASSES

    if tuple(loaded.class_names) != CITYSCAPES_CLASSES:
        names = ", ".join(loaded.class_names[:6]) + (", ..." if loaded.num_classes > 6 else "")
        raise CheckpointError(
            f"{loaded.path}: format=cityscapes needs a model of the 19 Cityscapes classes "
            f"(trainIds 0-18, mapped back to labelIds), but this one was trained for "
            f"{loaded.num_classes} classes ({names}). Use a checkpoint trained with "
            f"dataset=cityscapes, or format=id / color.")


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def save_prediction(ids: np.ndarray, rgb: np.ndarray, destination: Path, fmt: str,
                    palette: list[tuple[int, int, int]], alpha: float) -> None:
    """Write ``(H, W)`` uint8 class ids of the ``(H, W, 3)`` uint8 image ``rgb`` in ``fmt``."""
    import torch
    from PIL import Image

    from segohem.viz import overlay, palette_image

    destination.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "color":
        palette_image(ids, palette).save(destination, optimize=True)
    elif fmt == "overlay":
        blended = overlay(torch.tensor(rgb).permute(2, 0, 1), torch.from_numpy(ids), palette,
                          alpha)
        image = Image.fromarray(blended.permute(1, 2, 0).contiguous().numpy())
        if destination.suffix.lower() in (".jpg", ".jpeg"):
            image.save(destination, quality=92)
        else:
            image.save(destination)
    elif fmt == "id":
        Image.fromarray(ids).save(destination)
    else:  # cityscapes
        Image.fromarray(label_id_table()[ids]).save(destination)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def check_options(cfg: DictConfig) -> None:
    for key in ("ckpt_path", "input", "output"):
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


def predict(cfg: DictConfig) -> PredictResult:
    """Predict every image of ``cfg.input`` into ``cfg.output`` (see the module docstring).

    Everything that can be checked before the model runs is (options, file names, output
    paths, the checkpoint), so a mistake writes nothing.
    """
    import torch
    from tqdm import tqdm

    from segohem.checkpoint import image_transform, load_model
    from segohem.inference import predict_scores

    check_options(cfg)
    fmt = str(cfg.format)
    infer_cfg = inference_config(cfg.get("eval"))
    source, output = Path(cfg.input), Path(cfg.output)
    if output.exists() and not output.is_dir():
        raise PredictError(f"output={str(output)!r} is a file; give a folder.")
    # The Cityscapes layout always keeps its images in <split>/<city>/ folders.
    recursive = bool(cfg.recursive) or fmt == "cityscapes"
    root, images = find_images(source, recursive, exclude=output)
    pairs = plan_outputs(images, root, output, fmt, str(cfg.overlay_ext).lower())

    device = resolve_device(cfg.device)
    loaded = load_model(cfg.ckpt_path, map_location=device, trust=bool(cfg.trust_checkpoint))
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
        save_prediction(ids, rgb, destination, fmt, palette, alpha)
        result.written.append(destination)

    log.info("Wrote %d %s prediction(s) to %s", len(result.written), fmt, output.resolve())
    if result.skipped:
        log.warning("Skipped %d unreadable image(s):\n%s", len(result.skipped),
                    "\n".join(f"  {path}" for path, _ in result.skipped))
    return result
