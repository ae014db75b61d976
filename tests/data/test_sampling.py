"""Rare-class sampling (data.sampler=rare_class): the draws follow the RCS distribution, are
deterministic from (seed, epoch), shard disjointly under Lightning's DDP wrapper, and never
pick a class that no image holds."""

import json
from collections import Counter

import numpy as np
import pytest
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from torch.utils.data import DataLoader

from segohem.config.checks import ConfigError
from segohem.data.sampling import RareClassSampler, rcs_probabilities, sampler_summary
from tests._support.configs import TINY, compose_train

IGNORE = 255


def masks_to_stats(masks: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C)`` presence and ``(C,)`` labelled-pixel shares of ``(N, H, W)`` masks."""
    presence = np.stack([(masks == c).any(axis=(1, 2)) for c in range(num_classes)], axis=1)
    pixels = np.array([(masks == c).sum() for c in range(num_classes)], dtype=np.float64)
    return presence, pixels / pixels.sum()


def toy_masks(n: int = 60, seed: int = 0) -> np.ndarray:
    """``(N, 16, 16)``: class 0 background everywhere, class 1 in every third image, class 2
    in one image of 20, class 3 never; a band of ignore pixels in each."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 16, 16), dtype=np.int64)
    masks[:, :2] = IGNORE
    for i in range(n):
        if i % 3 == 0:
            masks[i, 4:4 + rng.integers(2, 8), 4:10] = 1
        if i % 20 == 5:
            masks[i, 12:14, 12:14] = 2
    return masks


@pytest.fixture
def stats() -> tuple[np.ndarray, np.ndarray]:
    return masks_to_stats(toy_masks(), num_classes=4)


def test_probabilities_are_the_rcs_formula(stats):
    presence, share = stats
    p = rcs_probabilities(presence, share, temperature=0.1)
    expected = np.exp((1 - share[:3]) / 0.1)
    np.testing.assert_allclose(p[:3], expected / expected.sum())
    assert p[3] == 0.0  # in no image
    assert p[2] > p[1] > p[0]


def test_draws_follow_the_rcs_distribution(stats):
    presence, share = stats
    sampler = RareClassSampler(presence, share, temperature=0.1, seed=1, num_samples=200_000)
    classes, images = sampler.draws()
    frequency = np.bincount(classes, minlength=4) / len(classes)
    assert np.abs(frequency - sampler.probabilities).max() < 0.01
    assert presence[images, classes].all()  # each image holds the class it was drawn for
    # The image, given its class, is uniform among the images holding the class.
    per_class = presence / presence.sum(axis=0).clip(min=1)
    expected_images = per_class @ sampler.probabilities
    observed_images = np.bincount(images, minlength=len(presence)) / len(images)
    assert np.abs(observed_images - expected_images).max() < 0.01


def test_a_class_in_no_image_is_never_drawn(stats):
    presence, share = stats
    # Share 0 gives class 3 the largest exp((1 - f) / T): only its absence keeps it out.
    for temperature in (0.01, 1.0, 100.0):
        sampler = RareClassSampler(presence, share, temperature=temperature, num_samples=5000)
        assert 3 not in sampler.draws()[0]


def test_epoch_length_is_the_training_set(stats):
    presence, share = stats
    sampler = RareClassSampler(presence, share)
    assert len(sampler) == len(list(sampler)) == len(presence)


