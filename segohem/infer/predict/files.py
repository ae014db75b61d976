"""Image files in, prediction files out (for ``segohem-predict``): finding the input images,
planning where each prediction goes (inside the output folder, no two on one file, no input
overwritten) and reading an image."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segohem.files import IMAGE_SUFFIXES

#: ``<city>_<seq>_<frame>_leftImg8bit.png`` (city names may hold hyphens: ``bad-honnef``).
CITYSCAPES_IMAGE_NAME = re.compile(
    r"^(?P<city>[A-Za-z][A-Za-z0-9-]*)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.png$")


class PredictError(ValueError):
    """A problem with the inputs, outputs or options of ``segohem-predict``; the message
    names the file or option and the fix."""


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
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise PredictError(f"{path}: unreadable or truncated image file ({err}). Fix or "
                           f"remove it, or pass skip_bad=true to skip unreadable files.") from None
    return np.asarray(rgb)
