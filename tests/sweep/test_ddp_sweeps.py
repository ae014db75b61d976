"""Hydra multiruns with DDP (``trainer=ddp_cpu``): every rank of a job trains with the job's
hyperparameters, one folder per job, the sweep is not re-run, failed trials do not stop it.

These run the real CLI in a subprocess (Lightning's ``ddp`` would re-launch pytest itself)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from segohem.report.job_status import read_job_status
from segohem.sweep.storage import open_storage

TINY_DDP = ["trainer=ddp_cpu", "dataset.image_size=[64,64]", "dataset.train_set.num_samples=32",
            "dataset.val_set.num_samples=9", "dataset.num_workers=0", "trainer.max_epochs=1",
            "min_train_steps=null", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "image_log_every_n_epochs=100"]
RANK_LINE = re.compile(r"rank (\d)/(\d): config (\w+) loss (\{.*\})$")


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segohem.cli.train", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def rank_lines(job: Path) -> dict[int, tuple[str, dict]]:
    """rank -> (config digest, loss config) from every log file of the job folder."""
    found = {}
    for log in job.glob("*.log"):
        for line in log.read_text().splitlines():
            m = RANK_LINE.search(line)
            if m:
                assert int(m.group(2)) == 2
                found[int(m.group(1))] = (m.group(3), json.loads(m.group(4)))
    return found


def job_overrides(job: Path) -> dict[str, str]:
    entries = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    return dict(e.split("=", 1) for e in entries)


def check_jobs(sweep: Path, cwd: Path, expected_jobs: int) -> list[Path]:
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == [str(i) for i in range(expected_jobs)]
    # Nothing re-ran the sweep: no second sweep or run folder appeared anywhere.
    assert not (cwd / "multirun").exists() and not (cwd / "outputs").exists()
    for job in jobs:
        ranks = rank_lines(job)
        assert sorted(ranks) == [0, 1], f"{job}: {ranks}"
        (digest0, loss0), (digest1, loss1) = ranks[0], ranks[1]
        assert digest0 == digest1 and loss0 == loss1  # identical hyperparameters
        overrides = job_overrides(job)
        assert float(overrides["loss.thresh"]) == loss0["thresh"]
        if "loss.n_min" in overrides:
            expected = overrides["loss.n_min"]
            assert (loss0["n_min"] is None) if expected == "null" else (
                float(expected) == loss0["n_min"])
    return jobs


@pytest.mark.slow
def test_grid_multirun_with_ddp(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(["-m", "loss.thresh=0.5,0.8", "loss.n_min=null,0.05", *TINY_DDP,
                    f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = check_jobs(sweep, tmp_path, 4)
    assert {(job_overrides(j)["loss.thresh"], job_overrides(j)["loss.n_min"]) for j in jobs} \
        == {("0.5", "null"), ("0.5", "0.05"), ("0.8", "null"), ("0.8", "0.05")}
    for job in jobs:
        best = json.loads((job / "metrics.json").read_text())["best"]["mIoU"]
        assert best is not None
        status = read_job_status(job)  # rank 0's outcome; the forked rank writes none
        assert (status["status"], status["return_value"]) == ("COMPLETED", best)


@pytest.mark.slow
def test_loss_family_sweep_with_ddp_prunes_a_hopeless_trial_on_every_rank(tmp_path):
    """Two queued trials of hparams_search=loss_family under trainer=ddp_cpu: a sane OHEM one,
    then CE with an absurd learning rate, which the median pruner (one complete trial to
    compare with, from epoch 0) stops. Both ranks stop together (otherwise the job would hang),
    the study records PRUNED, and the CE trial never receives OHEM parameters."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(storage=open_storage(str(sweep / "optuna.journal")),
                                study_name="family", direction="maximize")
    study.enqueue_trial({"loss": "ohem", "optimizer.lr": 0.01})
    study.enqueue_trial({"loss": "ce", "optimizer.lr": 1e-9})
    done = run_cli(["hparams_search=loss_family", "hydra.sweeper.study_name=family",
                    "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner.n_startup_trials=1",
                    "hydra.sweeper.pruner.n_warmup_steps=0", *TINY_DDP, "trainer.max_epochs=4",
                    "optimizer.lr=choice(0.01,1e-9)", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    good, hopeless = study.trials
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 4
    assert hopeless.state == TrialState.PRUNED, hopeless.intermediate_values
    assert len(hopeless.intermediate_values) < 4  # stopped early, on both ranks
    assert read_job_status(sweep / "1")["status"] == "PRUNED"
    assert "loss.thresh" in good.params and not {"loss.thresh", "loss.n_min"} & set(
        hopeless.params)
    assert not any(k.startswith("loss.") for k in job_overrides(sweep / "1"))
    for job in (sweep / "0", sweep / "1"):
        ranks = rank_lines(job)
        assert sorted(ranks) == [0, 1] and ranks[0] == ranks[1]  # same config digest
    assert ranks[0][1]["_target_"] == "segohem.losses.CrossEntropyLoss"
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()