def test_same_draws_after_resume(stats):
    presence, share = stats
    first = RareClassSampler(presence, share, seed=7)
    epochs = []
    for epoch in range(4):
        first.set_epoch(epoch)
        epochs.append(list(first))
    resumed = RareClassSampler(presence, share, seed=7)  # a new process, after a checkpoint
    resumed.set_epoch(3)
    assert list(resumed) == epochs[3]
    assert epochs[2] != epochs[3]
    other_seed = RareClassSampler(presence, share, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != epochs[3]


@pytest.mark.parametrize("num_samples", [60, 61])
def test_ddp_ranks_take_disjoint_shares_of_the_epoch(stats, num_samples):
    presence, share = stats
    sampler = RareClassSampler(presence, share, seed=3, num_samples=num_samples)
    loader = DataLoader(range(len(presence)), sampler=sampler, batch_size=4)
    ranks = []
    for rank in range(2):
        # What Lightning's fit does with use_distributed_sampler=True on 2 ranks.
        wrapped = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0,
                                           num_replicas=2, rank=rank, seed=0)
        assert isinstance(wrapped, DistributedSamplerWrapper)
        wrapped.set_epoch(5)  # forwarded to our sampler
        assert sampler.epoch == 5
        ranks.append(list(wrapped))
    sampler.set_epoch(5)
    epoch = list(sampler)
    assert len(ranks[0]) == len(ranks[1]) == -(-num_samples // 2)
    # Each draw of the epoch on exactly one rank (an odd epoch pads one repeat, as
    # DistributedSampler does).
    combined = Counter(ranks[0]) + Counter(ranks[1])
    assert not Counter(epoch) - combined
    assert sum((combined - Counter(epoch)).values()) == 2 * len(ranks[0]) - num_samples


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_temperature_names_the_option(stats, bad):
    with pytest.raises(ValueError, match=r"data\.sampler_temperature"):
        RareClassSampler(*stats, temperature=bad)


def test_no_class_anywhere_is_an_error():
    with pytest.raises(ValueError, match="no class is present"):
        RareClassSampler(np.zeros((3, 2), dtype=bool), np.zeros(2))


def test_summary_for_metrics_json(stats):
    sampler = RareClassSampler(*stats, temperature=0.05, seed=2)
    summary = sampler_summary(sampler, ["bg", "a", "b", "c"])
    assert summary["name"] == "rare_class"
    assert summary["temperature"] == 0.05
    assert summary["class_probability"]["c"] == 0.0
    assert sum(summary["class_probability"].values()) == pytest.approx(1.0)
    assert sampler_summary(None, ["bg"]) == {"name": "shuffle"}


def test_bad_sampler_option_names_the_fix():
    from segohem.data.datamodule import SegmentationDataModule

    with pytest.raises(ConfigError, match=r"data\.sampler='rare'.*data\.sampler=rare_class"):
        SegmentationDataModule([], [], sampler="rare")
    with pytest.raises(ConfigError, match=r"data\.sampler_temperature=0"):
        SegmentationDataModule([], [], sampler="rare_class", sampler_temperature=0)


@pytest.mark.slow
def test_segohem_train_data_sampler_rare_class(tmp_path):
    """`segohem-train data.sampler=rare_class` (composed as the command line gives it) trains
    an epoch; metrics.json records the sampler, TensorBoard the sampled image shares."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from segohem.train.run import train

    cfg = compose_train(["data.sampler=rare_class", "data.sampler_temperature=0.05", *TINY],
                        tmp_path)
    assert (cfg.data.sampler, cfg.data.sampler_temperature, cfg.data.seed) == (
        "rare_class", 0.05, cfg.seed)
    train(cfg)
    sampler = json.loads((tmp_path / "metrics.json").read_text())["data"]["sampler"]
    assert sampler["name"] == "rare_class"
    assert sampler["temperature"] == 0.05
    assert list(sampler["class_probability"]) == list(cfg.dataset.class_names)
    assert sum(sampler["class_probability"].values()) == pytest.approx(1.0)
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    for name in cfg.dataset.class_names:
        (share,) = events.Scalars(f"train/sampled_image_share/{name}")
        assert 0.0 <= share.value <= 1.0


def test_default_run_records_shuffling(tmp_path):
    from segohem.data import build_dataset

    cfg = compose_train(TINY, tmp_path)
    assert cfg.data.sampler is None
    data = build_dataset(cfg.data)
    assert data.sampler_summary == {"name": "shuffle"}
    assert data._train_sampler() is None
