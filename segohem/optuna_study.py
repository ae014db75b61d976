"""A persistent Optuna study shared by every worker of a sweep: storage, checks, trial budget.

Storages (``hydra.sweeper.storage``):

* ``null`` (default): Optuna's journal file ``<sweep dir>/optuna.journal``;
* a file path ending in ``.journal`` / ``.log``: a journal file (e.g. on a shared filesystem
  for a cluster: Optuna's journal storage is the one it recommends on NFS);
* an RDB URL (``sqlite:///sweep.db``, ``postgresql://user@host/db``, ``mysql://...``);
* ``redis://host:port``: Optuna's journal on Redis.

Several workers (the same command started on several machines, or a SLURM array) pull trials
from one study until ``n_trials`` trials exist. Counting and asking happen under a file lock
next to a file storage; for server storages a trial asked beyond the budget in a race is
marked ``segohem_surplus`` and failed without training, so exactly ``n_trials`` trials run.

A worker records itself on each trial it runs (``segohem_worker``: host, pid, heartbeat time,
refreshed every ``heartbeat_s``). A RUNNING trial whose worker is gone (same host and the
process is dead, or no heartbeat for ``stale_after_s``) is failed and its parameters are
queued again as a new trial (``segohem_retry_of``: the dead one's number; at most
``max_retries`` times): re-running a killed sweep's command resumes it without losing or
repeating trials, and a worker that finds the budget used waits for the other workers'
running trials, so that it can take over those whose worker dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock, Timeout
from hydra.errors import CompactHydraException
from hydra.utils import instantiate
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

DEFAULT_JOURNAL = "optuna.journal"
STORAGE_ENV = "SEGOHEM_OPTUNA_STORAGE"
"""Trials get ``optuna.storage=env:SEGOHEM_OPTUNA_STORAGE`` when the URL holds a password."""
STUDY_FILE = "optuna_study.yaml"
"""Written into the sweep dir by the sweeper: ``study_name``, ``storage``, ``best``..."""
WORKER_ATTR = "segohem_worker"
SURPLUS_ATTR = "segohem_surplus"
RETRY_OF_ATTR = "segohem_retry_of"
ATTEMPT_ATTR = "segohem_attempt"
ERROR_ATTR = "segohem_error"
PRUNED_AT_ATTR = "segohem_pruned_at_epoch"
OVERRIDES_ATTR = "segohem_overrides"
SPACE_ATTR = "segohem_search_space"
PRUNER_ATTR = "segohem_pruner"
OBJECTIVE_ATTR = "segohem_objective"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")


class StudyError(CompactHydraException):
    """The study cannot be used as configured (the message names the option and the fix;
    Hydra prints it without a traceback)."""


def storage_location(spec: str | None, sweep_dir: str | os.PathLike) -> str:
    """The storage as a URL or an absolute journal path (``null`` -> the sweep dir's
    journal); this text is what workers and trial jobs open."""
    if spec in (None, ""):
        return str(Path(sweep_dir).absolute() / DEFAULT_JOURNAL)
    spec = str(spec)
    if spec.startswith("sqlite:///") and spec != "sqlite:///:memory:":
        return "sqlite:///" + str(Path(spec.removeprefix("sqlite:///")).expanduser().absolute())
    if "://" in spec:
        return spec
    return str(Path(spec).expanduser().absolute())


def check_location(location: str, create: bool) -> None:
    """Make sure the folder of a file storage exists: created for the default location (the
    sweep dir), required for a configured one (a missing shared mount must not silently
    become a local folder of its own). :class:`StudyError` naming it otherwise."""
    if "://" in location and not location.startswith("sqlite:///"):
        return
    if location == "sqlite:///:memory:":
        return
    folder = Path(location.removeprefix("sqlite:///")).parent
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StudyError(f"{folder}: cannot create the sweep dir for the study ({err}).") \
                from None
    elif not folder.is_dir():
        raise StudyError(f"hydra.sweeper.storage={redact(location)!r}: cannot open the study "
                         f"storage: folder {folder} does not exist (is the shared filesystem "
                         f"mounted?). Create it first, or leave hydra.sweeper.storage unset "
                         f"for a journal file in the sweep dir.")


def lock_path(location: str) -> Path | None:
    """The lock file serialising workers of a file storage (None for server storages)."""
    if "://" not in location:  # (Optuna's own journal lock is <file>.lock)
        return Path(location + ".workers.lock")
    if location.startswith("sqlite:///") and location != "sqlite:///:memory:":
        return Path(location.removeprefix("sqlite:///") + ".workers.lock")
    return None


def open_storage(location: str) -> BaseStorage:
    """The Optuna storage at ``location`` (:func:`storage_location`); :class:`StudyError`
    naming it when it cannot be opened (unreachable server, missing driver, bad path)."""
    scheme = location.split("://", 1)[0].split("+", 1)[0].lower() if "://" in location else ""
    try:
        if not scheme:
            path = Path(location)
            if path.suffix not in (".journal", ".log"):
                raise StudyError(
                    f"hydra.sweeper.storage={location!r}: a file storage must end in "
                    f".journal (Optuna's journal file), or give an RDB URL such as "
                    f"sqlite:///{path.with_suffix('.db')}.")
            return JournalStorage(JournalFileBackend(str(path)))
        if scheme == "redis":
            return JournalStorage(JournalRedisBackend(location))
        if scheme in RDB_SCHEMES:
            return RDBStorage(location, engine_kwargs=_engine_kwargs(scheme))
    except StudyError:
        raise
    except Exception as err:  # drivers raise their own types: all mean "cannot open"
        raise StudyError(
            f"hydra.sweeper.storage={redact(location)!r}: cannot open the study storage "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Check "
            f"the URL, that the server is reachable and its Python driver installed (e.g. "
            f"psycopg2-binary for postgresql://, PyMySQL for mysql+pymysql://), or leave "
            f"hydra.sweeper.storage unset for a journal file in the sweep dir.") from None
    raise StudyError(f"hydra.sweeper.storage={redact(location)!r}: unknown scheme "
                     f"{scheme!r}; expected a .journal file path, sqlite:///, postgresql://, "
                     f"mysql://, or redis://.")


def _engine_kwargs(scheme: str) -> dict[str, Any]:
    # Fail fast on an unreachable server instead of hanging; SQLite waits for a busy lock.
    if scheme == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def redact(location: str) -> str:
    """The URL without its password."""
    if "://" not in location or "@" not in location:
        return location
    scheme, rest = location.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else location


def open_study(storage: BaseStorage, location: str, study_name: str, direction: str,
               pruner: optuna.pruners.BasePruner | None,
               settings: Mapping[str, Any]) -> optuna.Study:
    """Create the study, or load it when it exists, and check that it was created with the
    same ``direction`` and the same ``settings`` (``{user attr: JSON value}``: the search
    space, the pruner, the objective). The first worker stores ``settings``; a mismatch is a
    :class:`StudyError` before any trial runs."""
    try:
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    direction=direction, pruner=pruner,
                                    load_if_exists=True)
    except Exception as err:  # lazy backends fail here
        raise StudyError(f"hydra.sweeper.storage={redact(location)!r}: cannot create or load "
                         f"study {study_name!r} ({type(err).__name__}: {err}).") from None
    if len(study.directions) != 1 or study.direction.name.lower() != direction:
        raise StudyError(
            f"Study {study_name!r} in {redact(location)} was created with direction "
            f"{[d.name.lower() for d in study.directions]}, hydra.sweeper.direction="
            f"{direction}. Use the study's direction, or another hydra.sweeper.study_name "
            f"(or storage) for a new study.")
    stored = study.user_attrs
    for key, value in settings.items():
        if key not in stored:
            study.set_user_attr(key, value)
        elif stored[key] != value:
            what = key.removeprefix("segohem_").replace("_", " ")
            raise StudyError(
                f"Study {study_name!r} in {redact(location)} was created with another "
                f"{what}: {_difference(stored[key], value)}. A study keeps one {what}: "
                f"restore the study's settings, or start a new study with another "
                f"hydra.sweeper.study_name (or storage).")
    return study


def _difference(stored: Any, configured: Any) -> str:
    """What differs, entry by entry for mappings: ``k: study X, config Y``."""
    if not (isinstance(stored, dict) and isinstance(configured, dict)):
        return f"study {stored}, config {configured}"
    keys = dict.fromkeys([*stored, *configured])
    return "; ".join(f"{k}: study {stored.get(k, '(absent)')}, config "
                     f"{configured.get(k, '(absent)')}"
                     for k in keys if stored.get(k) != configured.get(k))


def retried(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials that were requeued (a later trial retries them)."""
    return {t.user_attrs[RETRY_OF_ATTR] for t in trials if RETRY_OF_ATTR in t.user_attrs}


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of the budget: all except requeued ones (their retry counts) and surplus."""
    again = retried(trials)
    return [t for t in trials if t.number not in again and not t.user_attrs.get(SURPLUS_ATTR)]


def free_slots(study: optuna.Study, n_trials: int) -> int:
    """How many trials this worker may ask now: the budget left, plus queued retries
    (asking pops a WAITING trial instead of creating one)."""
    trials = counted(study.get_trials(deepcopy=False))
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return max(0, n_trials - len(trials)) + waiting


def is_surplus(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether ``trial`` lies beyond the first ``n_trials`` counted trials (a race between
    workers of a server storage); it is then marked, failed and not run."""
    numbers = sorted(t.number for t in counted(study.get_trials(deepcopy=False)))
    if trial.number in numbers[:n_trials]:
        return False
    trial.set_user_attr(SURPLUS_ATTR, True)
    study.tell(trial, state=TrialState.FAIL)
    return True


