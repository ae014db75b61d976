"""Where an Optuna sweep's study lives: the storage spec -> a location -> an Optuna storage.

Storages (``hydra.sweeper.storage``):

* ``null`` (default): Optuna's journal file ``<sweep dir>/optuna.journal``;
* a file path ending in ``.journal`` / ``.log``: a journal file (e.g. on a shared filesystem
  for a cluster: Optuna's journal storage is the one it recommends on NFS);
* an RDB URL (``sqlite:///sweep.db``, ``postgresql://user@host/db``, ``mysql://...``);
* ``redis://host:port``: Optuna's journal on Redis.

Workers of a file storage take turns through a lock file next to it (:func:`worker_lock`):
created with ``O_CREAT | O_EXCL`` (Optuna's ``JournalFileOpenLock``), which holds across the
clients of an NFS share, where ``flock`` locks do not.
A URL with a password is never written to files or logs (:func:`redact`); trials get it
through :data:`STORAGE_ENV`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalRedisBackend

log = logging.getLogger(__name__)

DEFAULT_JOURNAL = "optuna.journal"
STORAGE_ENV = "SEGOHEM_OPTUNA_STORAGE"
"""Trials get ``optuna.storage=env:SEGOHEM_OPTUNA_STORAGE`` when the URL holds a password."""
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
LOCK_GRACE_S = 60
"""A worker lock file left unchanged this long is a dead holder's and is broken."""


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


@contextlib.contextmanager
def worker_lock(location: str, grace_s: int = LOCK_GRACE_S) -> Iterator[None]:
    """Serialises counting and asking among the workers of a file storage (a no-op for
    server storages, see :func:`~segohem.sweep.study.is_surplus`).

    The lock is the file :func:`lock_path`, created with ``O_EXCL`` (it holds across NFS
    clients) and removed on release. While it is held a thread touches it every
    ``grace_s / 4`` seconds; a lock file left untouched for ``grace_s`` seconds (its holder
    was killed) is broken by the next worker that waits for it."""
    path = lock_path(location)
    if path is None:
        yield
        return
    lock = JournalFileOpenLock(str(path.with_suffix("")), grace_period=grace_s)  # + ".lock"
    try:
        lock.acquire()
    except OSError as err:
        raise StudyError(f"hydra.sweeper.storage={redact(location)!r}: cannot open the study "
                         f"storage (cannot create {path}: {err}). Use a folder this user can "
                         f"write to.") from None
    held = threading.Event()
    toucher = threading.Thread(target=_touch, args=(path, grace_s / 4, held), daemon=True,
                               name="worker-lock-touch")
    toucher.start()
    try:
        yield
    finally:
        held.set()
        toucher.join()
        try:
            lock.release()
        except RuntimeError:
            log.warning("%s: another worker broke this lock while this one held it (unchanged "
                        "for %d s: a stalled filesystem?).", path, grace_s)


def _touch(path: Path, interval_s: float, released: threading.Event) -> None:
    """Refresh ``path``'s mtime every ``interval_s`` seconds until ``released``: a held lock
    never looks abandoned (waiters compare mtimes, not clocks, so clock skew is harmless)."""
    while not released.wait(interval_s):
        with contextlib.suppress(OSError):
            os.utime(path)


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
