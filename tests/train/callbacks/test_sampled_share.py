"""SampledClassShare: per-class image share of the training batches, over an epoch and over
the ranks; rare-class sampling raises the share of an image-rare class."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from segohem.data.sampling import RareClassSampler
from segohem.train.callbacks import SampledClassShare
from segohem.train.callbacks.sampled_share import images_with_class


def test_images_with_class_counts_images_not_pixels():
    masks = torch.tensor([[[0, 0], [1, 255]],
                          [[0, 0], [0, 0]],
                          [[2, 2], [255, 255]]])
    assert images_with_class(masks, 4).tolist() == [2, 1, 1, 0]


class Recorder:
    """The parts of a LightningModule / Trainer the callback uses."""

    def __init__(self, names):
        self.class_names = names
        self.logged = {}
        self.strategy = SimpleNamespace(reduce=lambda t, reduce_op: t)

    def log_dict(self, values, **kwargs):
        self.logged = {k: float(v) for k, v in values.items()}


def epoch_shares(masks: torch.Tensor, order: list[int], batch: int = 4) -> dict[str, float]:
    module = Recorder(["bg", "common", "rare"])
    callback = SampledClassShare()
    callback.on_train_epoch_start(module, module)
    for start in range(0, len(order), batch):
        callback.on_train_batch_end(module, module, None,
                                    {"mask": masks[order[start:start + batch]]}, 0)
    callback.on_train_epoch_end(module, module)
    return module.logged


def test_share_per_epoch_and_the_sampler_effect():
    n = 100
    masks = torch.zeros((n, 8, 8), dtype=torch.long)
    masks[::2, :2] = 1  # common: half the images
    masks[::25, 6:, 6:] = 2  # rare: 4 of 100 images
    plain = epoch_shares(masks, list(range(n)))
    assert plain == pytest.approx({"train/sampled_image_share/bg": 1.0,
                                   "train/sampled_image_share/common": 0.5,
                                   "train/sampled_image_share/rare": 0.04})
    presence = np.stack([(masks == c).flatten(1).any(1).numpy() for c in range(3)], axis=1)
    pixels = np.array([(masks == c).sum().item() for c in range(3)], dtype=float)
    sampler = RareClassSampler(presence, pixels / pixels.sum(), temperature=0.1, seed=0)
    sampled = epoch_shares(masks, list(sampler))
    assert sampled["train/sampled_image_share/rare"] > 5 * plain["train/sampled_image_share/rare"]
