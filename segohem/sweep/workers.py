"""Where a sweep decides a worker is dead: worker records, liveness, requeue, heartbeat.

A worker records itself on each trial it runs (``segohem_worker``, :func:`worker_record`):
``host``, ``pid``, ``pid_ns`` (this process's pid namespace, ``/proc/self/ns/pid``), ``boot_id``
(``/proc/sys/kernel/random/boot_id``) and ``heartbeat`` (Unix seconds), refreshed every
``heartbeat_s`` by :class:`Heartbeat`. A RUNNING trial is stale (:func:`is_stale`) when:

* its worker's pid is gone **and** the record's host, boot id and pid namespace all equal this
  process's: the same machine, same boot, same pid table, so the dead pid is really that worker;
* or its heartbeat is older than ``stale_after_s`` (any other case).

The pid shortcut is not taken on a hostname alone: containers or pods that share the host's
name but not its pid table (``hostNetwork``, ``docker --network host``) would see each other's
live workers as dead pids. Records without ``pid_ns`` / ``boot_id`` (written by older segohem)
and systems without ``/proc`` (macOS) are judged by the heartbeat alone.

A stale trial is failed and its parameters queued again (:func:`requeue_stale_trials`:
``segohem_retry_of`` = its number, at most ``max_retries`` times).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from segohem.sweep.study import ERROR_ATTR, RETRY_OF_ATTR

log = logging.getLogger(__name__)

WORKER_ATTR = "segohem_worker"
"""A trial's worker: :func:`worker_record` of the process running it."""
ATTEMPT_ATTR = "segohem_attempt"
"""How many times a trial's parameters have been started (1 for the first)."""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PID_NS = Path("/proc/self/ns/pid")


def _pid_namespace() -> str | None:
    """This process's pid namespace (``pid:[4026531836]``), None without ``/proc``."""
    try:
        return os.readlink(PID_NS)
    except OSError:
        return None


def _boot_id() -> str | None:
    """The kernel's boot id (a UUID, new at every boot), None without ``/proc``."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def worker_record() -> dict[str, Any]:
    """This process as a trial's worker: host, pid, pid namespace, boot id (None where the
    system has no ``/proc``) and heartbeat time (Unix seconds)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_ns": _pid_namespace(),
            "boot_id": _boot_id(), "heartbeat": time.time()}


def worker_tag() -> str:
    """A text unique to this process among all workers (host, pid table, boot, pid)."""
    record = worker_record()
    return ":".join(str(record[k]) for k in ("host", "boot_id", "pid_ns", "pid"))


def shares_pid_table(worker: Mapping[str, Any]) -> bool:
    """Whether ``worker``'s pid is a pid of this process's table: same host, same boot id and
    same pid namespace, all known (an old record or a system without ``/proc``: False)."""
    here = worker_record()
    return all(worker.get(key) is not None and worker.get(key) == here[key]
               for key in ("host", "boot_id", "pid_ns"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale(trial: FrozenTrial, stale_after_s: float, now: float | None = None) -> bool:
    """Whether a RUNNING trial's worker is gone: its pid is dead in this process's own pid
    table (:func:`shares_pid_table`), or its heartbeat is older than ``stale_after_s``
    seconds. A trial without a worker record is stale ``stale_after_s`` after its start."""
    now = time.time() if now is None else now
    worker = trial.user_attrs.get(WORKER_ATTR)
    if not isinstance(worker, dict):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - started > stale_after_s
    pid = worker.get("pid")
    if (isinstance(pid, int) and pid != os.getpid() and shares_pid_table(worker)
            and not _pid_alive(pid)):
        return True
    return now - float(worker.get("heartbeat", now)) > stale_after_s


def requeue_stale_trials(study: optuna.Study, storage: BaseStorage, stale_after_s: float,
                         max_retries: int) -> list[int]:
    """Fail every stale RUNNING trial (:func:`is_stale`) and queue its parameters again (a new
    trial with ``segohem_retry_of`` = its number), at most ``max_retries`` times per original
    trial. Safe with several workers: only the worker whose ``tell`` wins requeues. Returns
    the numbers of the trials requeued."""
    requeued = []
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(frozen, stale_after_s):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        with contextlib.suppress(ValueError, RuntimeError):  # finished meanwhile
            storage.set_trial_user_attr(trial_id, ERROR_ATTR,
                                        "its worker died while it was running")
        try:
            study.tell(frozen.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # another worker failed it first (or it ended)
            continue
        attempt = int(frozen.user_attrs.get(ATTEMPT_ATTR, 1))
        if attempt > max_retries:
            log.error("Trial %d died with its worker on attempt %d: not requeued again "
                      "(hydra.sweeper.max_retries=%d); it counts as failed.", frozen.number,
                      attempt, max_retries)
            continue
        study.enqueue_trial(frozen.params, user_attrs={RETRY_OF_ATTR: frozen.number,
                                                       ATTEMPT_ATTR: attempt + 1})
        requeued.append(frozen.number)
    if requeued:
        log.warning("Trials %s were running when their worker died: marked failed and queued "
                    "again with the same parameters.", requeued)
    return requeued


_BEAT = threading.Lock()
# A trial's job may fork (ddp_fork): never while a heartbeat holds a storage or driver lock,
# which the child would inherit locked.
os.register_at_fork(before=_BEAT.acquire, after_in_parent=_BEAT.release,
                    after_in_child=_BEAT.release)


class Heartbeat:
    """While running, refreshes ``segohem_worker`` on the given trials every ``interval_s``
    seconds (a daemon thread: it dies with the worker, which is the point)."""

    def __init__(self, trials: Sequence[optuna.Trial], interval_s: float) -> None:
        self.trials, self.interval_s = list(trials), interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="optuna-heartbeat")

    def beat(self) -> None:
        with _BEAT:
            for trial in self.trials:
                with contextlib.suppress(Exception):  # finished meanwhile, storage hiccup
                    trial.set_user_attr(WORKER_ATTR, worker_record())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
