"""Argument and input checks shared by the losses; every error names the bad value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

Count = int | float | None
"""A pixel count: ``None`` (loss-specific default), an int (that many pixels) or a
float in ``(0, 1]`` (that fraction of the valid pixels, rounded down)."""


def check_probability(name: str, value: float, *, hint: str = "") -> float:
    """Return ``value`` as float if it lies in ``(0, 1]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 < value <= 1.0):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}.{hint}")
    return float(value)


def check_fraction(name: str, value: float) -> float:
    """Return ``value`` as float if it lies in ``[0, 1]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def check_count(name: str, value: Count) -> Count:
    """Validate a :data:`Count`; raise ``ValueError`` naming ``value`` when it is invalid."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be None, a non-negative int (pixels) or a float in (0, 1] "
            f"(fraction of valid pixels), got {value!r} of type {type(value).__name__}."
        )
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 pixels, got {value}.")
        return int(value)
    value = float(value)
    if not (0.0 < value <= 1.0):
        example = max(int(value), 0) if math.isfinite(value) else 0
        raise ValueError(
            f"{name}={value!r} is a float, so it is read as a fraction of the valid "
            f"pixels and must lie in (0, 1]; pass an int for an absolute pixel count "
            f"(e.g. {name}={example})."
        )
    return value


def check_non_negative(name: str, value: float, *, hint: str = "") -> float:
    """Return ``value`` as float if it is a finite number >= 0, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0{hint}, got {value!r}.")
    return float(value)


def check_int(name: str, value: int, *, minimum: int, hint: str = "") -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{hint}, got {value!r}.")
    return int(value)


def class_weight_tensor(
    weight: Sequence[float] | Tensor | None, name: str = "weight"
) -> Tensor | None:
    """Turn per-class weights (list, tuple, ListConfig or tensor) into a 1-D float32 tensor."""
    if weight is None:
        return None
    tensor = torch.as_tensor(list(weight) if not isinstance(weight, Tensor) else weight,
                             dtype=torch.float32)
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"{name} must be a 1-D sequence of per-class weights, got shape "
                         f"{tuple(tensor.shape)}.")
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {tensor.tolist()}.")
    return tensor


def pixel_class_weights(
    weight: Tensor, labels: Tensor, valid: Tensor, num_classes: int
) -> Tensor:
    """Per-pixel float32 weights ``weight[label]`` (0 on invalid pixels).

    Args:
        weight: ``(C,)`` per-class weights (any float dtype: ``module.half()`` converts
            buffers, the losses still weigh in float32).
        labels: ``(B, *spatial)`` int64; valid: ``(B, *spatial)`` bool.

    Returns:
        ``(B, *spatial)`` float32.
    """
    if weight.numel() != num_classes:
        raise ValueError(f"weight has {weight.numel()} entries but the logits have "
                         f"{num_classes} classes.")
    return torch.where(valid, weight.float()[torch.where(valid, labels, 0)], 0.0)


def check_logits_labels(logits: Tensor, labels: Tensor, *, channels: int | None = None) -> Tensor:
    """Check shapes and dtypes; return ``labels`` as int64.

    Args:
        logits: ``(B, C, *spatial)`` floating point.
        labels: ``(B, *spatial)`` integer.
        channels: required ``C`` (e.g. 1 for binary losses), or None for any.
    """
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating point tensor, got dtype {logits.dtype}.")
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (B, C, H, W), got {tuple(logits.shape)}.")
    if channels is not None and logits.shape[1] != channels:
        raise ValueError(
            f"logits must have {channels} channel(s) (shape (B, {channels}, H, W)), got "
            f"shape {tuple(logits.shape)}."
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(labels.shape) != expected:
        hint = ""
        if labels.dim() == logits.dim() and labels.shape[1] == 1:
            hint = " Drop the channel dimension of the labels with labels.squeeze(1)."
        elif tuple(labels.shape[-2:]) != tuple(logits.shape[-2:]):
            hint = (" Upsample the logits to the label size (F.interpolate(..., "
                    "mode='bilinear')) or resize the labels with nearest neighbour.")
        raise ValueError(
            f"logits of shape {tuple(logits.shape)} need labels of shape {expected}, got "
            f"labels of shape {tuple(labels.shape)}.{hint}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"labels must be an integer tensor of class ids, got dtype {labels.dtype}.")
    return labels if labels.dtype == torch.int64 else labels.long()


def check_label_range(labels: Tensor, valid: Tensor, num_classes: int, ignore_index: int) -> None:
    """Raise ``ValueError`` listing label values outside ``[0, num_classes)`` other than
    ``ignore_index``. Costs one host-device sync on accelerators."""
    low, high = torch.where(valid, labels, 0).aminmax()
    if bool((low >= 0) & (high < num_classes)):
        return
    bad = torch.unique(labels[valid & ((labels < 0) | (labels >= num_classes))])
    shown = bad[:10].tolist()
    more = f" and {bad.numel() - 10} more" if bad.numel() > 10 else ""
    raise ValueError(
        f"labels contain values {shown}{more} outside [0, {num_classes}) that are not "
        f"ignore_index={ignore_index}. Fix the dataset's label mapping (map void classes to "
        f"{ignore_index}), or pass check_labels=False to skip this check."
    )
