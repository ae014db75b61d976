"""What an Optuna sweep's study holds, read from the study itself (not the job folders).

A sweep run with ``hydra/sweeper=optuna_study`` leaves ``optuna_study.yaml`` in its sweep dir
(storage and study name). :func:`study_report` turns the study into a table of trials (state,
value, parameters, error), the command line that reproduces the best trial, and Optuna's own
plots (optimisation history, parameter importances) as PNG files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import matplotlib
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from segohem.sweep.storage import STORAGE_ENV, StudyError, open_storage
from segohem.sweep.study import (
    ERROR_ATTR,
    PRUNED_AT_ATTR,
    RETRY_OF_ATTR,
    STUDY_FILE,
    SURPLUS_ATTR,
    reproduce_command,
    retried,
)

HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"


def load_sweep_study(sweep: Path) -> optuna.Study | None:
    """The study of ``sweep`` (from its ``optuna_study.yaml``), or None for a sweep that
    was not an Optuna study (a grid); :class:`StudyError` when the storage cannot be read."""
    path = Path(sweep) / STUDY_FILE
    if not path.is_file():
        return None
    info = yaml.safe_load(path.read_text()) or {}
    location = str(info["storage"])
    if ":***@" in location:  # the sweeper does not write passwords to files
        if STORAGE_ENV not in os.environ:
            raise StudyError(f"{path}: the storage URL {location} has its password left out; "
                             f"set {STORAGE_ENV} to the full URL to read the study.")
        location = os.environ[STORAGE_ENV]
    storage = open_storage(location)
    try:
        return optuna.load_study(study_name=str(info["study_name"]), storage=storage)
    except KeyError as err:
        raise StudyError(f"{path}: study {info.get('study_name')!r} not found in "
                         f"{info.get('storage')} ({err}).") from None


def trial_state(trial: FrozenTrial, requeued: set[int]) -> str:
    """``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``, or ``REQUEUED`` /
    ``SURPLUS`` for trials the sweeper set aside (a dead worker's, a race's extra)."""
    if trial.number in requeued:
        return "REQUEUED"
    if trial.user_attrs.get(SURPLUS_ATTR):
        return "SURPLUS"
    return trial.state.name


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial in number order: ``trial``, ``state``, ``value``, one column per
    parameter (absent: a conditional parameter the trial did not get), ``pruned at epoch``,
    ``retry of`` and ``error``."""
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = [{"trial": t.number, "state": trial_state(t, again), "value": t.value,
             **{k: t.params.get(k) for k in keys},
             "pruned at epoch": t.user_attrs.get(PRUNED_AT_ATTR),
             "retry of": t.user_attrs.get(RETRY_OF_ATTR),
             "error": t.user_attrs.get(ERROR_ATTR, "")} for t in trials]
    return pd.DataFrame(rows, columns=["trial", "state", "value", *keys, "pruned at epoch",
                                       "retry of", "error"])


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")[:100]


def study_report(study: optuna.Study, out: Path) -> tuple[str, list[Path]]:
    """Markdown (counts by state, the best trial and its command, the trials table) and the
    plots written into ``out``."""
    frame = trials_frame(study)
    counts = frame["state"].value_counts()
    lines = [f"## Optuna study {study.study_name!r}", "",
             ", ".join(f"{n} {state.lower()}" for state, n in counts.items()) + ".", ""]
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        lines += [f"Best: trial {best.number}, value {best.value:.4f} "
                  f"({study.direction.name.lower()}d). Reproduce it:", "",
                  "```bash", reproduce_command(best), "```", ""]
    shown = frame.drop(columns=[c for c in ("pruned at epoch", "retry of", "error")
                                if frame[c].isna().all() or (frame[c] == "").all()])
    lines.append(shown.map(_cell).to_markdown(index=False, disable_numparse=True))
    return "\n".join(lines) + "\n", write_plots(study, out)


def write_plots(study: optuna.Study, out: Path) -> list[Path]:
    """Optuna's optimisation history and parameter importances (matplotlib backend) as PNG
    files in ``out``; the importances need two complete trials."""
    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as optuna_plots  # imports pyplot: Agg first

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = [(HISTORY_PLOT, optuna_plots.plot_optimization_history)]
    if len(complete) >= 2 and any(t.params for t in complete):
        # PED-ANOVA: Optuna's default since 5.0; fANOVA (the default before) needs scikit-learn.
        plots.append((IMPORTANCE_PLOT, lambda st: optuna_plots.plot_param_importances(
            st, evaluator=optuna.importance.PedAnovaImportanceEvaluator())))
    written = []
    for name, plot in plots:
        axes = plot(study)
        axes.figure.tight_layout()
        axes.figure.savefig(out / name, dpi=120)
        pyplot.close(axes.figure)
        written.append(out / name)
    return written
