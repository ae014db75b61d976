"""Inference the way segmentation papers evaluate: whole image or sliding window, optionally
with multi-scale + horizontal-flip test-time augmentation (TTA).

``model`` is any callable ``(B, 3, H, W) -> (B, C, h, w)`` logits (``h, w`` may be smaller:
logits are upsampled bilinearly). Inputs are padded (zeros, i.e. the mean colour after
normalisation) to a multiple of ``size_divisor`` for the network and the padding is cut off
the logits again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

Model = Callable[[Tensor], Tensor]


@dataclass
class InferenceConfig:
    """How to turn images into class scores.

    Attributes:
        mode: ``"whole"`` (one forward per image) or ``"slide"`` (windows of ``crop_size``
            every ``stride`` pixels, overlapping logits averaged: the Cityscapes standard for
            1024x2048 images with 512x1024 or 769x769 crops).
        crop_size: ``(h, w)`` window for ``"slide"``.
        stride: ``(h, w)`` step for ``"slide"`` (default: 2/3 of the crop).
        scales: image scales for TTA, e.g. ``[0.5, 0.75, 1.0, 1.25, 1.5, 1.75]``.
        flip: also run horizontally flipped images (flipped back before averaging).
        size_divisor: the network's input size must be a multiple of this.
        window_batch: windows per forward pass in ``"slide"`` mode.
    """

    mode: str = "whole"
    crop_size: Sequence[int] | None = None
    stride: Sequence[int] | None = None
    scales: Sequence[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    size_divisor: int = 32
    window_batch: int = 4

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"eval.mode must be 'whole' or 'slide', got {self.mode!r}.")
        if self.mode == "slide":
            if self.crop_size is None or len(self.crop_size) != 2 or min(self.crop_size) < 1:
                raise ValueError(f"eval.mode=slide needs eval.crop_size=[h,w], got "
                                 f"{self.crop_size!r}.")
            self.crop_size = (int(self.crop_size[0]), int(self.crop_size[1]))
            if self.stride is None:
                self.stride = (max(1, self.crop_size[0] * 2 // 3),
                               max(1, self.crop_size[1] * 2 // 3))
            if len(self.stride) != 2 or min(self.stride) < 1:
                raise ValueError(f"eval.stride must be [h,w] >= 1, got {self.stride!r}.")
            self.stride = (int(self.stride[0]), int(self.stride[1]))
            if self.stride[0] > self.crop_size[0] or self.stride[1] > self.crop_size[1]:
                raise ValueError(f"eval.stride {list(self.stride)} larger than eval.crop_size "
                                 f"{list(self.crop_size)} would skip pixels.")
        self.scales = [float(s) for s in self.scales]
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"eval.scales must be positive numbers, got {self.scales!r}.")
        if self.size_divisor < 1 or self.window_batch < 1:
            raise ValueError("eval.size_divisor and eval.window_batch must be >= 1.")

    @property
    def is_plain(self) -> bool:
        """One pass, no augmentation: scores are the raw logits."""
        return self.scales == [1.0] and not self.flip


def padded_logits(model: Model, images: Tensor, size_divisor: int = 32) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, C, H, W)`` logits: zero-pad to a multiple of ``size_divisor``,
    run, upsample to the padded size if the model outputs less, cut the padding off."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % size_divisor, (-w) % size_divisor
    x = F.pad(images, (0, pw, 0, ph)) if ph or pw else images
    logits = model(x)
    if logits.shape[-2:] != x.shape[-2:]:
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return logits[..., :h, :w]


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of windows of ``crop`` every ``stride`` covering ``[0, size)``; the last
    window is aligned to the end (mmsegmentation's rule). One window if ``crop >= size``."""
    if crop >= size:
        return [0]
    count = (size - crop + stride - 1) // stride + 1
    return sorted({min(i * stride, size - crop) for i in range(count)})


def sliding_window_logits(model: Model, images: Tensor, crop_size: Sequence[int],
                          stride: Sequence[int], size_divisor: int = 32,
                          window_batch: int = 4) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, C, H, W)`` logits averaged over overlapping windows."""
    b, _, h, w = images.shape
    ch, cw = min(crop_size[0], h), min(crop_size[1], w)
    boxes = [(y, x) for y in window_starts(h, ch, stride[0])
             for x in window_starts(w, cw, stride[1])]
    total: Tensor | None = None
    count = torch.zeros(1, 1, h, w, device=images.device)
    for i in range(0, len(boxes), window_batch):
        group = boxes[i:i + window_batch]
        crops = torch.cat([images[:, :, y:y + ch, x:x + cw] for y, x in group])
        logits = padded_logits(model, crops, size_divisor).float()
        if total is None:
            total = torch.zeros(b, logits.shape[1], h, w, device=images.device)
        for j, (y, x) in enumerate(group):
            total[:, :, y:y + ch, x:x + cw] += logits[j * b:(j + 1) * b]
            count[:, :, y:y + ch, x:x + cw] += 1
    assert total is not None
    return total / count


def single_pass_logits(model: Model, images: Tensor, cfg: InferenceConfig) -> Tensor:
    if cfg.mode == "slide":
        return sliding_window_logits(model, images, cfg.crop_size, cfg.stride,
                                     cfg.size_divisor, cfg.window_batch)
    return padded_logits(model, images, cfg.size_divisor).float()


@torch.no_grad()
def predict_scores(model: Model, images: Tensor, cfg: InferenceConfig | None = None) -> Tensor:
    """Class scores ``(B, C, H, W)`` float32 for normalised images ``(B, 3, H, W)``.

    Without augmentation (scale 1, no flip) these are the logits. With TTA, each scale (and
    its flipped copy) is run at ``round(H * s) x round(W * s)``, its logits are resized back
    to ``H x W`` and turned into probabilities, and the probabilities are averaged.
    """
    cfg = cfg or InferenceConfig()
    if cfg.is_plain:
        return single_pass_logits(model, images, cfg)
    h, w = images.shape[-2:]
    total: Tensor | None = None
    passes = 0
    for scale in cfg.scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        scaled = images if size == (h, w) else F.interpolate(
            images, size=size, mode="bilinear", align_corners=False)
        for flip in ([False, True] if cfg.flip else [False]):
            x = scaled.flip(-1) if flip else scaled
            logits = single_pass_logits(model, x, cfg)
            if flip:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear",
                                       align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
            passes += 1
    assert total is not None
    return total / passes
