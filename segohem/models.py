"""Build any segmentation-models-pytorch architecture from config."""

from __future__ import annotations

import logging
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

log = logging.getLogger(__name__)


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
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"model num_classes must be an int >= 1, got {num_classes!r}.")
    try:
        model = smp.create_model(arch, encoder_name=encoder_name,
                                 encoder_weights=encoder_weights, in_channels=in_channels,
                                 classes=num_classes, **kwargs)
    except KeyError as error:  # SMP raises KeyError for unknown architectures / encoders
        raise ValueError(f"segmentation-models-pytorch cannot build arch={arch!r} with "
                         f"encoder_name={encoder_name!r}: {error}") from error
    drop_unused_encoder_modules(model, in_channels)
    return model


def drop_unused_encoder_modules(model: nn.Module, in_channels: int = 3) -> int:
    """Replace encoder sub-modules that cannot affect the output by ``nn.Identity``.

    With ``encoder_depth < 5`` several SMP encoders (e.g. ``mobilenet_v2``) still build and
    run their last stages and then drop those features: the parameters get no gradient, so
    DDP fails ("parameters that were not used in producing the loss"), the model reports
    more parameters than it uses (1.7 M of 2.4 M for the default Unet / mobilenet_v2 /
    depth 4) and every step computes them for nothing. A small forward / backward pass finds
    the parameters without a gradient; the outermost encoder modules made only of such
    parameters are replaced, and the eval-mode output on the probe must be unchanged (else
    nothing is replaced). Buffers (BatchNorm statistics) are restored after the probe.
    Returns the number of parameters removed.
    """
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        return 0
    was_training = model.training
    buffers = {name: buf.clone() for name, buf in model.named_buffers()}
    probe = torch.linspace(-1, 1, 2 * in_channels * 64 * 64).reshape(2, in_channels, 64, 64)
    try:
        model.eval()
        with torch.no_grad():
            reference = model(probe)
        model.train()
        model.zero_grad(set_to_none=True)
        # The probe needs autograd even when the caller builds the model under no_grad.
        with torch.inference_mode(False), torch.enable_grad():
            model(probe).float().square().mean().backward()
    except Exception as err:  # an odd encoder: keep the model as it is
        log.debug("not pruning the encoder, the probe pass failed: %s", err)
        return 0
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(buffers[name])
        model.train(was_training)
    unused = {id(p) for p in encoder.parameters() if p.grad is None}
    model.zero_grad(set_to_none=True)

    def is_unused(module: nn.Module) -> bool:
        params = list(module.parameters())
        return bool(params) and all(id(p) in unused for p in params)

    replaced: list[tuple[nn.Module, str, nn.Module]] = []
    for name, module in list(encoder.named_modules()):
        parent_name, _, child = name.rpartition(".")
        if not name or not is_unused(module):
            continue
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        if is_unused(parent) and parent is not encoder:
            continue  # the parent goes as a whole
        replaced.append((parent, child, module))
    for parent, child, _ in replaced:
        setattr(parent, child, nn.Identity())
    model.eval()
    try:
        with torch.no_grad():
            same = torch.equal(model(probe), reference)
    except Exception:  # the replaced modules were needed after all
        same = False
    finally:
        model.train(was_training)
    if not same:
        for parent, child, module in replaced:
            setattr(parent, child, module)
        return 0
    removed = sum(p.numel() for *_, m in replaced for p in m.parameters())
    if removed:
        log.info("Removed %d encoder parameters that cannot affect the output (SMP builds "
                 "stages beyond encoder_depth).", removed)
    return removed
