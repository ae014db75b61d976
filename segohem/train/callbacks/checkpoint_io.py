"""Checkpoint files that are never left truncated."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from segohem.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint with :func:`segohem.files.atomic_write` (a temporary file in the
    same folder, flushed to disk, then renamed over the target), so a run killed at any
    moment leaves either the previous complete file or the new complete file.
    Remote paths (``scheme://``) fall back to Lightning's writer."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(path, lambda fh: torch.save(checkpoint, fh))
