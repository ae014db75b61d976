"""SegmentationModule: logits at the label size, channels_last, the poly schedule of the
current run on resume (also from a former PolyLR checkpoint), the best mIoU in the state dict."""

import functools
import math
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from segohem.data.datamodule import SegmentationDataModule
from segohem.losses import OhemCELoss
from segohem.train.module import SegmentationModule
from segohem.train.optim import poly_lr
from tests._support.schedules import former_poly_state, lr_sequence, old_poly_lr, sgd


class HalfResolution(nn.Module):
    """A model with output stride 2: (B, 3, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


def make_module(optimizer=torch.optim.SGD, **kwargs) -> SegmentationModule:
    return SegmentationModule(HalfResolution(), OhemCELoss(), optimizer, num_classes=3,
                              **kwargs)


def test_logits_are_upsampled_to_the_label_size():
    module = make_module()
    images = torch.randn(2, 3, 16, 20)
    assert module(images).shape[-2:] == (8, 10)
    assert module.logits_for(images, (16, 20)).shape == (2, 3, 16, 20)


def test_channels_last_gives_the_same_logits():
    plain, cl = make_module(), make_module(channels_last=True)
    cl.model.load_state_dict(plain.model.state_dict())
    cl.configure_model()
    images = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(cl(images), plain(images))


def test_class_names_must_match_num_classes():
    with pytest.raises(ValueError, match="2 class names given for num_classes=3"):
        make_module(class_names=["a", "b"])


def resumed_checkpoint(checkpoint: dict, total: int) -> dict:
    """``checkpoint`` after ``on_load_checkpoint`` of a fit whose run has ``total`` steps."""
    module = make_module(scheduler=functools.partial(poly_lr, warmup_steps=10))
    module._trainer = SimpleNamespace(estimated_stepping_batches=total,
                                      state=SimpleNamespace(fn="fit"))
    module.on_load_checkpoint(checkpoint)
    return checkpoint


def test_resume_continues_the_schedule_of_the_current_run():
    optimizer = sgd()
    schedule = poly_lr(optimizer, total_steps=40, warmup_steps=10)
    lr_sequence(optimizer, schedule, 30)
    checkpoint = resumed_checkpoint({"lr_schedulers": [schedule.state_dict()],
                                     "optimizer_states": [optimizer.state_dict()]}, total=100)
    state, groups = checkpoint["lr_schedulers"][0], checkpoint["optimizer_states"][0]
    assert state["last_epoch"] == 30 and state["_schedulers"][-1]["total_iters"] == 90
    assert groups["param_groups"][0]["lr"] == pytest.approx(old_poly_lr(30, 100, warmup=10))


def test_resume_reads_a_former_polylr_checkpoint():
    optimizer_state, lambda_state = former_poly_state(30, 100, warmup=10)
    checkpoint = resumed_checkpoint({"lr_schedulers": [lambda_state],
                                     "optimizer_states": [optimizer_state]}, total=100)
    state = checkpoint["lr_schedulers"][0]
    assert "_schedulers" in state and state["last_epoch"] == 30
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(
        old_poly_lr(30, 100, warmup=10))


class RateRecorder(pl.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_fit_resumed_with_more_epochs_follows_the_longer_schedule(tmp_path):
    """A real fit of 1 epoch (4 steps), resumed to 3 epochs: the rates of steps 4..11 are
    those of a 12-step schedule, as with the former PolyLR."""
    data = [{"image": torch.randn(3, 16, 16), "mask": torch.randint(0, 3, (16, 16))}
            for _ in range(8)]

    def fit(epochs: int, ckpt_path=None) -> list[float]:
        module = make_module(optimizer=functools.partial(torch.optim.SGD, lr=0.1),
                             scheduler=functools.partial(poly_lr, warmup_steps=2))
        recorder = RateRecorder()
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                             callbacks=[recorder], default_root_dir=tmp_path,
                             enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, enable_checkpointing=False)
        trainer.fit(module, SegmentationDataModule(data, data, batch_size=2, num_workers=0),
                    ckpt_path=ckpt_path)
        trainer.save_checkpoint(tmp_path / f"{epochs}.ckpt")
        return recorder.rates

    first = fit(1)
    resumed = fit(3, ckpt_path=tmp_path / "1.ckpt")
    assert first == pytest.approx([old_poly_lr(t, 4, warmup=2, base_lr=0.1) for t in range(4)])
    assert resumed == pytest.approx([old_poly_lr(t, 12, warmup=2, base_lr=0.1)
                                     for t in range(4, 12)])


def validate_epochs(module: SegmentationModule, mious: list[float]) -> list[dict]:
    """Run ``on_validation_epoch_end`` once per mIoU (metrics and logging stubbed); returns
    what each epoch logged."""
    logged: list[dict] = []
    for epoch, miou in enumerate(mious):
        module._trainer = SimpleNamespace(sanity_checking=False, current_epoch=epoch,
                                          global_step=10 * (epoch + 1))
        values = torch.tensor([miou, miou, miou])
        module.val_metrics.compute = lambda v=values, m=miou: {
            "mIoU": torch.tensor(m), "mAcc": torch.tensor(m), "aAcc": torch.tensor(m),
            "IoU": v, "Acc": v}
        module.log_dict = lambda d: logged.append({k: float(v) for k, v in d.items()})
        module.log = lambda *args, **kwargs: None
        module.on_validation_epoch_end()
    return logged


def test_best_miou_is_a_max_metric_kept_in_the_state_dict():
    module = make_module()
    logged = validate_epochs(module, [float("nan"), 0.3, 0.5, 0.4])
    best = [d["val/mIoU_best"] for d in logged]
    assert math.isnan(best[0]) and best[1:] == pytest.approx([0.3, 0.5, 0.5])
    assert (module.best_val["epoch"], module.best_val["mIoU"]) == (2, pytest.approx(0.5))
    assert module.last_val["epoch"] == 3
    state = module.state_dict()
    assert float(state["best_miou.max_value"]) == pytest.approx(0.5)
    restored = make_module()
    restored.load_state_dict(state)
    assert float(restored.best_miou.max_value) == pytest.approx(0.5)


@pytest.mark.parametrize(("old", "expected"), [(0.42, 0.42), (float("nan"), -math.inf)])
def test_a_checkpoint_with_the_former_best_miou_buffer_loads(old, expected):
    state = make_module().state_dict()
    del state["best_miou.max_value"]
    state["best_miou"] = torch.tensor(old)  # the buffer of checkpoints before MaxMetric
    module = make_module()
    module.load_state_dict(state)  # strict
    assert float(module.best_miou.max_value) == pytest.approx(expected)
    logged = validate_epochs(module, [0.4])
    assert logged[0]["val/mIoU_best"] == pytest.approx(max(0.4, expected))
