"""Every Hydra job's outcome in ``<output_dir>/status.json``: a Hydra callback writes it, and
:func:`read_job_status` is the one reader (sweep summaries use it to tell finished, failed and
unfinished jobs apart, without parsing logs).

``status.json``::

    {"task": "train", "status": "RUNNING" | "COMPLETED" | "FAILED",
     "started": "<ISO time>", "ended": "<ISO time>" | null,
     "overrides": ["loss.thresh=0.9", ...],
     "return_value": 0.71 | null,                     # COMPLETED: e.g. the optimized metric
     "error": {"type": "RuntimeError", "message": "...", "traceback": "..."} | null}

A job killed while running (SIGKILL, node lost) leaves ``"RUNNING"``.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from segohem.files import write_json

STATUS_FILE = "status.json"
log = logging.getLogger("segohem")


def _is_rank_zero() -> bool:
    """False in the re-launched processes of a DDP job (they share the job's folder)."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name]) == 0
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class JobStatusFile(Callback):
    """Writes ``status.json`` when a job starts and when it ends (see the module docstring);
    a failure is also written with its traceback to the job's log file (Hydra prints it on
    the console only)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_rank_zero():
            return
        runtime = HydraConfig.get()
        self._path = Path(runtime.runtime.output_dir) / STATUS_FILE
        self._status = {"task": runtime.job.name, "status": "RUNNING", "started": _now(),
                        "ended": None, "overrides": list(runtime.overrides.task),
                        "return_value": None, "error": None}
        write_json(self._path, self._status)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not _is_rank_zero() or not hasattr(self, "_path"):
            return
        status = {**self._status, "ended": _now()}
        value = job_return._return_value  # the exception when FAILED (no re-raise here)
        if job_return.status == JobStatus.COMPLETED:
            ok = value is None or isinstance(value, bool | int | float | str)
            status.update(status="COMPLETED", return_value=value if ok else repr(value))
        elif _is_trial_pruned(value):  # a sweep's pruner stopped it early
            status.update(status="PRUNED", error={"type": "TrialPruned", "message": str(value),
                                                  "traceback": ""})
        else:
            error = value if isinstance(value, BaseException) else RuntimeError(str(value))
            text = "".join(traceback.format_exception(error))
            status.update(status="FAILED", error={
                "type": type(error).__name__, "message": str(error), "traceback": text})
            _log_to_files(f"{status['task']} failed: {type(error).__name__}: {error}", error)
        write_json(self._path, status)


def _is_trial_pruned(value: object) -> bool:
    """``optuna.TrialPruned``, told by name: every command (eval, predict...) loads this
    callback, and only sweeps need Optuna imported."""
    return any(c.__name__ == "TrialPruned" and c.__module__.startswith("optuna")
               for c in type(value).__mro__)


def _log_to_files(message: str, error: BaseException) -> None:
    """``message`` with the traceback to the root logger's file handlers only (the console
    already shows it)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,),
                            (type(error), error, error.__traceback__))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def read_job_status(job_dir: Path) -> dict[str, Any] | None:
    """The job's ``status.json``, or None when it has none (a job of an older segohem, or one
    that never started). Raises nothing for a corrupt file: it is reported as a failure."""
    path = Path(job_dir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {"status": "FAILED", "error": {"type": type(err).__name__,
                                              "message": f"unreadable {path}: {err}"}}
    return status if isinstance(status, dict) else None


def describe(status: dict[str, Any] | None) -> str:
    """One line: ``RuntimeError: CUDA out of memory``, ``still running or killed (started
    ...)``, or ``no status.json``."""
    if status is None:
        return "no status.json"
    if status.get("status") == "FAILED":
        error = status.get("error") or {}
        return f"{error.get('type', 'Error')}: {error.get('message', '')}".strip()
    if status.get("status") == "RUNNING":
        return f"still running or killed (started {status.get('started')})"
    return str(status.get("status"))


__all__ = ["STATUS_FILE", "JobStatusFile", "describe", "read_job_status"]
