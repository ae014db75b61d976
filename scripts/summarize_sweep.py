"""Summarise a ``segohem-train`` multirun (grid or Optuna sweep) in one table and one plot.

A sweep such as::

    segohem-train -m loss.thresh=0.5,0.6,0.7,0.8 loss.n_min=null,0.05
    segohem-train hparams_search=ohem_optuna

writes one folder per job under the sweep dir (``multirun/<date>/<time>/`` by default, or
``hydra.sweep.dir``), next to ``multirun.yaml`` (and ``optimization_results.yaml`` for
Optuna). This script reads, for every job folder ``<sweep>/<job>/``:

* ``.hydra/overrides.yaml``: every override key whose value differs between jobs becomes a
  column; ``loss.thresh`` and ``loss.n_min`` are always columns (from ``.hydra/config.yaml``
  when they were not overridden);
* ``metrics.json``: mIoU, mAcc, aAcc, epoch and per-class IoU of the ``best`` validation
  epoch (``--metric last``: of the last one). Without ``metrics.json`` (a crashed, killed or
  still running job) the values come from the TensorBoard event files in ``tensorboard/``
  (``val/mIoU_best``, ``val/mIoU``, ``val/IoU/<class>``) when they hold any;
* ``status.json`` (:mod:`segohem.job_status`): for a job without ``metrics.json``, why: the
  exception of a failed job, or that it is still running / was killed. Such jobs are rows with
  status ``failed`` (``incomplete`` when it did not fail but TensorBoard has validation
  results), never dropped.

The rare-class columns are the IoU of the ``--rare`` classes, by default of the 2 classes
with the lowest mean IoU across jobs.

It writes into ``--out`` (default: the sweep dir):

* ``summary.csv``: one row per job, sorted by mIoU (descending; failed jobs last). Metrics
  are percentages (``mIoU``, ``mAcc``, ``aAcc``, ``IoU.<class>``); ``source`` says where they
  came from, ``error`` why a job failed;
* ``summary.md``: the same as a Markdown table (percentages with 1 decimal), also printed;
* ``miou_vs_thresh.png``: mIoU (%) against ``loss.thresh``, one line per ``loss.n_min``
  value; when the sweep did not vary the threshold, against the first swept key instead
  (the plot title and the printed output say so).

Run::

    python scripts/summarize_sweep.py multirun/2025-01-01/12-00-00
    python scripts/summarize_sweep.py <sweep dir> --out reports/ --rare line dot --metric last

To compare the jobs' curves, ``tensorboard --logdir <sweep dir>`` shows every job side by
side; its HPARAMS tab lists each job's hyperparameters with its final metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segohem.job_status import describe, read_job_status
from segohem.report import read_report, validated_epoch

ALWAYS_KEYS = ("loss.thresh", "loss.n_min")
SUMMARY_METRICS = ("mIoU", "mAcc", "aAcc")
DEFAULT_RARE = 2
PLOT_NAME = "miou_vs_thresh.png"
MARKERS = "osD^v<>"
MD_ERROR_CHARS = 100


class SweepError(Exception):
    """The folder is not a readable sweep dir (or the arguments do not fit it)."""


class _Missing:
    """A parameter the job folder does not tell (no config.yaml, no override)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Result:
    """Validation metrics of one job, as fractions in [0, 1] (None: not available)."""

    source: str
    metrics: dict[str, float | None]
    epoch: int | None
    iou: dict[str, float | None]


