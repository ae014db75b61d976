"""segohem.sweep.workers: when a worker counts as dead (pid shortcut only within one pid table,
else the heartbeat), requeueing its trials, the heartbeat; and the lock workers take turns
under (segohem.sweep.storage.worker_lock: an O_EXCL lock file, not flock)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from segohem.sweep import workers
from segohem.sweep.storage import StudyError, lock_path, worker_lock
from segohem.sweep.study import ERROR_ATTR, RETRY_OF_ATTR
from segohem.sweep.workers import (
    ATTEMPT_ATTR,
    WORKER_ATTR,
    Heartbeat,
    is_stale,
    requeue_stale_trials,
    shares_pid_table,
    worker_record,
)

ROOT = Path(__file__).resolve().parents[2]
STALE_S = 900.0
HAS_PROC = workers.PID_NS.exists() and workers.BOOT_ID.exists()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def running(record: dict) -> FrozenTrial:
    return optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={WORKER_ATTR: record})


def test_worker_record_names_host_pid_table_and_boot():
    record = worker_record()
    assert record["pid"] == os.getpid() and record["host"]
    assert time.time() - record["heartbeat"] < 5
    if HAS_PROC:
        assert record["pid_ns"].startswith("pid:[") and len(record["boot_id"]) == 36
        assert shares_pid_table(record)


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc (pid namespace, boot id)")
def test_dead_pid_in_this_pid_table_is_stale_at_once(dead_pid):
    record = {**worker_record(), "pid": dead_pid}
    assert is_stale(running(record), STALE_S)
    alive = {**worker_record(), "pid": os.getppid()}  # the same table, a live pid
    assert not is_stale(running(alive), STALE_S)


@pytest.mark.parametrize("other", [
    {"pid_ns": "pid:[4026599999]"},  # a container / pod with the host's name (hostNetwork)
    {"boot_id": "00000000-0000-0000-0000-000000000000"},  # the host rebooted, or another one
    {"pid_ns": None, "boot_id": None},  # written by a system without /proc
])
def test_same_hostname_other_pid_table_is_judged_by_the_heartbeat(dead_pid, other):
    now = time.time()
    record = {**worker_record(), "pid": dead_pid, "heartbeat": now - 10, **other}
    assert not shares_pid_table(record)
    assert not is_stale(running(record), STALE_S, now=now)  # live trial: not run twice
    assert is_stale(running(record), STALE_S, now=now + STALE_S)  # silent too long


def test_old_record_without_namespace_or_boot_id_is_judged_by_the_heartbeat(dead_pid):
    now = time.time()
    old = {"host": worker_record()["host"], "pid": dead_pid, "heartbeat": now - 10}
    assert not is_stale(running(old), STALE_S, now=now)
    assert is_stale(running(old), STALE_S, now=now + STALE_S)


def test_without_proc_only_the_heartbeat_counts(dead_pid, monkeypatch, tmp_path):
    monkeypatch.setattr(workers, "PID_NS", tmp_path / "no" / "ns")
    monkeypatch.setattr(workers, "BOOT_ID", tmp_path / "no" / "boot_id")
    record = {**worker_record(), "pid": dead_pid}
    assert record["pid_ns"] is None and record["boot_id"] is None
    assert not is_stale(running(record), STALE_S, now=record["heartbeat"] + 1)
    assert is_stale(running(record), STALE_S, now=record["heartbeat"] + STALE_S + 1)


def test_trial_without_record_is_stale_after_stale_after_s_from_its_start():
    trial = optuna.trial.create_trial(state=TrialState.RUNNING)
    start = trial.datetime_start.timestamp()
    assert not is_stale(trial, STALE_S, now=start + 1)
    assert is_stale(trial, STALE_S, now=start + STALE_S + 1)


def test_requeue_fails_only_stale_trials_and_queues_their_parameters(dead_pid):
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    pod = {**worker_record(), "pid": dead_pid, "pid_ns": "pid:[4026599999]"}
    alive, silent = study.ask(), study.ask()
    for trial, heartbeat in ((alive, time.time()), (silent, time.time() - 2 * STALE_S)):
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr(WORKER_ATTR, {**pod, "heartbeat": heartbeat})
    assert requeue_stale_trials(study, storage, STALE_S, max_retries=2) == [silent.number]
    trials = study.get_trials()
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[silent.number].state == TrialState.FAIL
    assert "worker died" in trials[silent.number].user_attrs[ERROR_ATTR]
    retry = trials[-1]
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs[RETRY_OF_ATTR] == silent.number
    assert retry.user_attrs[ATTEMPT_ATTR] == 2
    again = study.ask()  # the retry runs next, with the dead trial's parameters
    assert again.number == retry.number
    assert again.suggest_float("x", 0, 1) == trials[silent.number].params["x"]


def test_requeue_stops_after_max_retries():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.set_user_attr(ATTEMPT_ATTR, 3)
    trial.set_user_attr(WORKER_ATTR, {**worker_record(), "heartbeat": 0.0})
    assert requeue_stale_trials(study, storage, STALE_S, max_retries=2) == []
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL]


def test_heartbeat_refreshes_the_worker_record():
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, {**worker_record(), "heartbeat": 0.0})
    with Heartbeat([trial], interval_s=0.05):
        time.sleep(0.3)
        record = study.trials[0].user_attrs[WORKER_ATTR]
    assert time.time() - record["heartbeat"] < 1
    assert record["pid"] == os.getpid()


# ------------------------------------------------------------------ the worker-index lock

CONTENDER = """
import os, sys, time
from pathlib import Path
from segohem.sweep.storage import worker_lock
location, log, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
Path(f"{log}.ready.{os.getpid()}").touch()
while len(list(log.parent.glob(log.name + ".ready.*"))) < 2:
    time.sleep(0.01)
