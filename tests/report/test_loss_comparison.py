"""segohem.report.loss_comparison (scripts/compare_losses.py) on fabricated sweep dirs
(no training):
means, sample stds, the clear / within-noise verdicts, rare classes from training-mask shares,
failed jobs, and the multirun command it starts (a fake interpreter stands in for training)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from segohem.report import loss_comparison as cl

CLASSES = ["background", "line", "dot"]
# loss -> per seed (mIoU, IoU line, IoU dot); background IoU is 0.95 everywhere
RESULTS = {
    "ce": [(0.70, 0.40, 0.30), (0.72, 0.42, 0.34), (0.74, 0.44, 0.38)],
    "ohem": [(0.80, 0.55, 0.65), (0.81, 0.56, 0.66), (0.82, 0.57, 0.67)],
    "topk": [(0.71, 0.40, 0.32), (0.75, 0.44, 0.36), (0.73, 0.42, 0.40)],
}


def make_sweep(sweep: Path, dataset: dict[str, Any] | None = None,
               extra: tuple[str, ...] = ()) -> list[Path]:
    """Job folders 0..8 (loss-major, seed-minor) as segohem-train's multirun writes them."""
    jobs = []
    for loss, per_seed in RESULTS.items():
        for seed, (miou, line, dot) in enumerate(per_seed):
            job = sweep / str(len(jobs))
            (job / ".hydra").mkdir(parents=True)
            overrides = [f"loss={loss}", f"seed={seed}", "trainer.enable_progress_bar=false",
                         *extra]
            (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            config = {"seed": seed, "dataset": dataset or {"name": "synthetic"}}
            (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
            best = {"epoch": 3, "mIoU": miou, "IoU": {"background": 0.95, "line": line,
                                                      "dot": dot}}
            (job / "metrics.json").write_text(json.dumps({"last": best, "best": best}))
            (job / "train.log").write_text("[INFO] - done\n")
            jobs.append(job)
    return jobs


def test_summary_means_stds_and_verdicts(tmp_path: Path, capsys) -> None:
    make_sweep(tmp_path)
    assert cl.main(["--no-train", "--sweep-dir", str(tmp_path), "--rare", "line,dot"]) == 0
    data = json.loads((tmp_path / "loss_comparison.json").read_text())
    groups = {g["group"]: g for g in data["groups"]}
    assert list(groups) == ["ce", "ohem", "topk"] and data["rare"] == ["line", "dot"]
    ce, ohem, topk = groups["ce"], groups["ohem"], groups["topk"]
    assert ce["seeds"] == ["0", "1", "2"]
    # mIoU in %: ce 72 +- 2 (sample std), ohem 81 +- 1, topk 73 +- 2
    assert ce["mIoU"]["mean"] == pytest.approx(72.0)
    assert ce["mIoU"]["std"] == pytest.approx(2.0)
    assert (ce["mIoU"]["min"], ce["mIoU"]["max"]) == pytest.approx((70.0, 74.0))
    assert ohem["mIoU"]["std"] == pytest.approx(1.0)
    assert ohem["IoU"]["dot"]["mean"] == pytest.approx(66.0)
    assert ce["IoU"]["dot"]["std"] == pytest.approx(4.0)
    # rare mean IoU per run: ce 35, 38, 41; ohem 60, 61, 62; topk 36, 40, 41
    assert ce["rare_mIoU"]["mean"] == pytest.approx(38.0)
    assert ce["rare_mIoU"]["std"] == pytest.approx(3.0)
    assert topk["rare_mIoU"]["std"] == pytest.approx(np.std([36, 40, 41], ddof=1))
    assert ce["vs_baseline"] is None and ce["baseline"] == "ce"
    # ohem: +9 > 2 x max(2, 1); +23 > 2 x 3 -> clear. topk: +1 <= 2 x 2; +1 <= 2 x 3 -> noise
    vs = ohem["vs_baseline"]["mIoU"]
    assert vs["diff"] == pytest.approx(9.0) and vs["sigma"] == pytest.approx(2.0)
    assert vs["verdict"] == "clear"
    assert ohem["vs_baseline"]["rare_mIoU"]["diff"] == pytest.approx(23.0)
    assert ohem["vs_baseline"]["rare_mIoU"]["verdict"] == "clear"
    assert topk["vs_baseline"]["mIoU"]["verdict"] == "within noise"
    assert topk["vs_baseline"]["rare_mIoU"]["verdict"] == "within noise"
    table = (tmp_path / "loss_comparison.md").read_text()
    assert table.strip() in capsys.readouterr().out
    cells = [[c.strip() for c in line.strip().strip("|").split(" | ")]
             for line in table.splitlines() if line.startswith("|") and "---" not in line]
    assert cells[0][:6] == ["group", "seeds", "mIoU", "Δ mIoU vs ce", "rare mIoU",
                            "Δ rare vs ce"]
    rows = {row[0]: row for row in cells[1:]}
    assert rows["ce"][1:5] == ["3", "72.0 ± 2.0 [70.0, 74.0]", "baseline",
                               "38.0 ± 3.0 [35.0, 41.0]"]
    assert rows["ohem"][3] == "+9.0 clear" and rows["ohem"][5] == "+23.0 clear"
    assert rows["topk"][3] == rows["topk"][5] == "+1.0 within noise"


def test_grouping_by_other_varying_overrides(tmp_path: Path) -> None:
    make_sweep(tmp_path / "a", extra=("optimizer.lr=0.01",))
    make_sweep(tmp_path / "b", extra=("optimizer.lr=0.1",))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    jobs = sorted((tmp_path / "a").iterdir()) + sorted((tmp_path / "b").iterdir())
    for i, job in enumerate(jobs):
        job.rename(sweep / str(i))
    assert cl.main(["--no-train", "--sweep-dir", str(sweep), "--rare", "dot"]) == 0
    groups = json.loads((sweep / "loss_comparison.json").read_text())["groups"]
    assert [g["group"] for g in groups][:2] == ["loss=ce optimizer.lr=0.01",
                                                 "loss=ohem optimizer.lr=0.01"]
    assert len(groups) == 6 and all(len(g["seeds"]) == 3 for g in groups)
    by_name = {g["group"]: g for g in groups}
    assert by_name["loss=ohem optimizer.lr=0.1"]["baseline"] == "loss=ce optimizer.lr=0.1"


def test_rare_classes_from_training_mask_shares(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    mask = np.zeros((20, 20), np.uint8)  # 400 px: 396 background, 3 line, 1 dot
    mask[0, :3], mask[5, 5] = 1, 2
    masks = {"a": mask, "void": np.full((20, 20), 255, np.uint8),
             "not_train": np.full((20, 20), 1, np.uint8)}
    for stem, m in masks.items():
        Image.fromarray(m).save(root / "masks" / f"{stem}.png")
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "images" / f"{stem}.png")
    (root / "splits" / "train.txt").write_text("a\nvoid\n")
    dataset = {"name": "folder", "ignore_index": 255,
               "train_set": {"_target_": "segohem.data.FolderDataset", "root": str(root),
                             "split": "train", "classes": CLASSES,
                             "transform": "${dataset.train_transform}"}}
    make_sweep(tmp_path / "sweep", dataset)
    assert cl.main(["--no-train", "--sweep-dir", str(tmp_path / "sweep"),
                    "--rare-below", "0.005"]) == 0
    data = json.loads((tmp_path / "sweep" / "loss_comparison.json").read_text())
    assert data["train_pixel_shares"] == pytest.approx(
        {"background": 396 / 400, "line": 3 / 400, "dot": 1 / 400})
    assert data["rare"] == ["dot"]  # line is 0.75 % > 0.5 %
    assert data["groups"][0]["rare_mIoU"]["mean"] == pytest.approx(34.0)


def test_a_training_set_that_cannot_be_built_asks_for_rare(tmp_path: Path, capsys) -> None:
    make_sweep(tmp_path)  # its config has no dataset.train_set
    assert cl.main(["--no-train", "--sweep-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and "--rare" in err


def test_missing_metrics_is_reported_and_fails(tmp_path: Path, capsys) -> None:
    jobs = make_sweep(tmp_path)
    (jobs[4] / "metrics.json").unlink()  # ohem, seed 1
    assert cl.main(["--no-train", "--sweep-dir", str(tmp_path), "--rare", "line,dot"]) == 1
    captured = capsys.readouterr()
    assert str(jobs[4] / "train.log") in captured.out and "FAILED: 1 job" in captured.err
    data = json.loads((tmp_path / "loss_comparison.json").read_text())
    assert data["failed"] == [{"job": str(jobs[4]), "log": str(jobs[4] / "train.log")}]
    ohem = data["groups"][1]
    assert ohem["seeds"] == ["0", "2"] and ohem["mIoU"]["mean"] == pytest.approx(81.0)
    assert ohem["mIoU"]["std"] == pytest.approx(np.std([80, 82], ddof=1))


def test_runs_one_multirun_of_the_cli(tmp_path: Path) -> None:
    """A fake interpreter records its arguments and writes a one-job sweep."""
    fake = tmp_path / "fake_python"
    fake.write_text(f"""#!{sys.executable}
import json, sys
from pathlib import Path
Path({str(tmp_path / "argv.json")!r}).write_text(json.dumps(sys.argv[1:]))
sweep = Path(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("hydra.sweep.dir=")))
(sweep / "0" / ".hydra").mkdir(parents=True)
(sweep / "0" / ".hydra" / "overrides.yaml").write_text("- loss=ce\\n- seed=0\\n")
best = {{"mIoU": 0.5, "IoU": {{"background": 0.9, "line": 0.1}}}}
(sweep / "0" / "metrics.json").write_text(json.dumps({{"best": best}}))
sys.exit(3)
""")
    os.chmod(fake, 0o755)
    sweep = tmp_path / "sweep"
    argv = ["--losses", "ce,ohem", "--seeds", "0,1", "--sweep-dir", str(sweep), "--rare", "line",
            "--python", str(fake), "--", "dataset=folder", "dataset.class_names=[a,b]"]
    assert cl.main(argv) == 1  # the sweep's exit status 3 is a failure
    assert json.loads((tmp_path / "argv.json").read_text()) == [
        "-m", "segohem.cli.train", "-m", "loss=ce,ohem", "seed=0,1",
        "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}", "dataset=folder",
        "dataset.class_names=[a,b]"]
    data = json.loads((sweep / "loss_comparison.json").read_text())
    assert data["sweep_returncode"] == 3 and data["groups"][0]["mIoU"]["std"] is None


def test_script_runs_the_module(tmp_path: Path) -> None:
    """scripts/compare_losses.py is a thin command line over segohem.report.loss_comparison."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_losses.py"
    make_sweep(tmp_path)
    done = subprocess.run([sys.executable, str(script), "--no-train", "--sweep-dir",
                           str(tmp_path), "--rare", "dot"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "loss_comparison.json").read_text())["rare"] == ["dot"]


def test_a_run_log_is_summarised_like_a_sweep(tmp_path: Path, capsys) -> None:
    """``--runs`` groups one set's logged runs by their variant overrides; a variant with no
    same-override CE run is compared with the plain ``loss=ce`` runs; the lowest class Δ names
    the class furthest below the baseline."""
    rows = []
    for seed in range(2):
        for tag, overrides, dot in (("default", [], 0.6), ("rcs", ["data.sampler=rare_class"],
                                                             0.5 + 0.1 * seed),
                                    ("ce", ["loss=ce"], 0.2)):
            line = 0.5 if tag != "rcs" else 0.35
            rows.append({"tag": f"s{seed}_{tag}", "set": "toy", "seed": seed, "rc": 0,
                         "overrides": overrides, "mIoU": (0.95 + line + dot) / 3,
                         "IoU": {"background": 0.95, "line": line, "dot": dot}})
    log = tmp_path / "runs.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cl.main(["--runs", str(log), "--set", "toy", "--rare", "line,dot",
                    "--baseline", "loss=ce", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| default " in out and "| data.sampler=rare_class " in out
    groups = {g["group"]: g for g in
              json.loads((tmp_path / "out" / "loss_comparison.json").read_text())["groups"]}
    assert groups["data.sampler=rare_class"]["baseline"] == "loss=ce"
    low = groups["data.sampler=rare_class"]["lowest_class_vs_baseline"]
    assert low["class"] == "line" and low["diff"] == pytest.approx(-15.0)
    assert groups["default"]["vs_baseline"]["rare_mIoU"]["diff"] == pytest.approx(20.0)
    assert groups["loss=ce"]["vs_baseline"] is None


def test_a_run_log_needs_the_rare_classes(capsys) -> None:
    with pytest.raises(SystemExit):
        cl.main(["--runs", "docs/runs/issue23.jsonl", "--set", "defects"])
    assert "--runs needs --rare" in capsys.readouterr().err