@dataclass
class Job:
    name: str
    path: Path
    overrides: dict[str, str] | None  # key -> raw override value; None: no overrides.yaml
    config: dict[str, Any] | None
    status: str = "ok"
    result: Result | None = None
    error: str = ""
    params: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def find_job_dirs(sweep: Path) -> list[Path]:
    """Job folders of ``sweep`` in job-number order; raises :class:`SweepError` if none."""
    if not sweep.is_dir():
        raise SweepError(f"{sweep}: no such folder")
    markers = (".hydra", "status.json", "train.log", "metrics.json")
    jobs = [d for d in sweep.iterdir()
            if d.is_dir() and not d.name.startswith(".")
            and any((d / m).exists() for m in markers)]
    if not any((d / ".hydra").is_dir() for d in jobs):
        hint = (" It holds .hydra/ itself: it is a single run's folder; pass the folder "
                "that holds the numbered job folders." if (sweep / ".hydra").is_dir() else "")
        raise SweepError(f"{sweep} is not a sweep dir: no job folders with a .hydra/ "
                         f"subfolder in it (expected <sweep>/0/.hydra, <sweep>/1/.hydra, ...)."
                         f"{hint}")
    return sorted(jobs, key=_job_order)


def _job_order(path: Path) -> tuple[int, int, str]:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def parse_override(text: str) -> tuple[str, str] | None:
    """``"loss.thresh=0.5"`` -> ``("loss.thresh", "0.5")``; ``+``/``++``/``~`` prefixes go."""
    key, sep, value = str(text).partition("=")
    deleted = key.startswith("~")
    key = key.lstrip("+~").strip()
    if not key or not (sep or deleted):
        return None
    return key, value.strip() if sep else "<deleted>"


def read_overrides(job_dir: Path) -> dict[str, str] | None:
    lines = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
    if not isinstance(lines, list):
        return None
    pairs = (parse_override(line) for line in lines)
    return dict(pair for pair in pairs if pair is not None)


def read_config(job_dir: Path) -> dict[str, Any] | None:
    config = _read_yaml(job_dir / ".hydra" / "config.yaml")
    return config if isinstance(config, dict) else None


def config_value(config: dict[str, Any] | None, key: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``, or :data:`MISSING`."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def parse_value(raw: str) -> Any:
    """An override's value as YAML (``null`` -> None, ``0.5`` -> 0.5); ``1e-3`` -> 0.001."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def param_value(job: Job, key: str) -> Any:
    """The job's value of ``key``: the resolved config's, else the override's own text."""
    value = config_value(job.config, key)
    usable = value is not MISSING and not isinstance(value, dict) and not (
        isinstance(value, str) and value.startswith("${"))
    if usable:
        return value
    if job.overrides is not None and key in job.overrides:
        return parse_value(job.overrides[key])
    return MISSING


def read_metrics_json(job_dir: Path, which: str) -> Result | None:
    """The ``which`` (best / last) validation epoch of the job's ``metrics.json``, or None."""
    entry = validated_epoch(read_report(job_dir), which)
    if entry is None:
        return None
    epoch = entry.get("epoch")
    return Result(source="metrics.json",
                  metrics={k: _float(entry.get(k)) for k in SUMMARY_METRICS},
                  epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
                  iou={str(k): _float(v) for k, v in (entry.get("IoU") or {}).items()})


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def read_scalars(job_dir: Path) -> dict[str, dict[int, float]]:
    """All non-NaN scalars of the job's TensorBoard event files: tag -> step -> value."""
    event_dirs = sorted({f.parent for f in job_dir.rglob("events.out.tfevents.*")})
    if not event_dirs:
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[int, float]] = {}
    for event_dir in event_dirs:
        accumulator = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                if not math.isnan(event.value):
                    scalars.setdefault(tag, {})[event.step] = float(event.value)
    return scalars


def read_tensorboard(job_dir: Path, which: str) -> Result | None:
    """Metrics of the best (``val/mIoU_best``) or last validation from the event files."""
    scalars = read_scalars(job_dir)
    miou, best = scalars.get("val/mIoU", {}), scalars.get("val/mIoU_best", {})
    series = miou or best
    if not series:
        return None
    if which == "last":
        step = max(series)
        value = series[step]
    else:
        value = max(best.values()) if best else max(series.values())
        step = min(series, key=lambda s: (abs(series[s] - value), s))

    def at(tag: str) -> float | None:
        return scalars.get(tag, {}).get(step)

    epoch = at("epoch")
    prefix = "val/IoU/"
    return Result(source="tensorboard",
                  metrics={"mIoU": value, "mAcc": at("val/mAcc"), "aAcc": at("val/aAcc")},
                  epoch=None if epoch is None else int(epoch),
                  iou={tag[len(prefix):]: values.get(step) for tag, values in scalars.items()
                       if tag.startswith(prefix)})


