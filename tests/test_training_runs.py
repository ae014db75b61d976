"""Short real training runs: learning, TensorBoard contents, metrics.json, resume, SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from app_helpers import TINY, compose_train
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segohem.training import train

pytestmark = pytest.mark.slow


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


def test_short_run_learns(trained_run):
    cfg, _, best = trained_run
    baseline = majority_class_miou(cfg)
    assert best > baseline + 0.1, (best, baseline)


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
    assert checkpoint["segohem"]["config"]["loss"]["_target_"] == "segohem.losses.OhemDiceLoss"


def test_tensorboard_has_scalars_images_and_hparams(trained_run):
    _, out, _ = trained_run
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {"train/loss", "train/loss_epoch", "lr", "train/ohem/kept_fraction",
                "train/ohem/fallback", "train/ohem/threshold", "train/ohem/kept_fraction_epoch",
                "train/ohem/fallback_epoch", "train/ohem/threshold_epoch", "val/mIoU", "val/mAcc",
                "val/aAcc", "val/mIoU_best", "val/IoU/background", "val/IoU/line"}
    assert expected <= scalars, expected - scalars
    assert [e.value for e in events.Scalars("val/mIoU")] != []
    assert "val/samples" in events.Tags()["images"]
    hparams = events.PluginTagToContent("hparams")
    assert hparams, "no hparams summary"
    blob = b"".join(hparams.values())
    assert b"val/mIoU_best" in blob and b"loss/thresh" in blob


def test_resume_continues_epoch_and_step(tmp_path):
    first = compose_train([*TINY, "trainer.max_epochs=1"], tmp_path)
    train(first)
    one_epoch = json.loads((tmp_path / "metrics.json").read_text())["last"]
    resumed = compose_train([*TINY, "trainer.max_epochs=2", "ckpt_path=last"], tmp_path)
    train(resumed)
    last = json.loads((tmp_path / "metrics.json").read_text())["last"]
    assert (one_epoch["epoch"], last["epoch"]) == (0, 1)
    assert last["step"] == 2 * one_epoch["step"]


def test_sigkill_mid_epoch_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "segohem.train", f"hydra.run.dir={run_dir}",
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


def test_resume_from_a_file_into_a_new_directory_keeps_the_best_score(tmp_path):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    train(compose_train([*TINY, "trainer.max_epochs=2"], first_dir))
    first_best = json.loads((first_dir / "metrics.json").read_text())["best"]["mIoU"]
    resumed = compose_train(
        [*TINY, "trainer.max_epochs=3", f"ckpt_path={first_dir / 'checkpoints' / 'last.ckpt'}"],
        second_dir)
    best = train(resumed)
    assert best >= first_best
    state = torch.load(second_dir / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint_state = next(v for k, v in state["callbacks"].items() if "ModelCheckpoint" in k)
    assert float(checkpoint_state["best_model_score"]) == pytest.approx(best)
    assert not list((second_dir / "checkpoints").glob("*-v1.ckpt"))


def test_a_run_without_validation_finishes_and_returns_none(tmp_path):
    cfg = compose_train([*TINY, "trainer.limit_val_batches=0"], tmp_path)
    assert train(cfg) is None
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
