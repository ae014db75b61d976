"""The work of ``hydra/sweeper=optuna_study``: Optuna (any version >= 4) through its
ask-and-tell API (the Hydra plugin, :mod:`hydra_plugins.segohem_sweeper`, only delegates here).

Each worker (one ``segohem-train -m hparams_search=...`` process; start the same command on
several machines to share the work) loops: requeue trials of dead workers, ask as many trials
as ``n_jobs`` and the budget allow, sample the search space (:mod:`segohem.sweep.space`),
launch one Hydra job per trial through the configured launcher (basic, joblib, submitit...),
tell the study each job's outcome (value, pruned or failed). The study lives in a persistent
storage (:mod:`segohem.sweep.study`), so a killed sweep resumes and optuna-dashboard can open it;
which worker is dead, and how its trials run again, is :mod:`segohem.sweep.workers`.

Each trial's job gets ``++optuna.storage``, ``++optuna.study_name`` and ``++optuna.trial`` (the
pruning callback reports to that trial) and runs in ``<sweep dir>/<trial number>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from segohem.report.job_status import describe, read_job_status
from segohem.sweep.params import check_space_keys, sweep_search_space
from segohem.sweep.space import format_value
from segohem.sweep.storage import (
    STORAGE_ENV,
    check_location,
    lock_path,
    open_storage,
    redact,
    storage_location,
    worker_lock,
)
from segohem.sweep.study import (
    ERROR_ATTR,
    OBJECTIVE_ATTR,
    OVERRIDES_ATTR,
    PRUNER_ATTR,
    SPACE_ATTR,
    STUDY_FILE,
    counted,
    free_slots,
    is_surplus,
    open_study,
    reproduce_command,
)
from segohem.sweep.workers import (
    WORKER_ATTR,
    Heartbeat,
    requeue_stale_trials,
    worker_record,
    worker_tag,
)

log = logging.getLogger(__name__)

WORKERS_ATTR = "segohem_workers"
NOT_REPRODUCED = ("hparams_search=", "hydra.", "hydra/", "+hydra", "++hydra", "optuna.",
                  "++optuna.")


class StudySweep:
    """One worker of a sweep; options: see conf/hydra/sweeper/optuna_study.yaml."""

    def __init__(self, study_name: str, storage: str | None, direction: str, n_trials: int,
                 n_jobs: int, sampler: Any, pruner: Any, params: Any, when: Any = None,
                 max_failure_rate: float = 1.0, heartbeat_s: float = 60.0,
                 stale_after_s: float = 900.0, max_retries: int = 2) -> None:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"hydra.sweeper.direction={direction!r}: expected maximize or "
                             f"minimize.")
        for name, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"hydra.sweeper.{name}={value!r}: expected an integer >= 1.")
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError(f"hydra.sweeper.heartbeat_s={heartbeat_s} / stale_after_s="
                             f"{stale_after_s}: expected 0 < heartbeat_s < stale_after_s.")
        self.study_name, self.storage, self.direction = str(study_name), storage, direction
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.params = _container(params) or {}
        self.when = _container(when) or {}
        self.max_failure_rate = max_failure_rate
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.max_retries = max_retries

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    # ------------------------------------------------------------------ the worker's loop

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        fixed, space = sweep_search_space(self.params, self.when, arguments)
        check_space_keys(self.hydra_context.config_loader, self.config, fixed, space)
        location = storage_location(self.storage, self.sweep_dir)
        check_location(location, create=self.storage in (None, ""))
        settings = {SPACE_ATTR: space.describe(),
                    PRUNER_ATTR: _container(self.pruner_cfg),
                    OBJECTIVE_ATTR: {"metric": self.config.get("optimized_metric"),
                                     "classes": _container(self.config.get("optimized_classes"))}}
        with worker_lock(location):
            storage = open_storage(location)
            study = open_study(storage, location, self.study_name, self.direction,
                               _build(self.pruner_cfg), settings)
            worker = int(study.user_attrs.get(WORKERS_ATTR, 0))
            study.set_user_attr(WORKERS_ATTR, worker + 1)
        if (sampler := self._sampler(worker, locked=lock_path(location) is not None)) is not None:
            study.sampler = sampler
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        shown = redact(location)
        log.info("Optuna study %r in %s: %d of %d trials exist; this worker runs trials until "
                 "the budget is used (optuna-dashboard %s).", self.study_name, shown,
                 len(counted(study.get_trials(deepcopy=False))), self.n_trials, shown)
        self._write_study_file(study, shown)
        # Trials open the study themselves (pruning): a URL with a password reaches them
        # through the environment, not through their saved configs.
        job_location = location
        if shown != location:
            os.environ[STORAGE_ENV] = location
            job_location = f"env:{STORAGE_ENV}"

        returns: list[JobReturn] = []
        waiting_logged = False
        while True:
            batch = self._ask(study, storage, location)
            if not batch:
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not running:
                    break
                if not waiting_logged:  # they may die and be requeued: stay until they end
                    log.info("Budget used; waiting for trials %s of other workers to end.",
                             [t.number for t in running])
                    waiting_logged = True
                time.sleep(self.heartbeat_s)
                continue
            waiting_logged = False
            values = [space.sample(trial) for trial in batch]
            jobs = [[*fixed, *space.overrides(v),
                     f"++optuna.storage={format_value(job_location)}",
                     f"++optuna.study_name={format_value(self.study_name)}",
                     f"++optuna.trial={trial.number}", f"hydra.sweep.subdir={trial.number}"]
                    for trial, v in zip(batch, values, strict=True)]
            for trial, v in zip(batch, values, strict=True):
                trial.set_user_attr(OVERRIDES_ATTR, [
                    a for a in [*fixed, *space.overrides(v)] if not a.startswith(NOT_REPRODUCED)])
            with Heartbeat(batch, self.heartbeat_s):
                try:
                    results: list[JobReturn | None] = list(
                        self.launcher.launch(jobs, initial_job_idx=batch[0].number))
                except Exception as err:  # a launcher's job died (e.g. SLURM OOM, scancel)
                    log.error("The launcher failed (%s: %s); reading each trial's outcome "
                              "from its status.json.", type(err).__name__, err)
                    results = [None] * len(batch)
            for trial, result in zip(batch, results, strict=True):
                self._tell(study, trial, result)
            returns += [r for r in results if r is not None]
            self._write_study_file(study, shown)
            self._check_failure_rate(study)
        log.info("Study %r: budget of %d trials used.", self.study_name, self.n_trials)
        return returns

    def _ask(self, study: optuna.Study, storage: BaseStorage,
             location: str) -> list[optuna.Trial]:
        """Up to ``n_jobs`` trials of the budget left (none: the sweep is done)."""
        with worker_lock(location):
            requeue_stale_trials(study, storage, self.stale_after_s, self.max_retries)
            batch = []
            for _ in range(min(self.n_jobs, free_slots(study, self.n_trials))):
                trial = study.ask()
                trial.set_user_attr(WORKER_ATTR, worker_record())
                if is_surplus(study, trial, self.n_trials):
                    break
                batch.append(trial)
        return batch

    def _tell(self, study: optuna.Study, trial: optuna.Trial,
              result: JobReturn | None) -> None:
        """Record the job's outcome: its value, PRUNED, or FAIL with the error. Without a
        JobReturn (the launcher failed), from the job's status.json."""
        value = _outcome(result) if result is not None else _status_outcome(
            self.sweep_dir / str(trial.number))
        if _is_number(value):
            state, values = TrialState.COMPLETE, float(value)
            message = f"{self.config.get('optimized_metric')} = {value:.4f}"
        elif isinstance(value, optuna.TrialPruned):
            state, values, message = TrialState.PRUNED, None, f"pruned ({value})"
        else:
            state, values = TrialState.FAIL, None
            error = (f"{type(value).__name__}: {value}" if isinstance(value, BaseException)
                     else f"the job returned {value!r}, not a number (is optimized_metric "
                          f"logged?)")
            with contextlib.suppress(ValueError, RuntimeError):
                trial.set_user_attr(ERROR_ATTR, error[:2000])
            message = "failed: " + (error.splitlines() or [""])[0]
        told = study.tell(trial, values, state=state, skip_if_finished=True)
        if told.state != state:  # a worker took it for dead meanwhile and requeued it
            log.warning("Trial %d %s, but the study had already marked it %s (its retry "
                        "runs it again).", trial.number, message, told.state.name)
        else:
            log.info("Trial %d: %s", trial.number, message)

    def _check_failure_rate(self, study: optuna.Study) -> None:
        done = [t for t in counted(study.get_trials(deepcopy=False)) if t.state.is_finished()]
        failed = sum(t.state == TrialState.FAIL for t in done)
        if done and failed / len(done) > self.max_failure_rate:
            raise RuntimeError(
                f"{failed} of {len(done)} finished trials failed (hydra.sweeper."
                f"max_failure_rate={self.max_failure_rate}); see the trials' status.json.")

    # ------------------------------------------------------------------ set-up and checks

    def _sampler(self, worker: int, locked: bool) -> optuna.samplers.BaseSampler | None:
        """The configured sampler (None: Optuna's default). Its seed is offset so that a
        second worker, or a resumed sweep, does not repeat the first one's draws: by the
        worker's index in the study (exact under the lock file of a file storage), and for
        server storages, where workers may read the same index, also by host, boot, pid
        namespace and pid (:func:`~segohem.sweep.workers.worker_tag`: containers sharing a
        hostname may share pids too)."""
        if self.sampler_cfg is None:
            return None
        cfg = _container(self.sampler_cfg)
        if isinstance(cfg.get("seed"), int):
            offset = worker
            if not locked:
                tag = worker_tag().encode()
                offset += int(hashlib.sha1(tag).hexdigest()[:7], 16) if worker else 0
            cfg["seed"] += offset
        return _build(cfg)

    def _write_study_file(self, study: optuna.Study, location: str) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = None
        if complete:
            trial = study.best_trial
            best = {"number": trial.number, "value": trial.value, "params": trial.params,
                    "command": reproduce_command(trial)}
        info = {"study_name": self.study_name, "storage": location, "direction": self.direction,
                "n_trials": self.n_trials, "best": best}
        path = self.sweep_dir / STUDY_FILE
        path.write_text(yaml.safe_dump(info, sort_keys=False))


def _outcome(result: JobReturn) -> Any:
    """The job's return value, or the exception it raised."""
    if result.status == JobStatus.COMPLETED:
        return result.return_value
    return result._return_value  # Hydra keeps the job's exception here (no public getter)


def _status_outcome(job_dir: Path) -> Any:
    """The outcome a job wrote to its status.json (value, TrialPruned or an exception)."""
    status = read_job_status(job_dir) or {}
    if status.get("status") == "COMPLETED":
        return status.get("return_value")
    error = status.get("error") or {}
    if status.get("status") == "PRUNED":
        return optuna.TrialPruned(error.get("message", ""))
    return RuntimeError(describe(status) if status else
                        f"{job_dir}: the job left no status.json (it never started, or its "
                        f"node was lost)")


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _build(cfg: Any) -> Any:
    return instantiate(cfg) if cfg else None
