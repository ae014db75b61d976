"""Runs recorded as JSON lines (``docs/runs/issue23.jsonl``): one line per finished training
run with its ``overrides`` (list of ``key=value``), ``seed``, ``set`` (held-out set name),
``rc`` (exit status) and best validation epoch (``mIoU``, ``IoU`` by class: fractions, or % as
the older logs wrote them). Read into :class:`segohem.report.jobs.Job` objects so that
:mod:`segohem.report.loss_comparison` summarises them like a sweep dir
(``scripts/compare_losses.py --runs FILE --set NAME``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segohem.report.jobs import Job, SweepError

NOT_A_VARIANT = ("dataset", "hydra.", "trainer.enable_progress_bar")
"""Override prefixes that say where or how a run ran, not which variant it is."""


def _overrides(row: dict[str, Any]) -> dict[str, str]:
    pairs = dict(o.split("=", 1) for o in row.get("overrides") or [] if "=" in o)
    if "seed" in row:
        pairs["seed"] = str(row["seed"])
    return {k: v for k, v in pairs.items() if not k.startswith(NOT_A_VARIANT)}


def _set_name(row: dict[str, Any]) -> str | None:
    if row.get("set"):
        return str(row["set"])
    root = dict(o.split("=", 1) for o in row.get("overrides") or [] if "=" in o
                ).get("dataset.root")
    return Path(root).name if root else None


def _fractions(row: dict[str, Any]) -> dict[str, Any]:
    """``mIoU`` and ``IoU`` as fractions (a logged mIoU above 1 is in %)."""
    scale = 100.0 if float(row["mIoU"]) > 1.0 else 1.0
    return {"epoch": row.get("best_epoch"), "mIoU": float(row["mIoU"]) / scale,
            "IoU": {c: float(v) / scale for c, v in row["IoU"].items()}}


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a run log, one per non-empty line."""
    if not path.is_file():
        raise SweepError(f"{path}: no such run log")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise SweepError(f"{path}:{number}: not a JSON line ({err})") from None
    return rows


def read_run_log(paths: Path | Sequence[Path], set_name: str | None = None,
                 tags: str | None = None) -> tuple[list[Job], list[dict[str, str]]]:
    """The finished runs of the log(s) ``paths`` on ``set_name`` (needed when they hold
    several sets) whose tag starts with one of the comma-separated prefixes ``tags`` (all if
    None), and the failed ones (``rc`` not 0 or no ``mIoU``) as ``{"job": tag, "log": why}``.
    :class:`SweepError` naming the file and line for unreadable lines, unknown sets."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    rows = [row for path in paths for row in read_lines(path)]
    path = ", ".join(str(p) for p in paths)
    prefixes = tuple(t for t in (tags or "").split(",") if t)
    rows = [r for r in rows if not prefixes or str(r.get("tag", "")).startswith(prefixes)]
    sets = sorted({s for r in rows if (s := _set_name(r))})
    if set_name is None and len(sets) > 1:
        raise SweepError(f"{path} holds runs on several sets {sets}; choose one with --set")
    if set_name is not None:
        if set_name not in sets:
            raise SweepError(f"{path}: no run on set {set_name!r}; its sets are {sets}")
        rows = [r for r in rows if _set_name(r) == set_name]
    runs, failed = [], []
    for r in rows:
        tag = str(r.get("tag", "?"))
        if r.get("rc", 0) != 0 or r.get("mIoU") is None:
            failed.append({"job": tag, "log": f"rc {r.get('rc')}, {r.get('error', 'no mIoU')}"})
            continue
        runs.append(Job(name=tag, path=Path(tag), overrides=_overrides(r), config=None,
                        result=_fractions(r), source="metrics.json"))
    return runs, failed
