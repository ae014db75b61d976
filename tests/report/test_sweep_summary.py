"""segohem.report.sweep_summary (scripts/summarize_sweep.py) on fake sweep dirs (no training): CSV /
Markdown / PNG contents, failed jobs kept as rows, the TensorBoard fallback, and the error for a
non-sweep folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from segohem.report.sweep_summary import main

CLASSES = ["background", "road", "pole", "sign"]
FAILED = {"task": "train", "status": "FAILED", "started": "2025-01-01T12:00:00+00:00",
          "ended": "2025-01-01T12:01:00+00:00", "overrides": [], "return_value": None,
          "error": {"type": "RuntimeError", "message": "CUDA out of memory",
                    "traceback": "Traceback (most recent call last): ..."}}


def _config(params: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "seed": 0,
        "dataset": {"name": "synthetic", "class_names": CLASSES, "image_size": [64, 64]},
        "loss": {"_target_": "segohem.losses.OhemCELoss", "thresh": 0.7, "n_min": None},
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.003},
    }
    for key, value in params.items():
        group, name = key.split(".")
        config[group][name] = value
    return config


def _entry(miou: float, epoch: int, iou: dict[str, float | None]) -> dict[str, Any]:
    return {"epoch": epoch, "step": 10 * (epoch + 1), "mIoU": miou, "mAcc": miou + 0.1,
            "aAcc": 0.9, "IoU": iou, "Acc": dict.fromkeys(iou, 0.5)}


def make_job(sweep: Path, num: int, overrides: list[str], params: dict[str, Any],
             best: dict[str, Any] | None = None, last: dict[str, Any] | None = None,
             log: str = "[INFO] - done\n", status: dict[str, Any] | None = None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(_config(params)))
    (job / "train.log").write_text(log)
    if status is not None:  # as segohem.report.job_status writes it
        (job / "status.json").write_text(json.dumps(status))
    if best is not None:
        (job / "metrics.json").write_text(json.dumps({"last": last or best, "best": best}))
    return job


def _iou(pole: float, sign: float | None) -> dict[str, float | None]:
    return {"background": 0.95, "road": 0.8, "pole": pole, "sign": sign}


@pytest.fixture
def grid_sweep(tmp_path: Path) -> Path:
    """loss.thresh=0.5,0.7 x loss.n_min=null,0.05, plus thresh=0.9 which crashed."""
    sweep = tmp_path / "multirun"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    grid = [(0.5, None, 0.40, _iou(0.20, 0.05)), (0.5, 0.05, 0.55, _iou(0.30, None)),
            (0.7, None, 0.62, _iou(0.35, 0.10)), (0.7, 0.05, 0.48, _iou(0.25, 0.08))]
    for num, (thresh, n_min, miou, iou) in enumerate(grid):
        overrides = [f"loss.thresh={thresh}", f"loss.n_min={'null' if n_min is None else n_min}",
                     "dataset.image_size=[64,64]"]
        make_job(sweep, num, overrides, {"loss.thresh": thresh, "loss.n_min": n_min},
                 best=_entry(miou, num + 1, iou), last=_entry(miou - 0.01, 9, iou))
    make_job(sweep, 4, ["loss.thresh=0.9", "loss.n_min=null", "dataset.image_size=[64,64]"],
             {"loss.thresh": 0.9, "loss.n_min": None}, status=FAILED)
    return sweep


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _md_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (header first, separators left out)."""
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in text.splitlines() if line.startswith("|") and "---" not in line]


def test_grid_sweep_summary(grid_sweep: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main([str(grid_sweep), "--out", str(out)]) == 0

    rows = _read_csv(out / "summary.csv")
    assert list(rows[0]) == ["job", "status", "loss.thresh", "loss.n_min", "mIoU", "mAcc",
                             "aAcc", "epoch", "IoU.sign", "IoU.pole", "source", "error"]
    assert [r["job"] for r in rows] == ["2", "1", "3", "0", "4"]  # by mIoU, failed last
    best = rows[0]
    assert (best["status"], best["loss.thresh"], best["loss.n_min"]) == ("ok", "0.7", "null")
    assert float(best["mIoU"]) == pytest.approx(62.0)
    assert float(best["mAcc"]) == pytest.approx(72.0)
    assert float(best["aAcc"]) == pytest.approx(90.0)
    assert best["epoch"] == "3"
    assert float(best["IoU.sign"]) == pytest.approx(10.0)
    assert float(best["IoU.pole"]) == pytest.approx(35.0)
    assert (best["source"], best["error"]) == ("metrics.json", "")
    assert rows[1]["loss.n_min"] == "0.05"
    assert rows[1]["IoU.sign"] == ""  # class absent from that job's validation set
    failed = rows[-1]
    assert (failed["status"], failed["loss.thresh"], failed["loss.n_min"]) == (
        "failed", "0.9", "null")
    assert failed["mIoU"] == failed["epoch"] == ""
    assert failed["error"] == "RuntimeError: CUDA out of memory"

    markdown = (out / "summary.md").read_text()
    header, *table = _md_rows(markdown)
    assert header == ["job", "status", "loss.thresh", "loss.n_min", "mIoU % (best)", "mAcc %",
                      "aAcc %", "epoch", "IoU % sign", "IoU % pole", "error"]
    assert table[0] == ["2", "ok", "0.7", "null", "62.0", "72.0", "90.0", "3", "10.0", "35.0", ""]
    assert table[-1][:5] == ["4", "failed", "0.9", "null", "-"]
    assert table[-1][-1] == "RuntimeError: CUDA out of memory"

    printed = capsys.readouterr().out
    assert markdown.strip() in printed
    for name in ("summary.csv", "summary.md", "miou_vs_thresh.png"):
        assert str(out / name) in printed
    assert "not swept" not in printed

    with Image.open(out / "miou_vs_thresh.png") as image:
        assert image.width > 300 and image.height > 200
        extrema = image.convert("L").getextrema()
        assert extrema[0] < extrema[1]  # something was drawn


def test_rare_and_last_options(grid_sweep: Path) -> None:
    assert main([str(grid_sweep), "--rare", "road", "--metric", "last"]) == 0
    rows = _read_csv(grid_sweep / "summary.csv")  # --out defaults to the sweep dir
    assert [c for c in rows[0] if c.startswith("IoU.")] == ["IoU.road"]
    assert float(rows[0]["mIoU"]) == pytest.approx(61.0)
    assert rows[0]["epoch"] == "9"
    assert "mIoU % (last)" in _md_rows((grid_sweep / "summary.md").read_text())[0]
    assert (grid_sweep / "miou_vs_thresh.png").is_file()


def test_unknown_rare_class(grid_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(grid_sweep), "--rare", "tree"]) == 2
    assert "tree" in capsys.readouterr().err