def load_job(job_dir: Path, which: str) -> Job:
    job = Job(name=job_dir.name, path=job_dir, overrides=read_overrides(job_dir),
              config=read_config(job_dir))
    job.result = read_metrics_json(job_dir, which)
    if job.result is None:
        job.result = read_tensorboard(job_dir, which)
        status = read_job_status(job_dir)
        failed = status is not None and status.get("status") == "FAILED"
        job.error = "no metrics.json; " + describe(status)
        if failed:
            job.error = describe(status)
        job.status = "failed" if failed or job.result is None else "incomplete"
    return job


def load_sweep(sweep: Path, which: str) -> list[Job]:
    jobs = [load_job(d, which) for d in find_job_dirs(sweep)]
    keys = columns(jobs)
    for job in jobs:
        job.params = {key: param_value(job, key) for key in keys}
    return jobs


# --------------------------------------------------------------------------- analysis


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in order of first appearance."""
    known = [job.overrides for job in jobs if job.overrides is not None]
    keys = list(dict.fromkeys(key for overrides in known for key in overrides))
    return [key for key in keys if len({o.get(key) for o in known}) > 1]


def columns(jobs: Sequence[Job]) -> list[str]:
    """Parameter columns: ``loss.thresh``, ``loss.n_min``, then the other swept keys."""
    return [*ALWAYS_KEYS, *(k for k in swept_keys(jobs) if k not in ALWAYS_KEYS)]


def class_names(jobs: Sequence[Job]) -> list[str]:
    names: dict[str, None] = {}
    for job in jobs:
        configured = config_value(job.config, "dataset.class_names")
        if isinstance(configured, list):
            names.update(dict.fromkeys(map(str, configured)))
        if job.result is not None:
            names.update(dict.fromkeys(job.result.iou))
    return list(names)


def rare_classes(jobs: Sequence[Job], requested: Sequence[str] | None,
                 count: int = DEFAULT_RARE) -> list[str]:
    """``requested`` (checked against the sweep's classes), else the ``count`` classes with
    the lowest mean IoU across jobs (classes with no IoU anywhere are skipped)."""
    names = class_names(jobs)
    if requested:
        unknown = [name for name in requested if names and name not in names]
        if unknown:
            raise SweepError(f"--rare {' '.join(unknown)}: not a class of this sweep "
                             f"(classes: {', '.join(names)})")
        return list(requested)
    means = {}
    for name in names:
        values = [job.result.iou.get(name) for job in jobs if job.result is not None]
        present = [v for v in values if v is not None]
        if present:
            means[name] = sum(present) / len(present)
    return sorted(means, key=means.__getitem__)[:count]


def sorted_jobs(jobs: Sequence[Job]) -> list[Job]:
    """By mIoU, highest first; jobs without an mIoU last, in job order."""
    def key(item: tuple[int, Job]) -> tuple[bool, float, int]:
        index, job = item
        miou = job.result.metrics.get("mIoU") if job.result is not None else None
        return (miou is None, -(miou or 0.0), index)

    return [job for _, job in sorted(enumerate(jobs), key=key)]


# --------------------------------------------------------------------------- output


def format_param(value: Any, digits: int | None = None) -> str:
    """YAML-like text: None -> ``null``; ``digits`` significant digits for floats."""
    if value is MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}" if digits else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _percent(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(100.0 * value, decimals)


def table_rows(jobs: Sequence[Job], keys: Sequence[str], rare: Sequence[str],
               decimals: int = 3) -> list[dict[str, Any]]:
    """One dict per job (sorted): CSV column -> value (metrics in %, None when absent)."""
    rows = []
    for job in sorted_jobs(jobs):
        result = job.result
        row: dict[str, Any] = {"job": job.name, "status": job.status}
        row.update({key: job.params.get(key, MISSING) for key in keys})
        for metric in SUMMARY_METRICS:
            row[metric] = _percent(result.metrics.get(metric) if result else None, decimals)
        row["epoch"] = result.epoch if result else None
        for name in rare:
            row[f"IoU.{name}"] = _percent(result.iou.get(name) if result else None, decimals)
        row["source"] = result.source if result else ""
        row["error"] = job.error
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: Path) -> None:
    """Parameters as YAML-like text (``null``); absent metrics as empty cells."""
    header = list(rows[0]) if rows else ["job", "status", *keys]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([format_param(row[c]) if c in keys or row[c] is not None else ""
                             for c in header])


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]], keys: Sequence[str],
                   rare: Sequence[str], metric: str) -> str:
    """The rows as a Markdown table: percentages with 1 decimal, ``-`` where absent."""
    with_error = any(row["error"] for row in rows)
    header = ["job", "status", *keys, f"mIoU % ({metric})", "mAcc %", "aAcc %", "epoch",
              *(f"IoU % {name}" for name in rare), *(["error"] if with_error else [])]
    numeric = {"mIoU", "mAcc", "aAcc", "epoch", *(f"IoU.{n}" for n in rare)}
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |",
             "|" + "|".join("---" if name in ("job", "status", "error") else "---:"
                            for name in header) + "|"]
    for row in rows:
        status = row["status"] + (" (tensorboard)" if row["source"] == "tensorboard" else "")
        cells = [row["job"], status, *(format_param(row[k], 4) for k in keys)]
        for column in [*SUMMARY_METRICS, "epoch", *(f"IoU.{n}" for n in rare)]:
            value = row[column]
            cells.append("-" if value is None else
                         str(value) if column == "epoch" or column not in numeric
                         else f"{value:.1f}")
        if with_error:
            error = row["error"]
            cells.append(error if len(error) <= MD_ERROR_CHARS
                         else error[:MD_ERROR_CHARS - 3] + "...")
        lines.append("| " + " | ".join(map(_md_cell, cells)) + " |")
    return "\n".join(lines)


def optuna_line(sweep: Path) -> str:
    """Optuna's own verdict from ``optimization_results.yaml``, or ''."""
    results = _read_yaml(sweep / "optimization_results.yaml")
    if not isinstance(results, dict) or "best_params" not in results:
        return ""
    params = ", ".join(f"{k}={format_param(v, 4)}"
                       for k, v in (results.get("best_params") or {}).items())
    return f"Optuna best (optimization_results.yaml): {results.get('best_value')} with {params}"


def markdown_report(sweep: Path, jobs: Sequence[Job], table: str, rare: Sequence[str],
                    metric: str) -> str:
    counts = {status: sum(job.status == status for job in jobs)
              for status in ("ok", "incomplete", "failed")}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    lines = [f"# Sweep {sweep}", "",
             f"{len(jobs)} jobs ({summary}); metrics of the {metric} validation epoch, in %. "
             f"Rare classes: {', '.join(rare) or '-'}.", ""]
    extra = optuna_line(sweep)
    if extra:
        lines += [extra, ""]
    return "\n".join([*lines, table, ""])


def _group_label(value: Any) -> str:
    if value is None:
        return "n_min=null (valid//16)"
    return "n_min=" + format_param(value, 4)


def plot_axis(jobs: Sequence[Job]) -> tuple[str, str]:
    """(x key, note): ``loss.thresh`` unless only other keys were swept."""
    varied = swept_keys(jobs)
    if "loss.thresh" in varied or not varied:
        return "loss.thresh", ""
    return varied[0], f"loss.thresh was not swept: mIoU is plotted against {varied[0]}"


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, format_param(value))