for _ in range(n):
    with worker_lock(location):
        with open(log, "a") as f:
            f.write(f"in {os.getpid()}\\n")
        time.sleep(0.02)
        with open(log, "a") as f:
            f.write(f"out {os.getpid()}\\n")
    time.sleep(0.02)
"""


def test_two_processes_never_hold_the_worker_lock_together(tmp_path):
    location, log, n = str(tmp_path / "study.journal"), tmp_path / "holders.txt", 15
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, location, str(log), str(n)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    lines = log.read_text().split()
    events = list(zip(lines[::2], lines[1::2], strict=True))
    assert len(events) == 4 * n
    for (enter, holder), (leave, same) in zip(events[::2], events[1::2], strict=True):
        assert (enter, leave) == ("in", "out") and holder == same, events  # one at a time
    assert len({pid for _, pid in events}) == 2
    assert not lock_path(location).exists()  # released: the lock file is gone


def test_leftover_lock_file_blocks_until_its_grace_period_then_is_broken(tmp_path):
    """An O_EXCL lock: the file's existence is the lock (flock would take it at once)."""
    location = str(tmp_path / "study.journal")
    path = lock_path(location)
    path.touch()  # left by a worker killed while holding the lock
    start = time.monotonic()
    with worker_lock(location, grace_s=3):
        waited = time.monotonic() - start
        assert path.exists()
    assert 3 <= waited < 30
    assert not path.exists()


def test_a_held_lock_is_kept_fresh_past_the_grace_period(tmp_path):
    location, order = str(tmp_path / "study.journal"), []
    held = threading.Event()

    def holder() -> None:
        with worker_lock(location, grace_s=3):
            held.set()
            time.sleep(5)  # longer than grace_s: the touching thread keeps it alive
            order.append("holder released")

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    with worker_lock(location, grace_s=3):
        order.append("waiter acquired")
    thread.join()
    assert order == ["holder released", "waiter acquired"]


def test_lock_in_a_missing_folder_names_the_file(tmp_path):
    location = str(tmp_path / "missing" / "study.journal")
    with (pytest.raises(StudyError, match=r"cannot create .*study\.journal\.workers\.lock"),
          worker_lock(location)):
        pass
