"""segohem-train (segohem.train.run.train, ``python -m segohem.cli.train``): short real runs that
learn, the run directory (checkpoints, metrics.json, TensorBoard), resume and SIGKILL, a run on
a Cityscapes-layout tree through the CLI, loss=crl start-up (alpha from the class counts) and
its statistics, the mining summary and end-of-run line, log lines, compile=true.

Runs are shared where the tests only read them: ``resumed_run`` (two epochs, resumed for a
third) serves the resume and mining tests, ``cityscapes_run`` (tests/cli/conftest.py) also
serves segohem-eval and segohem-predict."""

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segohem.data import SyntheticDataset
from segohem.data.class_counts import class_pixel_counts
from segohem.data.datasets.cityscapes import CITYSCAPES_CLASSES
from segohem.losses import OhemCELoss
from segohem.train.callbacks.report import mining_report
from segohem.train.run import ConfigError, train
from segohem.viz import IGNORE_COLOUR, LEGEND_BACKGROUND
from tests._support import data_trees
from tests._support.configs import TINY, compose_train

# ---------------------------------------------------------------------- runs, resume


def majority_class_miou(cfg) -> float:
    """mIoU of predicting the most frequent class everywhere, on the val set."""
    dataset = instantiate(cfg.dataset.val_set, transform=None)
    masks = np.stack([dataset[i]["mask"] for i in range(len(dataset))])
    valid = masks != cfg.dataset.ignore_index
    counts = np.bincount(masks[valid], minlength=cfg.dataset.num_classes)
    majority = counts.argmax()
    iou_majority = counts[majority] / valid.sum()  # union = all valid pixels
    present = (counts > 0).sum()  # every present class has a non-zero union
    return float(iou_majority / present)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = compose_train([*TINY, "trainer.max_epochs=4", "dataset.train_set.num_samples=128",
                         "dataset.val_set.num_samples=32", "image_log_every_n_epochs=2"], out)
    best = train(cfg)
    return cfg, out, best


@pytest.mark.slow
def test_short_run_learns(trained_run):
    cfg, _, best = trained_run
    baseline = majority_class_miou(cfg)
    assert best > baseline + 0.1, (best, baseline)


