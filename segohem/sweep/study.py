"""A persistent Optuna study shared by every worker of a sweep: checks, trial budget, reports.

Where the study lives is :mod:`segohem.sweep.storage`. Several workers (the same command
started on several machines, or a SLURM array) pull trials from one study until ``n_trials``
trials exist. Counting and asking happen under a lock file next to a file storage
(:func:`~segohem.sweep.storage.worker_lock`); for server storages a trial asked beyond the
budget in a race is marked ``segohem_surplus`` and failed without training, so exactly
``n_trials`` trials run.

Which worker is dead, and how its trials are failed and queued again (``segohem_retry_of``),
is :mod:`segohem.sweep.workers`: re-running a killed sweep's command resumes it without losing
or repeating trials, and a worker that finds the budget used waits for the other workers'
running trials, so that it can take over those whose worker dies.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from segohem.sweep.storage import StudyError, open_storage, redact, resolve_location

STUDY_FILE = "optuna_study.yaml"
"""Written into the sweep dir by the sweeper: ``study_name``, ``storage``, ``best``..."""
SURPLUS_ATTR = "segohem_surplus"
RETRY_OF_ATTR = "segohem_retry_of"
ERROR_ATTR = "segohem_error"
PRUNED_AT_ATTR = "segohem_pruned_at_epoch"
OVERRIDES_ATTR = "segohem_overrides"
SPACE_ATTR = "segohem_search_space"
PRUNER_ATTR = "segohem_pruner"
OBJECTIVE_ATTR = "segohem_objective"


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
