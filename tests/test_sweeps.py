"""Hydra multiruns with DDP (``trainer=ddp_cpu``): every rank of a job trains with the job's
hyperparameters, one folder per job, the sweep is not re-run, failed trials do not stop it.

These run the real CLI in a subprocess (Lightning's ``ddp`` would re-launch pytest itself)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segohem.job_status import read_job_status

TINY_DDP = ["trainer=ddp_cpu", "dataset.image_size=[64,64]", "dataset.train_set.num_samples=32",
            "dataset.val_set.num_samples=9", "dataset.num_workers=0", "trainer.max_epochs=1",
            "min_train_steps=null", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "image_log_every_n_epochs=100"]
RANK_LINE = re.compile(r"rank (\d)/(\d): config (\w+) loss (\{.*\})$")


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segohem.train", *args], cwd=cwd,
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
def test_optuna_sweep_with_ddp_survives_a_failed_trial(tmp_path):
    sweep = tmp_path / "sweep"
    # thresh=1.5 is invalid: that trial fails, the sweep goes on (max_failure_rate).
    params = 'hydra.sweeper.params={loss.thresh:"choice(0.6,1.5)",loss.n_min:"choice(0.02,0.1)"}'
    done = run_cli(["hparams_search=ohem_optuna", "hydra.sweeper.n_trials=4",
                    "hydra.sweeper.sampler.n_startup_trials=4", params, *TINY_DDP,
                    f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    failed = [j for j in jobs if job_overrides(j)["loss.thresh"] == "1.5"]
    good = [j for j in jobs if j not in failed]
    assert failed and good, "the seeded sampler should try both thresholds"
    for job in failed:
        status = read_job_status(job)
        assert status["status"] == "FAILED" and "thresh" in status["error"]["message"]
    for job in good:
        ranks = rank_lines(job)
        assert sorted(ranks) == [0, 1] and ranks[0] == ranks[1]
        overrides = job_overrides(job)
        assert ranks[0][1]["thresh"] == float(overrides["loss.thresh"])
        assert ranks[0][1]["n_min"] == float(overrides["loss.n_min"])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"]["loss.thresh"] == 0.6
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()
