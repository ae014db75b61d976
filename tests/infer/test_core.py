"""Sliding-window and TTA inference (segohem.infer.core)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segohem.infer.core import InferenceConfig, predict_scores, window_starts


class Downsampling(nn.Module):
    """Not pointwise (3x3 conv, stride 2): its output depends on the window."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0, x.shape  # size_divisor
        return self.conv(x)


class Pointwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


def test_window_starts_cover_everything_and_end_at_the_border():
    for size, crop, stride in [(100, 32, 20), (1024, 512, 341), (64, 64, 64), (50, 64, 32)]:
        starts = window_starts(size, crop, stride)
        covered = torch.zeros(size, dtype=torch.bool)
        for s in starts:
            covered[s:s + crop] = True
        assert covered.all() and starts[0] == 0
        assert starts[-1] + min(crop, size) == size


def test_slide_with_crop_equal_to_image_equals_whole():
    model, images = Downsampling(), torch.randn(2, 3, 64, 96)
    whole = predict_scores(model, images, InferenceConfig("whole"))
    slide = predict_scores(model, images, InferenceConfig("slide", crop_size=(64, 96),
                                                          stride=(64, 96)))
    assert torch.equal(whole, slide)
    assert whole.shape == (2, 4, 64, 96)


def test_overlapping_windows_of_a_pointwise_model_equal_whole_image():
    model, images = Pointwise(), torch.randn(1, 3, 70, 100)
    whole = predict_scores(model, images, InferenceConfig("whole"))
    slide = predict_scores(model, images, InferenceConfig("slide", crop_size=(32, 48),
                                                          stride=(20, 30)))
    torch.testing.assert_close(slide, whole)


def test_whole_image_pads_to_the_size_divisor_and_crops_back():
    scores = predict_scores(Downsampling(), torch.randn(1, 3, 50, 70))
    assert scores.shape == (1, 4, 50, 70)


def test_flip_tta_of_a_flip_equivariant_model_equals_no_tta():
    model, images = Pointwise(), torch.randn(2, 3, 32, 64)  # 1x1 conv: flip-equivariant
    plain = predict_scores(model, images).softmax(1)
    tta = predict_scores(model, images, InferenceConfig(flip=True))
    torch.testing.assert_close(tta, plain)


def test_multiscale_tta_averages_probabilities():
    model, images = Pointwise(), torch.randn(1, 3, 64, 64)
    tta = predict_scores(model, images, InferenceConfig(scales=[0.5, 1.0, 1.5], flip=True))
    assert tta.shape == (1, 4, 64, 64)
    torch.testing.assert_close(tta.sum(1), torch.ones(1, 64, 64))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "tiled"}, "eval.mode must be"),
    ({"mode": "slide"}, "needs eval.crop_size"),
    ({"mode": "slide", "crop_size": (32, 32), "stride": (64, 16)}, "would skip pixels"),
    ({"scales": [0.5, 0]}, "eval.scales must be positive"),
])
def test_bad_inference_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InferenceConfig(**kwargs)
