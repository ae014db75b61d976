"""Small file helpers shared by training, evaluation, prediction and the datasets (standard
library only, so the command-line entry points stay quick to import)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm", ".pnm"})
"""File suffixes (lower case) read as images: by the folder datasets and by
``segohem-predict``."""


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file so that it is never seen half-written.

    ``write(fh)`` fills a temporary file ``.<name>.<pid>.tmp`` in the target's folder (created
    if needed), which is flushed to disk and renamed over ``path`` (``os.replace`` is atomic):
    a process killed at any moment leaves either the previous complete file or the new one.
    Temporary files left by a killed earlier writer of the same target are removed first; the
    temporary file is removed when ``write`` raises. Returns ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON (2 spaces, trailing newline), written with
    :func:`atomic_write`. Returns ``path``."""
    text = json.dumps(data, indent=2) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))
