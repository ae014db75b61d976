"""SegmentationDataModule: augmentation randomness per worker, reproducible under the run seed;
exact validation metrics under DDP on CPU (gloo), every sample counted once."""

import warnings
from types import SimpleNamespace

import albumentations as A
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate
from torch.utils.data import Dataset

from segohem.data.datamodule import SegmentationDataModule
from segohem.train.module import SegmentationModule
from tests._support.configs import TINY, compose_train


class SameImage(Dataset):
    """64 copies of one asymmetric image; the transform's flips are the only randomness."""

    def __init__(self, transform):
        self.transform = transform
        self.image = np.zeros((4, 4, 3), dtype=np.uint8)
        self.image[:, 0] = 255  # bright left column: flipped iff it ends up on the right

    def __len__(self):
        return 64

    def __getitem__(self, i):
        out = self.transform(image=self.image, mask=np.zeros((4, 4), dtype=np.int64))
        return {"image": out["image"].float(), "mask": out["mask"].long(), "path": str(i)}


def flips(seed: int, workers: int) -> list[bool]:
    pl.seed_everything(seed, workers=True, verbose=False)
    transform = A.Compose([A.HorizontalFlip(p=0.5), ToTensorV2()], seed=seed)
    dataset = SameImage(transform)
    module = SegmentationDataModule(dataset, dataset, batch_size=1, num_workers=workers,
                                    persistent_workers=False)
    loader = module.train_dataloader()
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=False,
                                         num_workers=workers,
                                         worker_init_fn=loader.worker_init_fn)
    return [bool(batch["image"][0, 0, 0, -1] > 0) for batch in loader]


def test_workers_do_not_repeat_each_other_and_runs_are_reproducible():
    first = flips(seed=1, workers=2)
    # Worker 0 yields samples 0, 2, 4...; worker 1 yields 1, 3, 5... With one shared
    # augmentation state both halves would be identical.
    assert first[0::2] != first[1::2]
    assert 10 < sum(first) < 54
    assert flips(seed=1, workers=2) == first
    assert flips(seed=2, workers=2) != first


def validate(devices: int, tmp_path, repeat_first: bool = False) -> dict[str, float]:
    cfg = compose_train([*TINY, "dataset.val_set.num_samples=7"], tmp_path)
    pl.seed_everything(0, verbose=False)
    module = SegmentationModule(
        model=instantiate(cfg.model), loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer), num_classes=cfg.dataset.num_classes,
        class_names=list(cfg.dataset.class_names))
    # 7 images, 2 per batch: Lightning's DistributedSampler would pad rank 1 with a repeat.
    val_set = instantiate(cfg.dataset.val_set)
    if repeat_first:  # what DistributedSampler's padding would evaluate
        val_set = torch.utils.data.ConcatDataset([val_set, torch.utils.data.Subset(val_set, [0])])
    data = SegmentationDataModule(instantiate(cfg.dataset.train_set), val_set, batch_size=2,
                                  num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=devices,
                         strategy="ddp_spawn" if devices > 1 else "auto", logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.validate(module, datamodule=data, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k != "val/loss"}


@pytest.mark.slow
def test_two_process_validation_metrics_equal_one_process(tmp_path):
    one = validate(1, tmp_path / "one")
    two = validate(2, tmp_path / "two")
    assert "val/mIoU" in one and "val/IoU/line" in one
    assert two == one  # exactly: every sample counted once, confusion matrices summed
    # The test can see double counting: the padded set gives other numbers.
    padded = validate(1, tmp_path / "padded", repeat_first=True)
    assert padded["val/mIoU"] != one["val/mIoU"]


def test_unrepeated_validation_sampler_covers_each_sample_once():
    data = SegmentationDataModule(list(range(7)), list(range(7)), batch_size=2, num_workers=0)
    seen = []
    for rank in range(2):
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank,
                                       accelerator=object())
        seen += [int(i) for batch in data.val_dataloader() for i in batch]
    assert sorted(seen) == list(range(7))