def plot_miou(jobs: Sequence[Job], metric: str, path: Path) -> str:
    """Line plot of mIoU (%) against the threshold (see :func:`plot_axis`); returns the note."""
    # A bare Figure with the Agg canvas: no pyplot state, no backend switch (safe to call
    # from a notebook without breaking its inline figures).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x_key, note = plot_axis(jobs)
    group_key = "loss.n_min" if x_key != "loss.n_min" else None
    points = [(job.params.get(x_key), job.params.get(group_key) if group_key else MISSING,
               100.0 * job.result.metrics["mIoU"])
              for job in jobs if job.result is not None and job.result.metrics.get("mIoU")
              is not None and job.params.get(x_key) is not MISSING]
    x_values = sorted({format_param(x): x for x, _, _ in points}.values(), key=_sort_key)
    numeric = all(_sort_key(x)[0] == 1 for x in x_values)
    position = {format_param(x): (float(x) if numeric else i) for i, x in enumerate(x_values)}

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    groups = sorted({format_param(g): g for _, g, _ in points}.values(), key=_sort_key)
    for index, group in enumerate(groups):
        by_x: dict[float, list[float]] = {}
        for x, g, y in points:
            if format_param(g) == format_param(group):
                by_x.setdefault(position[format_param(x)], []).append(y)
        xs = sorted(by_x)
        label = _group_label(group) if group_key else None
        (line,) = ax.plot(xs, [sum(by_x[x]) / len(by_x[x]) for x in xs],
                          marker=MARKERS[index % len(MARKERS)], markersize=7 - index % 3,
                          linestyle=("-", "--", ":", "-.")[index % 4], label=label)
        if any(len(ys) > 1 for ys in by_x.values()):  # repeated x: show every job too
            ax.scatter([x for x in xs for _ in by_x[x]], [y for x in xs for y in by_x[x]],
                       color=line.get_color(), alpha=0.4, s=14)
    if not points:
        ax.text(0.5, 0.5, "no job has validation results", ha="center", va="center",
                transform=ax.transAxes)
    if numeric and x_values and min(x_values) > 0 and max(x_values) > 10 * min(x_values):
        ax.set_xscale("log")  # e.g. optimizer.lr
    if not numeric:
        ax.set_xticks(range(len(x_values)), [format_param(x, 4) for x in x_values])
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"{metric} mIoU (%)")
    ax.set_title(f"{metric} mIoU vs {x_key}" + (f"\n({note})" if note else ""), fontsize=10)
    ax.grid(alpha=0.3)
    if group_key and groups:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return note