def test_thresh_not_swept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Columns: thresh and n_min from config.yaml, plus the swept optimizer.lr; the plot uses
    optimizer.lr and says so."""
    for num, lr in enumerate((0.001, 0.01)):
        make_job(tmp_path, num, [f"optimizer.lr={lr}", "seed=1"], {"optimizer.lr": lr},
                 best=_entry(0.3 + num / 10, 1, _iou(0.1, 0.1)))
    assert main([str(tmp_path)]) == 0
    rows = _read_csv(tmp_path / "summary.csv")
    assert [(r["job"], r["loss.thresh"], r["loss.n_min"], r["optimizer.lr"]) for r in rows] == [
        ("1", "0.7", "null", "0.01"), ("0", "0.7", "null", "0.001")]
    assert "seed" not in rows[0]  # same in every job
    assert "loss.thresh was not swept" in capsys.readouterr().out


def test_tensorboard_fallback(tmp_path: Path) -> None:
    """No metrics.json, but event files: values from val/mIoU_best and friends."""
    from torch.utils.tensorboard import SummaryWriter

    make_job(tmp_path, 0, ["loss.thresh=0.5"], {"loss.thresh": 0.5},
             best=_entry(0.5, 2, _iou(0.2, 0.1)))
    job = make_job(tmp_path, 1, ["loss.thresh=0.8"], {"loss.thresh": 0.8})
    writer = SummaryWriter(str(job / "tensorboard"))
    for epoch, (miou, pole) in enumerate([(0.3, 0.1), (0.6, 0.4), (0.5, 0.3)]):
        step = 10 * (epoch + 1)
        for tag, value in {"val/mIoU": miou, "val/mIoU_best": max(0.3, 0.6 * (epoch > 0)),
                           "val/mAcc": miou + 0.1, "val/aAcc": 0.9, "epoch": epoch,
                           "val/IoU/pole": pole, "val/IoU/sign": 0.05}.items():
            writer.add_scalar(tag, value, step)
    writer.close()

    assert main([str(tmp_path), "--rare", "pole"]) == 0
    rows = _read_csv(tmp_path / "summary.csv")
    assert rows[0]["job"] == "1"
    assert (rows[0]["status"], rows[0]["source"]) == ("incomplete", "tensorboard")
    assert float(rows[0]["mIoU"]) == pytest.approx(60.0)
    assert float(rows[0]["mAcc"]) == pytest.approx(70.0)
    assert float(rows[0]["IoU.pole"]) == pytest.approx(40.0)
    assert rows[0]["epoch"] == "1"
    assert "no metrics.json" in rows[0]["error"]


@pytest.mark.parametrize("layout", ["empty", "no_hydra", "single_run", "missing"])
def test_not_a_sweep_dir(tmp_path: Path, layout: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "not_a_sweep"
    if layout != "missing":
        folder.mkdir()
    if layout == "no_hydra":
        (folder / "0").mkdir()
        (folder / "0" / "notes.txt").write_text("x")
    if layout == "single_run":
        (folder / ".hydra").mkdir()
        (folder / "metrics.json").write_text("{}")
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err
    assert ("no such folder" if layout == "missing" else "not a sweep dir") in err
    if layout == "single_run":
        assert "single run" in err
    assert not (folder / "summary.csv").exists()


def test_script_runs_the_module(tmp_path: Path) -> None:
    """scripts/summarize_sweep.py is a thin command line over segohem.report.sweep_summary."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "summarize_sweep.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "absent")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "no such folder" in done.stderr
