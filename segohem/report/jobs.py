"""The jobs of a ``segohem-train`` multirun (grid or Optuna sweep), read from its sweep dir:
each job folder's overrides (``.hydra/overrides.yaml``), resolved config
(``.hydra/config.yaml``), ``best`` or ``last`` validation epoch (``metrics.json``,
:mod:`segohem.report.metrics_json`) and outcome (``status.json``,
:mod:`segohem.report.job_status`). A job without
``metrics.json`` (crashed, killed, still running) is ``failed``, or ``incomplete`` when its
TensorBoard scalars (``val/mIoU_best``, ``val/mIoU``, ``val/IoU/<class>``; tensorboard's
``EventAccumulator``) hold validation results.

Used by :mod:`segohem.report.sweep_summary` (table and plot of a sweep) and
:mod:`segohem.report.loss_comparison` (losses over seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segohem.report.job_status import describe, read_job_status
from segohem.report.metrics_json import read_report, validated_epoch

ALWAYS_KEYS = ("loss.thresh", "loss.n_min")
"""Parameter columns of every sweep (the OHEM knobs), swept or not."""
TRIAL_KEYS = ("optuna.", "hydra.")
"""Overrides that differ between jobs without being parameters (an Optuna sweep's trial)."""


class SweepError(Exception):
    """The folder is not a readable sweep dir (or the arguments do not fit it)."""


class _Missing:
    """A parameter the job folder does not tell (no config.yaml value, no override)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Job:
    """One job folder: ``overrides`` (key -> text as given; None without overrides.yaml),
    ``result`` (a validation epoch: ``mIoU``, ``mAcc``, ``aAcc`` as fractions, ``epoch``,
    ``IoU`` by class) from ``source`` (``metrics.json``, ``tensorboard`` or ""), ``status``
    (``ok``, ``pruned``, ``incomplete``, ``failed``) and ``params`` (column key -> value)."""

    name: str
    path: Path
    overrides: dict[str, str] | None
    config: dict[str, Any] | None
    result: dict[str, Any] | None = None
    source: str = ""
    status: str = "ok"
    error: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def job_dirs(sweep: Path) -> list[Path]:
    """Job folders of ``sweep`` in job-number order; :class:`SweepError` if there are none."""
    if not sweep.is_dir():
        raise SweepError(f"{sweep}: no such folder")
    markers = (".hydra", "status.json", "train.log", "metrics.json")
    jobs = [d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith(".")
            and any((d / m).exists() for m in markers)]
    if not any((d / ".hydra").is_dir() for d in jobs):
        hint = (" It holds .hydra/ itself: it is a single run's folder; pass the folder "
                "that holds the numbered job folders." if (sweep / ".hydra").is_dir() else "")
        raise SweepError(f"{sweep} is not a sweep dir: no job folders with a .hydra/ "
                         f"subfolder in it (expected <sweep>/0/.hydra, <sweep>/1/.hydra, ...)."
                         f"{hint}")
    return sorted(jobs, key=lambda d: (0, int(d.name), "") if d.name.isdigit()
                  else (1, 0, d.name))


def read_yaml(path: Path) -> Any:
    """The YAML file's content, or None when it is missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def read_overrides(job_dir: Path) -> dict[str, str] | None:
    """``loss.thresh=0.5`` -> ``{"loss.thresh": "0.5"}``; ``+``/``++``/``~`` prefixes go."""
    lines = read_yaml(job_dir / ".hydra" / "overrides.yaml")
    if not isinstance(lines, list):
        return None
    overrides = {}
    for line in map(str, lines):
        key, sep, value = line.partition("=")
        deleted, key = key.startswith("~"), key.lstrip("+~").strip()
        if key and (sep or deleted):
            overrides[key] = value.strip() if sep else "<deleted>"
    return overrides


def config_value(config: dict[str, Any] | None, key: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``, or :data:`MISSING`."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def param_value(job: Job, key: str) -> Any:
    """The job's value of ``key``: the resolved config's, else the override's text as YAML
    (``null`` -> None, ``1e-3`` -> 0.001)."""
    value = config_value(job.config, key)
    if value is not MISSING and not isinstance(value, dict) and not (
            isinstance(value, str) and value.startswith("${")):
        return value
    if not job.overrides or key not in job.overrides:
        return MISSING
    try:
        value = yaml.safe_load(job.overrides[key])
    except yaml.YAMLError:
        return job.overrides[key]
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def read_tensorboard(job_dir: Path, which: str) -> dict[str, Any] | None:
    """The best (highest ``val/mIoU_best``) or last validation in the job's event files."""
    scalars = []
    for folder in sorted({f.parent for f in job_dir.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
        scalars += [(e.step, tag, e.value) for tag in events.Tags()["scalars"]
                    for e in events.Scalars(tag)]
    if not scalars:
        return None
    table = pd.DataFrame(scalars, columns=["step", "tag", "value"]).pivot_table(
        index="step", columns="tag", values="value", aggfunc="last")  # NaN values dropped
    best = table["val/mIoU_best"].dropna() if "val/mIoU_best" in table else pd.Series()
    series = table["val/mIoU"].dropna() if "val/mIoU" in table else best
    if series.empty:
        return None
    if which == "last":
        step = series.index.max()
        value = series[step]
    else:
        value = best.max() if not best.empty else series.max()
        step = (series - value).abs().idxmin()  # the first step with that value
    row = table.loc[step].dropna()
    epoch = row.get("epoch")
    return {"mIoU": float(value), "mAcc": row.get("val/mAcc"), "aAcc": row.get("val/aAcc"),
            "epoch": None if epoch is None else int(epoch),
            "IoU": {tag.removeprefix("val/IoU/"): v for tag, v in row.items()
                    if tag.startswith("val/IoU/")}}


def read_job(job_dir: Path, which: str = "best") -> Job:
    """The job's parameters, its ``which`` validation epoch and its status."""
    job = Job(job_dir.name, job_dir, read_overrides(job_dir),
              c if isinstance(c := read_yaml(job_dir / ".hydra" / "config.yaml"), dict)
              else None)
    entry = validated_epoch(read_report(job_dir), which)
    status = read_job_status(job_dir)
    if entry is not None:
        job.result, job.source = entry, "metrics.json"
        if status is not None and status.get("status") == "PRUNED":
            job.status, job.error = "pruned", describe(status)
        return job
    job.result = read_tensorboard(job_dir, which)
    job.source = "tensorboard" if job.result else ""
    failed = status is not None and status.get("status") == "FAILED"
    job.error = describe(status) if failed else "no metrics.json; " + describe(status)
    job.status = "failed" if failed or job.result is None else "incomplete"
    return job


def read_sweep(sweep: Path, which: str = "best") -> list[Job]:
    """Every job of ``sweep`` with its parameters (:func:`columns`) filled in."""
    jobs = [read_job(d, which) for d in job_dirs(sweep)]
    keys = columns(jobs)
    for job in jobs:
        job.params = {key: param_value(job, key) for key in keys}
    return jobs


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in order of first appearance."""
    known = [job.overrides for job in jobs if job.overrides is not None]
    keys = dict.fromkeys(key for overrides in known for key in overrides
                         if not key.startswith(TRIAL_KEYS))
    return [key for key in keys if len({o.get(key) for o in known}) > 1]


def columns(jobs: Sequence[Job]) -> list[str]:
    """Parameter columns: ``loss.thresh``, ``loss.n_min``, then the other swept keys."""
    return [*ALWAYS_KEYS, *(k for k in swept_keys(jobs) if k not in ALWAYS_KEYS)]