# --------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Summarise a segohem-train multirun: summary.csv, summary.md and "
                    f"{PLOT_NAME} (see the module docstring).")
    parser.add_argument("sweep", type=Path, help="sweep dir (holds the numbered job folders)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the outputs (default: the sweep dir)")
    parser.add_argument("--rare", nargs="+", metavar="CLASS", default=None,
                        help=f"classes whose IoU gets a column (default: the {DEFAULT_RARE} "
                             "with the lowest mean IoU across jobs)")
    parser.add_argument("--metric", choices=("best", "last"), default="best",
                        help="validation epoch to report (default: best)")
    return parser.parse_args(argv)


def summarize(sweep: Path, out: Path, rare: Sequence[str] | None, metric: str) -> list[Path]:
    """Write the three outputs into ``out``; prints the table and the paths."""
    jobs = load_sweep(sweep, metric)
    keys = columns(jobs)
    rare = rare_classes(jobs, rare)
    rows = table_rows(jobs, keys, rare)
    report = markdown_report(sweep, jobs, markdown_table(rows, keys, rare, metric), rare,
                             metric)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "summary.csv", out / "summary.md", out / PLOT_NAME]
    write_csv(rows, keys, paths[0])
    paths[1].write_text(report)
    note = plot_miou(jobs, metric, paths[2])
    print(report)
    if note:
        print(f"Note: {note}.")
    print("Wrote:\n" + "\n".join(f"  {path}" for path in paths))
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summarize(args.sweep, args.out or args.sweep, args.rare, args.metric)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
