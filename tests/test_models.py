"""segohem.models: SMP models whose encoder stages beyond ``encoder_depth`` are removed, so
DDP finds no unused parameters (it refuses those) and the output is unchanged."""

from __future__ import annotations

import pytest
import torch

from segohem.models import build_model


@pytest.mark.parametrize("depth", [3, 4])
def test_default_encoder_has_no_unused_parameters_and_same_output(depth):
    import segmentation_models_pytorch as smp

    decoder = [64, 32, 16, 8][:depth]
    torch.manual_seed(0)
    full = smp.create_model("Unet", "mobilenet_v2", encoder_weights=None,
                            encoder_depth=depth, decoder_channels=decoder, classes=6)
    torch.manual_seed(0)
    pruned = build_model("Unet", "mobilenet_v2", encoder_depth=depth,
                         decoder_channels=decoder, num_classes=6)
    assert sum(p.numel() for p in pruned.parameters()) < sum(
        p.numel() for p in full.parameters())
    images = torch.randn(2, 3, 64, 96)
    full.eval(), pruned.eval()
    with torch.no_grad():
        torch.testing.assert_close(pruned(images), full(images))
    pruned.train()
    pruned(images).sum().backward()
    assert [n for n, p in pruned.named_parameters() if p.grad is None] == []


def test_encoder_pruning_also_happens_under_no_grad():
    with torch.no_grad():
        quiet = build_model("Unet", "mobilenet_v2", encoder_depth=4,
                            decoder_channels=[64, 32, 16, 8], num_classes=6)
    normal = build_model("Unet", "mobilenet_v2", encoder_depth=4,
                         decoder_channels=[64, 32, 16, 8], num_classes=6)
    assert set(quiet.state_dict()) == set(normal.state_dict())
    assert not any(k.startswith("encoder.features.14") for k in normal.state_dict())