@pytest.mark.slow
def test_run_directory_contents(trained_run):
    cfg, out, best = trained_run
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert not list((out / "checkpoints").glob("*.tmp"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best"]["mIoU"] == pytest.approx(best)
    assert set(metrics["last"]["IoU"]) == set(cfg.dataset.class_names)
    assert metrics["last"]["epoch"] == 3
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["segohem"]["config"] == OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.slow
def test_tensorboard_has_scalars_images_and_hparams(trained_run):
    _, out, _ = trained_run
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {"train/loss", "train/loss_epoch", "lr", "train/ohem/kept_fraction",
                "train/ohem/fallback", "train/ohem/threshold", "train/ohem/kept_fraction_epoch",
                "train/ohem/fallback_epoch", "train/ohem/threshold_epoch", "val/mIoU", "val/mAcc",
                "val/aAcc", "val/mIoU_best", "val/IoU/background", "val/IoU/line",
                "val/IoU_best/background", "val/IoU_best/line"}
    assert expected <= scalars, expected - scalars
    assert [e.value for e in events.Scalars("val/mIoU")] != []
    assert "val/samples" in events.Tags()["images"]
    grid = np.asarray(Image.open(io.BytesIO(events.Images("val/samples")[-1].encoded_image_string)
                                 ).convert("RGB"))
    first = int(((grid == LEGEND_BACKGROUND).all(2).mean(1) > 0.3).argmax())  # the legend
    assert first > 64  # below the tiles
    key = grid[first:].reshape(-1, 3)
    for colour in [*SyntheticDataset.palette, IGNORE_COLOUR]:  # a swatch per class + ignore
        assert (key == colour).all(1).sum() >= 16, colour
    hparams = events.PluginTagToContent("hparams")
    assert hparams, "no hparams summary"
    blob = b"".join(hparams.values())
    assert b"val/IoU_best/line" in blob and b"loss.thresh" in blob


@dataclass
class ResumedRun:
    cfg: DictConfig  # the resumed run's config
    out: Path  # the run directory
    first: dict  # metrics.json after the first two epochs
    messages: list[str]  # what segohem's loggers logged in the resumed run
    after_two_epochs: Path  # a copy of last.ckpt after the first two epochs (another folder)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> ResumedRun:
    """Two epochs of the tiny synthetic run, then resumed in its own directory for a third
    (``ckpt_path=last``), with the resumed run's log messages. Shared by the resume tests and
    the mining diagnostics."""
    out = tmp_path_factory.mktemp("resumed_run")
    train(compose_train([*TINY, "trainer.max_epochs=2"], out))
    first = json.loads((out / "metrics.json").read_text())
    after_two_epochs = tmp_path_factory.mktemp("after_two_epochs") / "last.ckpt"
    shutil.copyfile(out / "checkpoints" / "last.ckpt", after_two_epochs)
    resumed = compose_train([*TINY, "trainer.max_epochs=3", "ckpt_path=last"], out)
    logger = logging.getLogger("segohem")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        train(resumed)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return ResumedRun(resumed, out, first, [r.getMessage() for r in records], after_two_epochs)


@pytest.mark.slow
def test_resume_continues_epoch_and_step(resumed_run):
    two_epochs = resumed_run.first["last"]
    last = json.loads((resumed_run.out / "metrics.json").read_text())["last"]
    assert (two_epochs["epoch"], last["epoch"]) == (1, 2)
    assert 2 * last["step"] == 3 * two_epochs["step"]  # one more epoch of the same steps


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "segohem.cli.train", f"hydra.run.dir={run_dir}",
            "dataset.image_size=[64,64]", "dataset.train_set.num_samples=256",
            "dataset.val_set.num_samples=8", "dataset.num_workers=0", "trainer.max_epochs=3",
            "min_train_steps=null",
            "trainer.enable_progress_bar=false", "logger=none"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    try:
        while not last.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert last.exists(), "no checkpoint before the deadline"
        time.sleep(2.0)  # well into epoch 1 (an epoch takes several seconds)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    checkpoint = torch.load(last, weights_only=False)  # complete and loadable
    saved_epoch, saved_step = checkpoint["epoch"], checkpoint["global_step"]
    assert saved_step > 0
    done = subprocess.run([*args, "ckpt_path=last"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Restored all states from the checkpoint" in done.stdout + done.stderr
    final = json.loads((run_dir / "metrics.json").read_text())["last"]
    assert final["epoch"] == 2 and saved_epoch < 2
    assert final["step"] == 3 * 32  # 256 samples / batch 8 = 32 steps per epoch, no repeats
    assert not list(last.parent.glob(".*.tmp"))  # the killed save's temp file was cleaned


@pytest.mark.slow
def test_resume_from_a_file_into_a_new_directory_keeps_the_best_score(resumed_run, tiny_config,
                                                                      tmp_path):
    first_best = resumed_run.first["best"]["mIoU"]
    second_dir = tmp_path / "b"
    resumed = tiny_config("trainer.max_epochs=3", f"ckpt_path={resumed_run.after_two_epochs}",
                          output_dir=second_dir)
    best = train(resumed)
    assert best >= first_best
    state = torch.load(second_dir / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint_state = next(v for k, v in state["callbacks"].items() if "ModelCheckpoint" in k)
    assert float(checkpoint_state["best_model_score"]) == pytest.approx(best)
    assert not list((second_dir / "checkpoints").glob("*-v1.ckpt"))


@pytest.mark.slow
def test_a_run_without_validation_finishes_and_returns_none(tiny_config, tmp_path):
    cfg = tiny_config("trainer.limit_val_batches=0")
    assert train(cfg) is None
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


# ---------------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_segohem_train_on_a_cityscapes_tree(cityscapes_run):
    """The run of the session fixture (tests/cli/conftest.py): two epochs through the CLI."""
    _, run_dir, done = cityscapes_run
    assert done.returncode == 0, done.stderr[-3000:]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["last"]["epoch"] == 1
    assert set(metrics["last"]["IoU"]) == set(CITYSCAPES_CLASSES)
    present = {"road", "building", "sky", "vegetation", "car"}  # in every tree mask
    assert all(metrics["last"]["IoU"][name] is not None for name in present)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    assert "val/mIoU" in tags and "val/IoU/traffic sign" in tags


@pytest.mark.slow
def test_log_lines_are_not_duplicated(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "segohem.cli.train", f"hydra.run.dir={tmp_path}", "debug=limit",
         "dataset.image_size=[64,64]", "trainer.enable_progress_bar=false", "logger=none"],
        capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    output = run.stdout + run.stderr
    assert output.count("`Trainer.fit` stopped") == 1, output[-3000:]
    assert output.count("Best validation epoch") == 1
    assert (tmp_path / "train.log").read_text().count("`Trainer.fit` stopped") == 1


@pytest.mark.slow
def test_compile_option_trains_and_keeps_plain_checkpoint_keys(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "segohem.cli.train", f"hydra.run.dir={tmp_path}", "debug=limit",
         "compile=true", "trainer.max_epochs=1", "min_train_steps=null",
         "dataset.image_size=[64,64]",
         "trainer.enable_progress_bar=false", "logger=none"],
        capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert state and not [key for key in state if "_orig_mod" in key]


# ---------------------------------------------------------------------- loss=crl / ohem_crl


def test_alpha_from_eta_is_set_from_the_training_set_at_start_up(tiny_config, caplog):
    cfg = tiny_config("loss=crl", "loss.alpha=null", "trainer.limit_train_batches=2",
                      "trainer.limit_val_batches=1", "logger=none", "callbacks=none")
    counts = class_pixel_counts(instantiate(cfg.dataset.train_set, transform=None), 6)
    shares = counts / counts.sum()
    expected = np.clip(shares - 1 / 6, 0, None).sum()  # eta 0.01 x the paper's percentage
    assert 0.2 < expected < 1
    with caplog.at_level("INFO", logger="segohem"):
        train(cfg)
    line = next(r.getMessage() for r in caplog.records if "loss alpha" in r.getMessage())
    assert f"loss alpha = {expected:.4g}" in line
    assert "background" in line and "%" in line


def test_all_ignore_training_masks_fail_before_training(tmp_path):
    root = data_trees.make_folder(tmp_path / "data", stems=("a", "b", "c"),
                                  splits={"train": ["a", "b"], "val": ["c"]},
                                  raw_values=[255], size=(32, 32))
    cfg = compose_train(["dataset=folder", f"dataset.root={root}", "dataset.num_classes=2",
                         "dataset.class_names=[bg,fg]", "dataset.num_workers=0",
                         "loss=crl", "loss.alpha=null", "trainer.max_epochs=1",
                         "min_train_steps=null"],
                        tmp_path / "run")
    with pytest.raises(ConfigError, match=r"loss.alpha=null: .*no class \(\['bg', 'fg'\]\)"):
        train(cfg)


@pytest.mark.slow
def test_tiny_fit_logs_rectification_statistics(tiny_config, tmp_path):
    cfg = tiny_config("loss=ohem_crl", "loss.k=8")
    best = train(cfg)
    assert best is not None and np.isfinite(best)
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    for name in ("minority_classes", "rectification", "active_triplets", "alpha"):
        assert f"train/crl/{name}_epoch" in tags, tags
    assert "train/ohem/kept_fraction_epoch" in tags  # the OHEM base's statistics pass through
    minority = events.Scalars("train/crl/minority_classes_epoch")[-1].value
    assert minority >= 1  # the synthetic set's line and dot classes are rare in every batch


# ---------------------------------------------------------------------- mining diagnostics


@pytest.mark.slow
def test_metrics_json_has_the_mining_summary(resumed_run):
    cfg, out, first = resumed_run.cfg, resumed_run.out, resumed_run.first
    names = list(cfg.dataset.class_names)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"last", "best", "mining"} <= set(metrics)
    mining = metrics["mining"]
    steps_per_epoch = first["mining"]["last_epoch"]["steps"]
    assert first["mining"]["run"]["steps"] == 2 * steps_per_epoch
    assert mining["epoch"] == 2 and mining["last_epoch"]["steps"] == steps_per_epoch
    assert mining["run"]["steps"] == 3 * steps_per_epoch  # the resumed run continued the totals
    for section in (mining["last_epoch"], mining["run"]):
        assert 0.0 <= section["fallback_rate"] <= 1.0
        assert 0.0 < section["kept_fraction"] <= 1.0
        assert list(section["kept_of_class"]) == names
        assert list(section["share_of_kept"]) == names
        assert sum(section["share_of_kept"].values()) == pytest.approx(1.0)
        for value in section["kept_of_class"].values():
            assert value is None or 0.0 <= value <= 1.0
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["segohem"]["mining"]["summary"] == mining


@pytest.mark.slow
def test_tensorboard_has_the_per_class_mining_scalars(resumed_run):
    cfg, out = resumed_run.cfg, resumed_run.out
    mining = json.loads((out / "metrics.json").read_text())["mining"]["last_epoch"]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for name in cfg.dataset.class_names:
        assert f"train/mining/share_of_kept/{name}" in scalars
        if mining["kept_of_class"][name] is not None:
            assert f"train/mining/kept_of_class/{name}" in scalars
    assert {"train/ohem/fallback_epoch", "train/ohem/kept_fraction"} <= scalars
    name = cfg.dataset.class_names[0]
    last = events.Scalars(f"train/mining/kept_of_class/{name}")[-1].value
    assert last == pytest.approx(mining["kept_of_class"][name], rel=1e-6)


@pytest.mark.slow
def test_end_of_run_report_names_the_fallback_rate(resumed_run):
    out, messages = resumed_run.out, resumed_run.messages
    rate = json.loads((out / "metrics.json").read_text())["mining"]["run"]["fallback_rate"]
    lines = [m for m in messages if m.startswith("Mining: n_min fallback used in")]
    assert lines == [mining_report({"run": {"fallback_rate": rate}}, OhemCELoss())]
