"""SegmentationModule details, the poly schedule (torch schedulers vs the former formula),
atomic checkpoints, logging, the wheel."""

import functools
import itertools
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from segohem.callbacks import AtomicCheckpointIO
from segohem.callbacks.hparams import flatten
from segohem.data.datamodule import SegmentationDataModule
from segohem.losses import OhemCELoss
from segohem.module import SegmentationModule
from segohem.optim import poly_lr, state_at_step

REPO = Path(__file__).resolve().parents[1]


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


def old_poly_lr(step: int, total: int, power: float = 0.9, warmup: int = 0,
                start: float = 0.1, min_lr: float = 0.0, base_lr: float = 1.0) -> float:
    """The rate of the former hand-written ``PolyLR`` (a LambdaLR) at ``step``: the reference
    that ``poly_lr`` (torch schedulers) must reproduce."""
    warmup = min(warmup, total // 2)
    decay = max(total - warmup, 1)
    if step < warmup:
        value = start + (1.0 - start) * step / warmup
    else:
        value = max(1.0 - (step - warmup) / decay, 0.0) ** power
    return base_lr * max(value, min_lr / base_lr if base_lr > 0 else 0.0)


def lr_sequence(optimizer, schedule, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def sgd(lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


POLY_CASES = {  # name: (total_steps, power, warmup_steps, warmup_start_factor, min_lr, lr)
    "default": (300, 0.9, 50, 0.1, 0.0, 0.01),
    "linear, floored at the end": (110, 1.0, 10, 0.1, 0.05, 1.0),
    "no warm-up": (40, 0.9, 0, 0.1, 0.0, 0.5),
    "warm-up from 0": (60, 2.0, 7, 0.0, 0.0, 1.0),
    "one-step warm-up from 0": (10, 0.9, 1, 0.0, 0.0, 1.0),
    "floor above the warm-up start": (80, 0.9, 20, 0.1, 0.3, 1.0),
    "floor equal to the rate": (12, 0.9, 3, 0.5, 0.2, 0.2),
    "start factor 1": (30, 1.5, 5, 1.0, 0.01, 0.1),
    "one step": (1, 0.9, 0, 0.1, 0.0, 1.0),
}


@pytest.mark.parametrize("case", POLY_CASES.values(), ids=list(POLY_CASES))
def test_poly_schedule_matches_the_former_formula(case):
    total, power, warmup, start, min_lr, lr = case
    optimizer = sgd(lr)
    schedule = poly_lr(optimizer, total_steps=total, power=power, warmup_steps=warmup,
                       warmup_start_factor=start, min_lr=min_lr)
    rates = lr_sequence(optimizer, schedule, total + 5)  # and past the end
    expected = [old_poly_lr(t, total, power, warmup, start, min_lr, lr) for t in range(total + 5)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_poly_schedule_warmup_and_decay():
    optimizer = sgd()
    schedule = poly_lr(optimizer, total_steps=110, power=1.0, warmup_steps=10,
                       warmup_start_factor=0.1, min_lr=0.05)
    rates = lr_sequence(optimizer, schedule, 110)
    assert rates[0] == pytest.approx(0.1)
    assert rates[5] == pytest.approx(0.1 + 0.9 * 0.5)
    assert rates[10] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.5)
    assert rates[109] == pytest.approx(0.05)  # floored at min_lr
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))


def test_poly_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="total_steps must be >= 1"):
        poly_lr(sgd(), total_steps=0)
    with pytest.raises(ValueError, match=r"min_lr=2\.0 is above the optimizer's lr=1\.0"):
        poly_lr(sgd(), total_steps=10, min_lr=2.0)
    groups = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 1.0},
                              {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1}])
    with pytest.raises(ValueError, match="one learning rate for all parameter groups"):
        poly_lr(groups, total_steps=10, min_lr=0.01)
    poly_lr(groups, total_steps=10)  # without a floor, groups may differ


def test_poly_schedule_state_survives_a_checkpoint(tmp_path):
    kwargs = {"total_steps": 60, "power": 0.9, "warmup_steps": 10, "warmup_start_factor": 0.0,
              "min_lr": 0.02}
    optimizer = sgd()
    schedule = poly_lr(optimizer, **kwargs)
    first = lr_sequence(optimizer, schedule, 25)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict()},
               tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt", weights_only=True)

    resumed_optimizer = sgd()
    resumed = poly_lr(resumed_optimizer, **kwargs)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    rest = lr_sequence(resumed_optimizer, resumed, 40)
    expected = [old_poly_lr(t, 60, 0.9, 10, 0.0, 0.02) for t in range(65)]
    assert first + rest == pytest.approx(expected, rel=1e-9, abs=1e-15)


