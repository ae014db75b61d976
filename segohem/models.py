"""Build any segmentation-models-pytorch architecture from config."""

from __future__ import annotations

from typing import Any

from torch import nn


def build_model(
    arch: str = "Unet",
    encoder_name: str = "resnet18",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    num_classes: int = 2,
    **kwargs: Any,
) -> nn.Module:
    """``smp.create_model`` with offline-safe defaults.

    Args:
        arch: SMP architecture name (``Unet``, ``DeepLabV3Plus``, ``FPN``, ``Segformer``...).
        encoder_name: SMP encoder (``resnet18``, ``mobilenet_v2``, ``tu-<timm name>``...).
        encoder_weights: ``None`` (default: random init, no network access) or e.g.
            ``"imagenet"`` when the weights are available.
        in_channels: input image channels.
        num_classes: output channels; the model maps ``(B, in_channels, H, W)`` images to
            ``(B, num_classes, H', W')`` logits.
        **kwargs: architecture options (``encoder_depth``, ``decoder_channels``...).
    """
    import segmentation_models_pytorch as smp

    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"model num_classes must be an int >= 1, got {num_classes!r}.")
    try:
        return smp.create_model(arch, encoder_name=encoder_name, encoder_weights=encoder_weights,
                                in_channels=in_channels, classes=num_classes, **kwargs)
    except KeyError as error:  # SMP raises KeyError for unknown architectures / encoders
        raise ValueError(f"segmentation-models-pytorch cannot build arch={arch!r} with "
                         f"encoder_name={encoder_name!r}: {error}") from error
