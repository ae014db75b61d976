"""segohem-eval: checkpoint -> metrics.json, whole / sliding window / TTA, exact under DDP,
clear errors for corrupt or mismatched checkpoints. The trained runs are the session fixtures
of tests/cli/conftest.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from segohem.data import FolderDataset
from segohem.data.split import read_held_out
from segohem.infer.evaluate import evaluate
from segohem.train.checkpoint import CheckpointError
from tests._support.configs import compose_config
from tests.data.test_split import CLASSES, fit_folder, tree_content, write_folder


def run_eval(overrides: list[str], output_dir: Path) -> dict:
    cfg = compose_config("eval", ["num_workers=0", "trainer.enable_progress_bar=false",
                                  *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    evaluate(cfg)
    return json.loads((output_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_eval_reproduces_the_training_validation(tiny_run, tiny_checkpoint, tmp_path):
    metrics = run_eval([f"ckpt_path={tiny_checkpoint}"], tmp_path / "whole")
    trained = json.loads((tiny_run / "metrics.json").read_text())["last"]
    assert metrics["mIoU"] == trained["mIoU"] and metrics["IoU"] == trained["IoU"]
    assert metrics["samples"] == 9 and metrics["split"] == "val"
    assert metrics["checkpoint"] == str(tiny_checkpoint.resolve())


@pytest.mark.slow
def test_sliding_window_covering_the_image_equals_whole(tiny_checkpoint, tmp_path):
    whole = run_eval([f"ckpt_path={tiny_checkpoint}"], tmp_path / "whole")
    slide = run_eval([f"ckpt_path={tiny_checkpoint}", "eval.mode=slide",
                      "eval.crop_size=[64,64]", "eval.stride=[64,64]"], tmp_path / "slide")
    assert slide["IoU"] == whole["IoU"]
    overlap = run_eval([f"ckpt_path={tiny_checkpoint}", "eval.mode=slide",
                        "eval.crop_size=[32,32]", "eval.stride=[16,16]"], tmp_path / "overlap")
    assert 0.0 <= overlap["mIoU"] <= 1.0


@pytest.mark.slow
def test_multiscale_flip_tta(tiny_checkpoint, tmp_path):
    tta = run_eval([f"ckpt_path={tiny_checkpoint}", "eval.scales=[0.75,1.0,1.25]",
                    "eval.flip=true"], tmp_path / "tta")
    assert 0.0 <= tta["mIoU"] <= 1.0 and tta["eval"]["flip"] is True


@pytest.mark.slow
def test_eval_on_a_cityscapes_tree(cityscapes_run, tmp_path):
    root, run, _ = cityscapes_run
    ckpt = run / "checkpoints" / "last.ckpt"
    explicit = run_eval([f"ckpt_path={ckpt}", "dataset=cityscapes", f"dataset.root={root}"],
                        tmp_path / "explicit")
    from_checkpoint = run_eval([f"ckpt_path={ckpt}", f"data_root={root}"], tmp_path / "ckpt")
    trained = json.loads((run / "metrics.json").read_text())["last"]
    assert explicit["IoU"] == from_checkpoint["IoU"] == trained["IoU"]
    assert set(explicit["IoU"]) >= {"road", "traffic sign", "bicycle"}


@pytest.mark.slow
def test_two_process_eval_gives_the_same_numbers(tiny_checkpoint, tmp_path):
    single = run_eval([f"ckpt_path={tiny_checkpoint}"], tmp_path / "single")
    done = subprocess.run(
        [sys.executable, "-m", "segohem.cli.eval", f"ckpt_path={tiny_checkpoint}",
         "trainer=ddp_cpu",
         "num_workers=0", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={tmp_path / 'ddp'}"], capture_output=True, text=True, timeout=600,
        cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["samples"] == 9  # odd: Lightning's sampler would have repeated one
    assert ddp["IoU"] == single["IoU"] and ddp["mIoU"] == single["mIoU"]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00not a checkpoint" * 50)
    with pytest.raises(CheckpointError, match=r"bad\.ckpt: not a readable PyTorch checkpoint"):
        run_eval([f"ckpt_path={bad}"], tmp_path / "out")
    with pytest.raises(CheckpointError, match="does not exist"):
        run_eval([f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path / "out")


@pytest.mark.slow
def test_checkpoint_of_other_classes_is_a_clear_error(tiny_checkpoint, cityscapes_run, tmp_path):
    root, _, _ = cityscapes_run
    with pytest.raises(CheckpointError, match=r"trained for 6 classes .* the data has 19"):
        run_eval([f"ckpt_path={tiny_checkpoint}", "dataset=cityscapes", f"dataset.root={root}"],
                 tmp_path / "out")


@pytest.mark.slow
def test_eval_on_a_held_out_folder_uses_the_checkpoints_val_list(tmp_path):
    root = write_folder(tmp_path / "data", tree_content())
    fit_folder(root, tmp_path / "run")
    # Images added since would change a split drawn anew; the checkpoint's lists do not change.
    write_folder(tmp_path / "data", {"zz_new_1": {2}, "zz_new_2": {3}, "zz_new_3": {1}})
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    drawn_now = FolderDataset(root, "val", classes=CLASSES).held_out.val
    assert drawn_now != read_held_out(ckpt).val
    val = run_eval([f"ckpt_path={ckpt}"], tmp_path / "val")
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())["last"]
    assert val["samples"] == 3 and val["IoU"] == trained["IoU"]
    assert run_eval([f"ckpt_path={ckpt}", "split=train"], tmp_path / "train")["samples"] == 17