def worker_record() -> dict[str, Any]:
    """This process as a trial's worker: host, pid and heartbeat time (Unix seconds)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial: FrozenTrial, stale_after_s: float, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is gone: on this host with a dead pid, or silent for
    ``stale_after_s`` seconds (another host). A trial without a worker record is stale once
    it was started ``stale_after_s`` ago."""
    now = time.time() if now is None else now
    worker = trial.user_attrs.get(WORKER_ATTR)
    if not isinstance(worker, dict):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - started > stale_after_s
    pid = worker.get("pid")
    if (worker.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and not _pid_alive(pid)):
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


@contextlib.contextmanager
def worker_lock(location: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Serialises counting and asking among the workers of a file storage (a no-op for
    server storages, see :func:`is_surplus`)."""
    path = lock_path(location)
    if path is None:
        yield
        return
    try:
        lock = FileLock(str(path), timeout=timeout_s)
        lock.acquire()
    except Timeout:
        raise StudyError(f"{path}: another worker has held this lock for {timeout_s:.0f} s; if "
                         f"no worker of this study runs, delete the file.") from None
    except OSError as err:
        raise StudyError(f"hydra.sweeper.storage={redact(location)!r}: cannot open the study "
                         f"storage (cannot create {path}: {err}). Use a folder this user can "
                         f"write to.") from None
    try:
        yield
    finally:
        lock.release()


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


def resolve_location(location: str) -> str:
    """``env:NAME`` -> the storage URL in that environment variable (see :data:`STORAGE_ENV`)."""
    if not location.startswith("env:"):
        return location
    name = location.removeprefix("env:")
    if name not in os.environ:
        raise StudyError(f"optuna.storage={location}: the environment variable {name} is not "
                         f"set in this trial's process (the sweeper sets it; a launcher that "
                         f"does not pass the environment on needs it exported).")
    return os.environ[name]


def load_trial(location: str, study_name: str, number: int) -> optuna.Trial:
    """Trial ``number`` of the study, for reporting from a trial's own process (the
    study's pruner is rebuilt from the settings the sweeper stored)."""
    storage = open_storage(resolve_location(location))
    study = optuna.load_study(study_name=study_name, storage=storage,
                              pruner=pruner_from_settings(storage, study_name))
    study_id = storage.get_study_id_from_name(study_name)
    return optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


def frozen_trial(location: str, study_name: str, number: int) -> FrozenTrial:
    """Trial ``number`` of the study as stored now."""
    storage = open_storage(resolve_location(location))
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))


def pruner_from_settings(storage: BaseStorage, study_name: str) -> optuna.pruners.BasePruner:
    """The pruner stored in the study (``segohem_pruner``: a ``_target_`` mapping or None)."""
    study_id = storage.get_study_id_from_name(study_name)
    spec = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
    return instantiate(spec) if spec else optuna.pruners.NopPruner()


def reproduce_command(trial: FrozenTrial) -> str:
    """``segohem-train <overrides>`` training the trial's configuration on its own."""
    return shlex.join(["segohem-train", *trial.user_attrs.get(OVERRIDES_ATTR, [])])
