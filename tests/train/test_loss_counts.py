"""The training set's class counts reach a CRL loss with alpha=None through
``SegmentationModule.setup`` (from the data module, without its augmentation), and the errors
that stop a fit before training."""

import logging
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn

from segohem.config.checks import ConfigError
from segohem.data import SyntheticDataset
from segohem.data.class_counts import class_pixel_counts
from segohem.data.datamodule import SegmentationDataModule
from segohem.losses import CrossEntropyLoss, MinorityRectificationLoss, WeightedSumLoss
from segohem.train.loss_counts import needs_class_counts, untransformed
from segohem.train.module import SegmentationModule

NAMES = list(SyntheticDataset.classes)


class CountingTransform:
    """Float images and int64 masks; counts its calls (the augmentation stream)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict:
        self.calls += 1
        return {"image": image.astype(np.float32) / 255.0, "mask": mask}


def crl(alpha=None) -> MinorityRectificationLoss:
    return MinorityRectificationLoss(CrossEntropyLoss(), k=4, alpha=alpha)


def make_module(loss: nn.Module) -> SegmentationModule:
    model = nn.Conv2d(3, len(NAMES), 3, padding=1)
    return SegmentationModule(model, loss, torch.optim.SGD, num_classes=len(NAMES),
                              class_names=NAMES)


def synthetic(transform=None, n: int = 8) -> SyntheticDataset:
    return SyntheticDataset(split="train", num_samples=n, image_size=32, transform=transform)


def expected_alpha(dataset: SyntheticDataset) -> float:
    counts = class_pixel_counts(dataset, len(NAMES))
    shares = counts / counts.sum()
    return float(np.clip(shares - 1 / len(NAMES), 0, None).sum())  # eta 0.01 x percentage


def setup_with(module: SegmentationModule, datamodule) -> None:
    module._trainer = SimpleNamespace(datamodule=datamodule, is_global_zero=True)
    module.setup("fit")


def test_setup_gives_crl_the_counts_of_the_untransformed_training_set(caplog):
    transform = CountingTransform()
    data = SegmentationDataModule(synthetic(transform), synthetic(), batch_size=4,
                                  num_workers=0)
    loss = WeightedSumLoss({"crl": crl()})  # found among the loss's terms
    module = make_module(loss)
    assert needs_class_counts(module.loss)
    with caplog.at_level(logging.INFO, logger="segohem"):
        setup_with(module, data)
    assert not needs_class_counts(module.loss)
    assert loss.losses["crl"].current_alpha() == pytest.approx(expected_alpha(synthetic()))
    assert transform.calls == 0  # the seeded augmentation stream is untouched
    assert data.train_set.transform is transform
    assert any("loss alpha = " in r.getMessage() for r in caplog.records)


def test_setup_leaves_an_explicit_alpha_and_other_stages_alone():
    module = make_module(crl(alpha=0.3))
    setup_with(module, None)  # no data needed: nothing to count
    assert module.loss.current_alpha() == 0.3
    waiting = make_module(crl())
    waiting._trainer = SimpleNamespace(datamodule=None, is_global_zero=True)
    waiting.setup("validate")
    assert needs_class_counts(waiting.loss)


def test_a_fit_without_a_training_set_or_labels_is_a_config_error():
    with pytest.raises(ConfigError, match=r"loss.alpha=null: .*no data module with a `train_set`"):
        setup_with(make_module(crl()), None)
    all_ignore = [{"image": torch.zeros(3, 8, 8), "mask": torch.full((8, 8), 255)}] * 2
    data = SimpleNamespace(train_set=all_ignore)
    with pytest.raises(ConfigError, match=r"loss.alpha=null: .*no class \(\['background'"):
        setup_with(make_module(crl()), data)


def test_untransformed_copies_only_datasets_that_augment_their_masks():
    transform = CountingTransform()
    dataset = synthetic(transform)
    plain = untransformed(dataset)
    assert plain is not dataset and plain.transform is None and dataset.transform is transform
    bare = [{"mask": np.zeros((2, 2))}]
    assert untransformed(bare) is bare


def test_a_real_fit_sets_alpha_before_the_first_step(tmp_path):
    loss = crl()
    alphas: list[float] = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            alphas.append(pl_module.loss.current_alpha())

    data = SegmentationDataModule(synthetic(CountingTransform()), synthetic(n=4), batch_size=4,
                                  num_workers=0)
    trainer = pl.Trainer(max_steps=1, limit_val_batches=0, logger=False, callbacks=[Probe()],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(make_module(loss), datamodule=data)
    assert alphas == [pytest.approx(expected_alpha(synthetic()))]
