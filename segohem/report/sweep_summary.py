"""Summary of a ``segohem-train`` multirun (grid or Optuna sweep): tables and plots.

:func:`summarize` reads the sweep's jobs (:func:`segohem.report.jobs.read_sweep`) and writes
``summary.csv`` (one row per job, highest mIoU first; the swept override keys plus
``loss.thresh`` / ``loss.n_min`` as columns, metrics in %, failed jobs last with their error),
``summary.md`` (also printed) and ``miou_vs_thresh.png`` (mIoU against ``loss.thresh``, one line
per ``loss.n_min``; against the first swept key when the threshold was not swept). For an
Optuna sweep (``optuna_study.yaml`` in the sweep dir) ``summary.md`` also gets the study's own
account (:mod:`segohem.report.study_summary`: trials by state, the best trial's command, Optuna's
plots). Command line: ``python scripts/summarize_sweep.py <sweep dir> [--out DIR] [--rare CLASS ...]
[--metric best|last]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from segohem.report.jobs import (
    MISSING,
    Job,
    SweepError,
    columns,
    config_value,
    read_sweep,
    swept_keys,
)
from segohem.report.study_summary import load_sweep_study, study_report
from segohem.sweep.storage import StudyError

METRICS = ("mIoU", "mAcc", "aAcc")
DEFAULT_RARE = 2
PLOT_NAME = "miou_vs_thresh.png"
MD_ERROR_CHARS = 100


def rare_classes(jobs: Sequence[Job], requested: Sequence[str] | None) -> list[str]:
    """``requested`` (checked against the sweep's classes), else the :data:`DEFAULT_RARE`
    classes with the lowest mean IoU across jobs."""
    iou = pd.DataFrame([job.result["IoU"] for job in jobs if job.result], dtype=float)
    names = list(dict.fromkeys(
        [str(n) for job in jobs if isinstance(
            c := config_value(job.config, "dataset.class_names"), list) for n in c]
        + list(iou.columns)))
    if requested:
        unknown = [name for name in requested if names and name not in names]
        if unknown:
            raise SweepError(f"--rare {' '.join(unknown)}: not a class of this sweep "
                             f"(classes: {', '.join(names)})")
        return list(requested)
    return list(iou.mean().dropna().sort_values(kind="stable").index[:DEFAULT_RARE])


def format_param(value: Any, digits: int | None = None) -> str:
    """YAML-like text: None -> ``null``; ``digits`` significant digits for floats."""
    if value is MISSING:
        return ""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if digits else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def summary_frame(jobs: Sequence[Job], rare: Sequence[str]) -> pd.DataFrame:
    """One row per job, highest mIoU first (jobs without one last, in job order): parameters
    as YAML-like text, metrics in % (NaN when absent), source and error."""
    rows = []
    for job in jobs:
        result = job.result or {}
        row = {"job": job.name, "status": job.status,
               **{key: format_param(value) for key, value in job.params.items()},
               **{m: result.get(m) for m in METRICS}, "epoch": result.get("epoch"),
               **{f"IoU.{c}": (result.get("IoU") or {}).get(c) for c in rare},
               "source": job.source, "error": job.error}
        rows.append(row)
    frame = pd.DataFrame(rows)
    numeric = [*METRICS, *(f"IoU.{c}" for c in rare)]
    frame[numeric] = (100.0 * frame[numeric].astype(float)).round(3)
    frame["epoch"] = frame["epoch"].astype("Int64")
    return frame.sort_values("mIoU", ascending=False, kind="stable", na_position="last")


def markdown_table(frame: pd.DataFrame, jobs: Sequence[Job], metric: str) -> str:
    """``frame`` for reading: percentages with 1 decimal, parameters with 4 significant
    digits, ``-`` where absent, the error column only when a job has one."""
    params = {job.name: job.params for job in jobs}
    numbers = {m: f"{m} %" for m in METRICS} | {"mIoU": f"mIoU % ({metric})", "epoch": "epoch"}
    numbers |= {c: c.replace("IoU.", "IoU % ", 1) for c in frame if c.startswith("IoU.")}
    cells = {"job": frame["job"], "status": [
        s + (" (tensorboard)" if src == "tensorboard" else "")
        for s, src in zip(frame["status"], frame["source"], strict=True)]}
    cells |= {key: [format_param(params[j][key], 4) for j in frame["job"]]
              for key in columns(jobs)}
    cells |= {label: ["-" if pd.isna(v) else str(v) if column == "epoch" else f"{v:.1f}"
                      for v in frame[column]] for column, label in numbers.items()}
    if frame["error"].any():
        cells["error"] = [e if len(e) <= MD_ERROR_CHARS else e[:MD_ERROR_CHARS - 3] + "..."
                          for e in frame["error"]]
    table = pd.DataFrame(cells).map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    align = ["right" if c in numbers.values() else "left" for c in table]
    return table.to_markdown(index=False, disable_numparse=True, colalign=align)


def plot_axis(jobs: Sequence[Job]) -> tuple[str, str]:
    """(x key, note): ``loss.thresh`` unless only other keys were swept."""
    varied = swept_keys(jobs)
    if "loss.thresh" in varied or not varied:
        return "loss.thresh", ""
    return varied[0], f"loss.thresh was not swept: mIoU is plotted against {varied[0]}"


def plot_miou(jobs: Sequence[Job], metric: str, path: Path) -> str:
    """mIoU (%) against :func:`plot_axis`'s key, one line (mean over repeated x values, each
    job a dot) per ``loss.n_min``; returns the axis note. A bare Agg ``Figure``: no pyplot
    state, so it is safe to call from a notebook."""
    x_key, note = plot_axis(jobs)
    group_key = "loss.n_min" if x_key != "loss.n_min" else None
    points = pd.DataFrame(
        [(job.params.get(x_key), job.params.get(group_key, "") if group_key else "",
          100.0 * job.result["mIoU"]) for job in jobs
         if job.result and job.params.get(x_key, MISSING) is not MISSING],
        columns=["x", "group", "miou"], dtype=object)
    numeric = bool(len(points)) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                        for x in points["x"])
    labels = sorted({format_param(x, 4) for x in points["x"]},
                    key=lambda s: (float(s) if numeric else 0.0, s))
    points["pos"] = ([float(x) for x in points["x"]] if numeric else
                     [labels.index(format_param(x, 4)) for x in points["x"]])
    points["group"] = [format_param(g, 4) if group_key else "" for g in points["group"]]

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for index, (group, sub) in enumerate(points.groupby("group", sort=True)):
        means = sub.groupby("pos")["miou"].mean()
        (line,) = ax.plot(means.index, means.values, marker="osD^v<>"[index % 7],
                          linestyle=("-", "--", ":", "-.")[index % 4],
                          label=f"n_min={group}" + (" (valid//16)" if group == "null" else ""))
        if len(sub) > len(means):  # repeated x values: show every job too
            ax.scatter(sub["pos"], sub["miou"], color=line.get_color(), alpha=0.4, s=14)
    if points.empty:
        ax.text(0.5, 0.5, "no job has validation results", ha="center", va="center",
                transform=ax.transAxes)
    elif numeric and points["pos"].min() > 0 and points["pos"].max() > 10 * points["pos"].min():
        ax.set_xscale("log")  # e.g. optimizer.lr
    if not numeric:
        ax.set_xticks(range(len(labels)), labels)
    ax.set(xlabel=x_key, ylabel=f"{metric} mIoU (%)")
    ax.set_title(f"{metric} mIoU vs {x_key}" + (f"\n({note})" if note else ""), fontsize=10)
    ax.grid(alpha=0.3)
    if group_key and not points.empty:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return note


# --------------------------------------------------------------------------- entry point


def summarize(sweep: Path, out: Path | None = None, rare: Sequence[str] | None = None,
              metric: str = "best") -> list[Path]:
    """Write ``summary.csv``, ``summary.md`` and :data:`PLOT_NAME` into ``out`` (default: the
    sweep dir); prints the Markdown report and the paths, returns the paths."""
    jobs = read_sweep(sweep, metric)
    rare = rare_classes(jobs, rare)
    frame = summary_frame(jobs, rare)
    counts = frame["status"].value_counts()
    states = ", ".join(f"{counts[s]} {s}" for s in ("ok", "pruned", "incomplete", "failed")
                       if s in counts)
    lines = [f"# Sweep {sweep}", "",
             f"{len(jobs)} jobs ({states}); metrics of the {metric} validation epoch, in %. "
             f"Rare classes: {', '.join(rare) or '-'}.", ""]
    out = out or sweep
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "summary.csv", out / "summary.md", out / PLOT_NAME]
    study_md = ""
    if (study := load_sweep_study(sweep)) is not None:
        study_md, plots = study_report(study, out)
        paths += plots
    report = "\n".join([*lines, markdown_table(frame, jobs, metric), "", study_md])
    frame.to_csv(paths[0], index=False)
    paths[1].write_text(report)
    note = plot_miou(jobs, metric, paths[2])
    print(report)
    if note:
        print(f"Note: {note}.")
    print("Wrote:\n" + "\n".join(f"  {path}" for path in paths))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Summarise a segohem-train multirun: summary.csv, summary.md and "
                    f"{PLOT_NAME}.")
    parser.add_argument("sweep", type=Path, help="sweep dir (holds the numbered job folders)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the outputs (default: the sweep dir)")
    parser.add_argument("--rare", nargs="+", metavar="CLASS", default=None,
                        help=f"classes whose IoU gets a column (default: the {DEFAULT_RARE} "
                             "with the lowest mean IoU across jobs)")
    parser.add_argument("--metric", choices=("best", "last"), default="best",
                        help="validation epoch to report (default: best)")
    args = parser.parse_args(argv)
    try:
        summarize(args.sweep, args.out, args.rare, args.metric)
    except (SweepError, StudyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