def former_poly_state(steps: int, total: int, **kwargs) -> tuple[dict, dict]:
    """Optimizer and LambdaLR states as the former PolyLR saved them after ``steps`` steps."""
    optimizer = sgd()
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: old_poly_lr(t, total, base_lr=1.0, **kwargs))
    lr_sequence(optimizer, schedule, steps)
    return optimizer.state_dict(), schedule.state_dict()


def test_state_at_step_reads_a_former_polylr_state():
    kwargs = {"power": 0.9, "warmup": 10, "start": 0.1}
    optimizer_state, lambda_state = former_poly_state(30, 100, **kwargs)
    assert "lr_lambdas" in lambda_state and lambda_state["last_epoch"] == 30

    def build(opt):
        return poly_lr(opt, total_steps=100, power=0.9, warmup_steps=10)

    state = state_at_step(build, lambda_state["base_lrs"], lambda_state["last_epoch"])
    optimizer = sgd()
    schedule = build(optimizer)
    optimizer.load_state_dict(optimizer_state)
    schedule.load_state_dict(state)
    rates = lr_sequence(optimizer, schedule, 70)
    expected = [old_poly_lr(t, 100, **kwargs) for t in range(30, 100)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)


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


def test_atomic_checkpoint_keeps_old_file_when_saving_fails(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, target)

    def broken_save(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"epoch": 2}, target)
    monkeypatch.undo()
    assert torch.load(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_hparams_are_flattened():
    flat = flatten({"loss": {"thresh": 0.7, "n_min": None}, "model": {"dims": [1, 2]}})
    assert flat == {"loss/thresh": 0.7, "loss/n_min": "None", "model/dims": "[1, 2]"}
    # One column per list, also for lists of dicts and empty lists (unlike Lightning's).
    flat = flatten({"t": {"transforms": [{"_target_": "A", "p": 0.5}], "ignore": []}})
    assert flat == {"t/transforms": "[{'_target_': 'A', 'p': 0.5}]", "t/ignore": "[]"}


@pytest.mark.slow
def test_log_lines_are_not_duplicated(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "segohem.train", f"hydra.run.dir={tmp_path}", "debug=limit",
         "dataset.image_size=[64,64]", "trainer.enable_progress_bar=false", "logger=none"],
        capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    output = run.stdout + run.stderr
    assert output.count("`Trainer.fit` stopped") == 1, output[-3000:]
    assert output.count("Best validation epoch") == 1
    assert (tmp_path / "train.log").read_text().count("`Trainer.fit` stopped") == 1


@pytest.mark.slow
def test_configs_work_from_an_installed_wheel(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(REPO), "-w", str(wheels)], check=True,
                   capture_output=True)
    wheel = next(wheels.glob("segohem-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    code = (
        "import segohem, pathlib, sys\n"
        f"assert pathlib.Path(segohem.__file__).is_relative_to({str(site)!r}), segohem.__file__\n"
        "from hydra import compose, initialize_config_module\n"
        "with initialize_config_module(version_base='1.3', config_module='segohem.conf'):\n"
        "    cfg = compose('train', overrides=['loss=topk', 'model=deeplabv3plus'])\n"
        "assert cfg.loss.top_k == 0.2 and cfg.model.arch == 'DeepLabV3Plus'\n"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    out = subprocess.run([sys.executable, "-m", "segohem.train", "--cfg", "job"], check=True,
                         env=env, cwd=tmp_path, capture_output=True, text=True).stdout
    assert "OhemDiceLoss" in out


@pytest.mark.slow
def test_compile_option_trains_and_keeps_plain_checkpoint_keys(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "segohem.train", f"hydra.run.dir={tmp_path}", "debug=limit",
         "compile=true", "trainer.max_epochs=1", "min_train_steps=null",
         "dataset.image_size=[64,64]",
         "trainer.enable_progress_bar=false", "logger=none"],
        capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert state and not [key for key in state if "_orig_mod" in key]


def test_poly_schedule_shortens_a_warmup_longer_than_half_the_run():
    optimizer = sgd()
    with pytest.warns(UserWarning, match=r"warmup_steps=50 is more than half of this run's 20"):
        schedule = poly_lr(optimizer, total_steps=20, power=1.0, warmup_steps=50)
    rates = lr_sequence(optimizer, schedule, 20)
    assert rates[10] == pytest.approx(1.0)  # warm-up of 10 steps, then decay
    assert rates[19] == pytest.approx(0.1)
