"""The work of ``hydra/sweeper=optuna_study``: Optuna (any version >= 4) through its
ask-and-tell API (the Hydra plugin, :mod:`hydra_plugins.segohem_sweeper`, only delegates here).

Each worker (one ``segohem-train -m hparams_search=...`` process; start the same command on
several machines to share the work) loops: requeue trials of dead workers, ask as many trials
as ``n_jobs`` and the budget allow, sample the search space (:mod:`segohem.search_space`),
launch one Hydra job per trial through the configured launcher (basic, joblib, submitit...),
tell the study each job's outcome (value, pruned or failed). The study lives in a persistent
storage (:mod:`segohem.optuna_study`), so a killed sweep resumes and optuna-dashboard can open it.

Each trial's job gets ``++optuna.storage``, ``++optuna.study_name`` and ``++optuna.trial`` (the
pruning callback reports to that trial) and runs in ``<sweep dir>/<trial number>``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from segohem.optuna_study import (
    ERROR_ATTR,
    OBJECTIVE_ATTR,
    OVERRIDES_ATTR,
    PRUNER_ATTR,
    SPACE_ATTR,
    STUDY_FILE,
    WORKER_ATTR,
    Heartbeat,
    StudyError,
    counted,
    free_slots,
    is_surplus,
    open_study,
    reproduce_command,
    requeue_stale_trials,
    storage_location,
    worker_lock,
    worker_record,
)
from segohem.search_space import SearchSpace, format_value

log = logging.getLogger(__name__)

WORKERS_ATTR = "segohem_workers"
NOT_REPRODUCED = ("hparams_search=", "hydra.", "hydra/", "+hydra", "++hydra", "optuna.",
                  "++optuna.")


class StudySweep:
    """One worker of a sweep; options: see conf/hydra/sweeper/optuna_study.yaml."""

    def __init__(self, study_name: str, storage: str | None, direction: str, n_trials: int,
                 n_jobs: int, sampler: Any, pruner: Any, params: Any, when: Any = None,
                 max_failure_rate: float = 1.0, heartbeat_s: float = 60.0,
                 stale_after_s: float = 900.0) -> None:
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

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    # ------------------------------------------------------------------ the worker's loop

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        fixed, space = self._search_space(arguments)
        self._check_keys(fixed, space)
        location = storage_location(self.storage, self.sweep_dir)
        settings = {SPACE_ATTR: space.describe(),
                    PRUNER_ATTR: _container(self.pruner_cfg),
                    OBJECTIVE_ATTR: {"metric": self.config.get("optimized_metric"),
                                     "classes": _container(self.config.get("optimized_classes"))}}
        with worker_lock(location):
            study = open_study(location, self.study_name, self.direction, None,
                               _build(self.pruner_cfg), settings)
            worker = int(study.user_attrs.get(WORKERS_ATTR, 0))
            study.set_user_attr(WORKERS_ATTR, worker + 1)
        study.sampler = self._sampler(worker)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Optuna study %r in %s: %d of %d trials exist; this worker runs trials until "
                 "the budget is used (optuna-dashboard %s).", self.study_name, location,
                 len(counted(study.get_trials(deepcopy=False))), self.n_trials, location)
        self._write_study_file(study, location)

        returns: list[JobReturn] = []
        while batch := self._ask(study, location):
            values = [space.sample(trial) for trial in batch]
            jobs = [[*fixed, *space.overrides(v), f"++optuna.storage={format_value(location)}",
                     f"++optuna.study_name={format_value(self.study_name)}",
                     f"++optuna.trial={trial.number}", f"hydra.sweep.subdir={trial.number}"]
                    for trial, v in zip(batch, values, strict=True)]
            for trial, v in zip(batch, values, strict=True):
                trial.set_user_attr(OVERRIDES_ATTR, [
                    a for a in [*fixed, *space.overrides(v)] if not a.startswith(NOT_REPRODUCED)])
            with Heartbeat(batch, self.heartbeat_s):
                results = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
            for trial, result in zip(batch, results, strict=True):
                self._tell(study, trial, result)
            returns += results
            self._write_study_file(study, location)
            self._check_failure_rate(study)
        log.info("Study %r: budget of %d trials used.", self.study_name, self.n_trials)
        return returns

    def _ask(self, study: optuna.Study, location: str) -> list[optuna.Trial]:
        """Up to ``n_jobs`` trials of the budget left (none: the sweep is done)."""
        with worker_lock(location):
            requeue_stale_trials(study, self.stale_after_s)
            batch = []
            for _ in range(min(self.n_jobs, free_slots(study, self.n_trials))):
                trial = study.ask()
                trial.set_user_attr(WORKER_ATTR, worker_record())
                if is_surplus(study, trial, self.n_trials):
                    break
                batch.append(trial)
        return batch

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
        value = result._return_value
        if result.status == JobStatus.COMPLETED and _is_number(value):
            study.tell(trial, float(value))
            log.info("Trial %d: %s = %.4f", trial.number, self.config.get("optimized_metric"),
                     value)
            return
        if isinstance(value, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("Trial %d pruned (%s)", trial.number, value)
            return
        error = (f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else
                 f"the job returned {value!r}, not a number (is optimized_metric logged?)")
        trial.set_user_attr(ERROR_ATTR, error[:2000])
        study.tell(trial, state=TrialState.FAIL)
        log.warning("Trial %d failed: %s", trial.number, error.splitlines()[0])

    def _check_failure_rate(self, study: optuna.Study) -> None:
        done = [t for t in counted(study.get_trials(deepcopy=False)) if t.state.is_finished()]
        failed = sum(t.state == TrialState.FAIL for t in done)
        if done and failed / len(done) > self.max_failure_rate:
            raise RuntimeError(
                f"{failed} of {len(done)} finished trials failed (hydra.sweeper."
                f"max_failure_rate={self.max_failure_rate}); see the trials' status.json.")

    # ------------------------------------------------------------------ set-up and checks

    def _search_space(self, arguments: Sequence[str]) -> tuple[list[str], SearchSpace]:
        """Command-line arguments that are sweeps (``loss.thresh=interval(0.5,0.9)``) join
        ``params``; the others are passed to every trial as they are."""
        params = dict(self.params)
        fixed = []
        for override in OverridesParser.create().parse_overrides(list(arguments)):
            if override.is_sweep_override():
                key = override.get_key_element()
                params[key] = override.input_line.split("=", 1)[1]
            else:
                fixed.append(override.input_line)
        return fixed, SearchSpace.from_config(params, self.when)

    def _check_keys(self, fixed: list[str], space: SearchSpace) -> None:
        """Compose the config as the trials will, once per condition and per choice of a
        config group: every parameter must name a key (or group) of the config it gets."""
        for param in space.params:
            assignments = space.conditioning_values(param)
            choices = getattr(param.distribution, "choices", None)
            if param.key not in self._groups():
                choices = None  # a value: its existence is checked, not each value
            for assignment in assignments:
                values = [assignment | {param.key: c} for c in choices] if choices else [
                    assignment]
                for value_set in values:
                    self._compose_and_check(fixed, space, value_set, param.key)
        for key in space.fixed:
            self._compose_and_check(fixed, space, {}, key)

    def _compose_and_check(self, fixed: list[str], space: SearchSpace,
                           values: Mapping[str, Any], key: str) -> None:
        # The checked key's own value is left out unless it is a config group: a missing
        # key is reported below with the keys that exist.
        overrides = [*fixed, *(f"{k}={format_value(v)}" for k, v in values.items()
                               if k != key or k in self._groups())]
        if key in space.fixed:
            overrides.append(f"{key}={space.fixed[key]}")
        where = ", ".join(f"{k}={format_value(v)}" for k, v in values.items()
                          if k != key or k in self._groups()) or "as given"
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        except HydraException as err:
            raise StudyError(f"hydra.sweeper.params.{key}: the config does not compose with "
                             f"{where}: {err}") from None
        bare = key.lstrip("+")
        if key.startswith("+") or bare in cfg.hydra.runtime.choices:
            return
        if OmegaConf.select(cfg, bare, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            parent = bare.rpartition(".")[0]
            node = OmegaConf.select(cfg, parent) if parent else cfg
            known = sorted(node.keys()) if isinstance(node, DictConfig) else []
            raise StudyError(
                f"hydra.sweeper.params.{key}: no key {bare!r} in the config ({where}). "
                f"Keys of {parent or 'the config'}: {known}. Fix the name, add a "
                f"hydra.sweeper.when condition if it exists only for some choices, or write "
                f"+{bare} to add a new key.")

    def _groups(self) -> set[str]:
        return set(self.config.hydra.runtime.choices.keys())

    def _sampler(self, worker: int) -> optuna.samplers.BaseSampler | None:
        """The configured sampler; its seed is offset by the worker's index in the study,
        so a second worker (or a resumed sweep) does not repeat the first one's draws."""
        if self.sampler_cfg is None:
            return None
        cfg = _container(self.sampler_cfg)
        if worker and isinstance(cfg.get("seed"), int):
            cfg["seed"] += worker
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


_ABSENT = object()


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _build(cfg: Any) -> Any:
    return instantiate(cfg) if cfg else None
