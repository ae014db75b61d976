"""segohem's Optuna sweeper on a task without training (tests/sweep/toy_app.py): workers
sharing one study, resuming a killed sweep, errors before any trial runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from segohem.report.sweep_summary import summarize
from segohem.sweep.storage import open_storage
from segohem.sweep.study import RETRY_OF_ATTR, reproduce_command

ROOT = Path(__file__).resolve().parents[2]


def toy(sweep: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "tests.sweep.toy_app", f"hydra.sweep.dir={sweep}", *overrides]


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def load(sweep: Path, storage: str | None = None) -> optuna.Study:
    location = storage or str(sweep / "optuna.journal")
    return optuna.load_study(study_name="toy", storage=open_storage(location))


def runs(sweep: Path) -> dict[int, dict]:
    """Trial number -> run.json of every job folder that finished."""
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep.glob("*/run.json")}


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_two_workers_share_one_study_and_run_exactly_n_trials(tmp_path, storage):
    sweep = tmp_path / "sweep"
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else None
    cmd = toy(sweep, "hydra.sweeper.n_trials=8", "sleep_s=0.3",
              *([f"hydra.sweeper.storage='{url}'"] if url else []))
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    trials = load(sweep, url).get_trials()
    assert [t.number for t in trials] == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    done = runs(sweep)
    assert sorted(done) == list(range(8))  # one job folder per trial, no trial twice
    for number, run_info in done.items():
        assert run_info["trial"] == number
        assert run_info["x"] == pytest.approx(trials[number].params["x"])
    assert len({r["pid"] for r in done.values()}) == 2, "both workers should have run trials"
    # The second worker's sampler is seeded apart from the first: no repeated draws.
    assert len({t.params["x"] for t in trials}) == 8


def test_a_killed_sweep_resumes_keeping_finished_trials(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = toy(sweep, "hydra.sweeper.n_trials=4", "sleep_s=1.5")
    worker = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not (sweep / "1" / "started").exists():  # trial 0 done, trial 1 running
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    first = runs(sweep)
    assert sorted(first) == [0]
    killed = load(sweep).trials[1]
    assert killed.state == TrialState.RUNNING

    done = run(cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load(sweep).trials
    assert trials[0].state == TrialState.COMPLETE and runs(sweep)[0] == first[0]  # kept
    assert trials[1].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == 1]
    assert len(retry) == 1 and retry[0].params == killed.params
    assert retry[0].state == TrialState.COMPLETE
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4  # the budget: 4 trials ran to the end, none lost or repeated


@pytest.mark.parametrize(("overrides", "message"), [
    (["hydra.sweeper.storage=postgresql://user:secret@127.0.0.1:1/db"],
     "cannot open the study storage"),
    (["hydra.sweeper.storage=mongodb://127.0.0.1/db"], "unknown scheme"),
    (["hydra.sweeper.storage='sqlite:////proc/no/study.db'"], "folder /proc/no does not exist"),
    (["hydra.sweeper.storage=/nonexistent/mount/study.journal"],
     "folder /nonexistent/mount does not exist (is the shared filesystem mounted?)"),
    (["hydra.sweeper.storage=/tmp/study.txt"], "a file storage must end in .journal"),
    (['+hydra.sweeper.params.z="choice(1,2)"'], "no key 'z' in the config"),
    (['hydra.sweeper.params.x="range(3,1)"'], "hydra.sweeper.params.x='range(3,1)': empty"),
    (["+hydra.sweeper.when.x={y:[c]}"], "not among the choices of y"),
])
def test_bad_input_fails_before_any_trial(tmp_path, overrides, message):
    sweep = tmp_path / "sweep"
    done = run(toy(sweep, *overrides))
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-3000:]
    assert "secret" not in done.stderr
    assert not list(sweep.glob("*/started"))


@pytest.mark.parametrize(("change", "message"), [
    (["hydra.sweeper.direction=minimize"], "was created with direction ['maximize']"),
    (['hydra.sweeper.params.x="interval(0,2)"'], "was created with another search space: x:"),
])
def test_a_study_refuses_another_direction_or_search_space(tmp_path, change, message):
    sweep = tmp_path / "sweep"
    assert run(toy(sweep, "hydra.sweeper.n_trials=1")).returncode == 0
    done = run(toy(sweep, "hydra.sweeper.n_trials=2", *change))
    assert done.returncode != 0 and message in done.stderr, done.stderr[-3000:]
    assert len(load(sweep).trials) == 1


def test_study_file_names_storage_and_reproduces_the_best_trial(tmp_path):
    sweep = tmp_path / "sweep"
    done = run(toy(sweep, "hydra.sweeper.n_trials=3", "sleep_s=0"))
    assert done.returncode == 0, done.stderr[-3000:]
    info = yaml.safe_load((sweep / "optuna_study.yaml").read_text())
    best = load(sweep).best_trial
    assert info["storage"] == str(sweep / "optuna.journal")
    assert info["best"]["number"] == best.number
    assert info["best"]["command"] == (f"segohem-train sleep_s=0 x={best.params['x']!r} "
                                       f"y={best.params['y']}")


def test_sweep_summary_reads_the_study(tmp_path):
    sweep = tmp_path / "sweep"
    assert run(toy(sweep, "hydra.sweeper.n_trials=3")).returncode == 0
    paths = summarize(sweep)
    report = (sweep / "summary.md").read_text()
    best = load(sweep).best_trial
    assert "## Optuna study 'toy'" in report and "3 complete." in report
    assert f"Best: trial {best.number}, value {best.value:.4f}" in report
    assert reproduce_command(best) in report
    assert {p.name for p in paths} >= {"optimization_history.png", "param_importances.png"}
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_value_given_on_the_command_line_is_not_searched(tmp_path):
    sweep = tmp_path / "sweep"
    done = run(toy(sweep, "hydra.sweeper.n_trials=2", "y=b", "+hydra.sweeper.when.x={y:[a]}"))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load(sweep).trials
    assert all(t.params == {} for t in trials)  # y fixed to b, and x only searched for y=a
    assert all(r["y"] == "b" and r["x"] == 0.5 for r in runs(sweep).values())
