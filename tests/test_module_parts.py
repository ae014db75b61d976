"""SegmentationModule details, the poly schedule, atomic checkpoints, logging, the wheel."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from segohem.callbacks import AtomicCheckpointIO
from segohem.callbacks.hparams import flatten
from segohem.losses import OhemCELoss
from segohem.module import SegmentationModule
from segohem.optim import PolyLR

REPO = Path(__file__).resolve().parents[1]


class HalfResolution(nn.Module):
    """A model with output stride 2: (B, 3, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


def make_module(**kwargs) -> SegmentationModule:
    return SegmentationModule(HalfResolution(), OhemCELoss(), torch.optim.SGD, num_classes=3,
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


def test_poly_schedule_warmup_and_decay():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = PolyLR(optimizer, total_steps=110, power=1.0, warmup_steps=10,
                      warmup_start_factor=0.1, min_lr=0.05)
    rates = []
    for _ in range(110):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1)
    assert rates[5] == pytest.approx(0.1 + 0.9 * 0.5)
    assert rates[10] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.5)
    assert rates[109] == pytest.approx(0.05)  # floored at min_lr
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    with pytest.raises(ValueError, match="total_steps must be >= 1"):
        PolyLR(optimizer, total_steps=0)


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
    assert "OhemCELoss" in out


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
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.warns(UserWarning, match=r"warmup_steps=50 is more than half of this run's 20"):
        schedule = PolyLR(optimizer, total_steps=20, power=1.0, warmup_steps=50)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[10] == pytest.approx(1.0)  # warm-up of 10 steps, then decay
    assert rates[19] == pytest.approx(0.1)
