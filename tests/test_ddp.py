"""DDP correctness on CPU (gloo): exact validation metrics with 2 processes, the fp16 skipped-
step counter, and models without unused parameters (DDP refuses those)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from app_helpers import TINY, compose_train
from hydra.utils import instantiate

from segohem.callbacks import SkippedStepCounter
from segohem.data.datamodule import SegmentationDataModule
from segohem.models import build_model
from segohem.module import SegmentationModule


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


def test_skipped_step_counter_counts_fp16_overflows():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler))
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1)
    counter = SkippedStepCounter()
    for bad in (False, True, False, True, True):
        opt.zero_grad()
        scaler.scale((param * (float("inf") if bad else 1.0)).sum()).backward()
        counter.on_before_optimizer_step(trainer, None, opt)
        scaler.step(opt)
        scaler.update()
        counter.on_train_batch_end(trainer, None, None, None, 0)
    assert int(counter.skipped) == 3
    assert counter.state_dict() == {"skipped": 3}


def test_skipped_step_counter_is_idle_without_a_scaler():
    counter = SkippedStepCounter()
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace())
    counter.on_before_optimizer_step(trainer, None, None)
    counter.on_train_batch_end(trainer, None, None, None, 0)
    assert counter.skipped is None


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
