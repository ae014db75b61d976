"""Compare losses over several seeds on any dataset: one multirun of ``segohem.train``, then per
loss the mean ± std of mIoU, of each class's IoU and of the rare classes' mean IoU.

Run::

    python scripts/compare_losses.py --rare line,dot        # embedded synthetic data
    python scripts/compare_losses.py --losses ce,ohem,topk --seeds 0,1,2 \\
        --sweep-dir multirun/cmp_cracks -- dataset=folder dataset.root=/tmp/heldout/cracks \\
        dataset.num_classes=4 'dataset.class_names=[background,stain,crack,pit]'
    python scripts/compare_losses.py --no-train --sweep-dir multirun/cmp_cracks  # re-summarise

The sweep is ``python -m segohem.train -m loss=<losses> seed=<seeds>
trainer.enable_progress_bar=false hydra.sweep.dir=<dir> <overrides after -->``. Then, for
every job folder, ``metrics.json`` (its ``best`` validation epoch) and
``.hydra/overrides.yaml`` are read; jobs are grouped by those of their overrides that differ
between jobs, ``seed`` excepted (normally only ``loss``), so the seeds are a group's
replicates.

Rare classes: ``--rare`` names them; otherwise they are the classes whose share of the valid
pixels of the training masks is below ``--rare-below`` (the training set is built from the
job's ``.hydra/config.yaml``, masks only).

Verdict against the baseline group (the same overrides with ``loss=<--baseline>``; or
``--baseline key=value``), for mIoU and the rare classes' mean IoU: Δ = difference of the
means, σ = the larger sample std (ddof=1) over seeds of the two groups; ``clear`` when
|Δ| > 2σ, else ``within noise`` (``n/a`` with fewer than 2 seeds in either group).

Writes ``<sweep>/loss_comparison.md`` (also printed) and ``<sweep>/loss_comparison.json``.
Exits 1 when the sweep command failed or a job has no ``metrics.json`` with a validated epoch
(its ``train.log`` is named), 2 on bad arguments or an unreadable sweep.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from segohem.files import write_json
from segohem.report import read_report, validated_epoch

Key = tuple[tuple[str, str], ...]  # the overrides that tell a group apart


class CompareError(Exception):
    """The sweep cannot be summarised as asked."""


@dataclass
class Run:
    """One finished job: its folder, overrides ``{key: value}`` and ``best`` metrics."""

    job: Path
    overrides: dict[str, str]
    best: dict[str, Any]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Options before ``--``; everything after it is passed to Hydra unchanged."""
    cut = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 usage="%(prog)s [options] [-- hydra overrides...]")
    ap.add_argument("--losses", default="ce,ohem,topk", help="loss configs (comma-separated)")
    ap.add_argument("--seeds", default="0,1,2", help="seeds (comma-separated)")
    ap.add_argument("--sweep-dir", type=Path, help="default: multirun/compare_losses/<time>")
    ap.add_argument("--no-train", action="store_true", help="only summarise --sweep-dir")
    ap.add_argument("--rare", default="", help="rare class names (comma-separated)")
    ap.add_argument("--rare-below", type=float, default=0.01,
                    help="else: classes under this training pixel share")
    ap.add_argument("--baseline", default="ce", help="loss name, or key=value")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the sweep")
    args = ap.parse_args(argv[:cut])
    if args.no_train and args.sweep_dir is None:
        ap.error("--no-train needs --sweep-dir")
    return args, argv[cut + 1:]


def train_command(args: argparse.Namespace, overrides: list[str], sweep: Path) -> list[str]:
    """The multirun command line."""
    return [args.python, "-m", "segohem.train", "-m", f"loss={args.losses}",
            f"seed={args.seeds}", "trainer.enable_progress_bar=false",
            f"hydra.sweep.dir={sweep}", *overrides]


def load_jobs(sweep: Path) -> tuple[list[Run], list[Path]]:
    """Finished runs and the folders of jobs without ``metrics.json``, in job order."""
    jobs = [p for p in sweep.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()] \
        if sweep.is_dir() else []
    if not jobs:
        raise CompareError(f"{sweep}: no job folders (<job>/.hydra/overrides.yaml)")
    runs, failed = [], []
    for job in sorted(jobs, key=lambda p: (len(p.name), p.name)):  # 0, 1, ..., 10, ...
        lines = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        overrides = dict(str(o).split("=", 1) for o in lines if "=" in str(o))
        best = validated_epoch(read_report(job), "best")
        if best is not None:
            runs.append(Run(job, overrides, best))
        else:  # no metrics.json, or no validation epoch in it
            failed.append(job)
    return runs, failed


def group_runs(runs: list[Run]) -> dict[Key, list[Run]]:
    """Runs grouped by the overrides (``seed`` excepted) that vary between runs, plus
    ``loss``; groups in order of their first job."""
    keys = sorted({k for r in runs for k in r.overrides} - {"seed"})
    varying = [k for k in keys if k == "loss" or
               len({r.overrides.get(k) for r in runs}) > 1]
    groups: dict[Key, list[Run]] = {}
    for r in runs:
        key = tuple((k, r.overrides.get(k, "-")) for k in varying)
        groups.setdefault(key, []).append(r)
    return groups


def label(key: Key) -> str:
    """``ohem`` for a key of only the loss, else ``k=v k=v``."""
    if [k for k, _ in key] == ["loss"]:
        return key[0][1]
    return " ".join(f"{k}={v}" for k, v in key) or "all"


def stats(values: list[float | None]) -> dict[str, Any] | None:
    """Mean, sample std (ddof=1; None for one value), min, max and n of the non-None values,
    in %; None if there are none."""
    vals = [100.0 * v for v in values if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "min": min(vals), "max": max(vals), "n": len(vals), "values": vals}


def verdict(group: dict[str, Any] | None, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """Δ of the means, σ = larger std, and ``clear`` (|Δ| > 2σ) / ``within noise`` / ``n/a``."""
    if group is None or base is None:
        return None
    diff = group["mean"] - base["mean"]
    if group["std"] is None or base["std"] is None:
        return {"diff": diff, "sigma": None, "verdict": "n/a"}
    sigma = max(group["std"], base["std"])
    return {"diff": diff, "sigma": sigma,
            "verdict": "clear" if abs(diff) > 2 * sigma else "within noise"}


def class_shares(job: Path, classes: list[str]) -> dict[str, float]:
    """Share of each class among the labelled pixels of the job's training set: built from
    its ``.hydra/config.yaml`` (any dataset config) without transforms and counted by
    :func:`segohem.data.class_counts.class_pixel_counts` (masks only)."""
    from omegaconf import OmegaConf

    from segohem.data import build_dataset
    from segohem.data.class_counts import class_pixel_counts

    config = job / ".hydra" / "config.yaml"
    try:
        dataset = OmegaConf.load(config).dataset
        train_set = build_dataset(dataset.train_set, transform=None)
        counts = class_pixel_counts(train_set, len(classes), dataset.get("ignore_index", 255))
    except Exception as err:  # any config or data problem: the user can name the classes
        raise CompareError(f"{config}: cannot count the training pixels per class "
                           f"({type(err).__name__}: {err}); name the rare classes with "
                           "--rare") from None
    if not counts.sum():
        raise CompareError(f"{config}: the training masks hold no labelled pixel; use --rare")
    return {c: float(n / counts.sum()) for c, n in zip(classes, counts, strict=True)}


def summarise(sweep: Path, rare: list[str], rare_below: float, baseline: str
              ) -> tuple[str, dict[str, Any], list[Path]]:
    """Markdown table, JSON-able results and the failed job folders of a sweep dir."""
    runs, failed = load_jobs(sweep)
    if not runs:
        raise CompareError(f"{sweep}: no job has a metrics.json; see "
                           + ", ".join(str(j / "train.log") for j in failed))
    classes = list(runs[0].best["IoU"])
    shares = None
    if not rare:
        shares = class_shares(runs[0].job, classes)
        rare = [c for c in classes if shares[c] < rare_below]
    if unknown := [c for c in rare if c not in classes]:
        raise CompareError(f"unknown rare classes {unknown}; classes are {classes}")
    bkey, bval = baseline.split("=", 1) if "=" in baseline else ("loss", baseline)
    groups = group_runs(runs)
    results = []
    for key, members in groups.items():
        metrics = {"mIoU": stats([r.best["mIoU"] for r in members]),
                   "rare_mIoU": stats([_mean([r.best["IoU"].get(c) for c in rare])
                                       for r in members]),
                   "IoU": {c: stats([r.best["IoU"].get(c) for r in members]) for c in classes}}
        results.append({"group": label(key), "overrides": dict(key), "key": key,
                        "seeds": [r.overrides.get("seed") for r in members],
                        "jobs": [str(r.job) for r in members], **metrics})
    by_key = {g["key"]: g for g in results}
    for g in results:
        base = by_key.get(tuple((k, bval if k == bkey else v) for k, v in g["key"]))
        g["baseline"] = None if base is None else base["group"]
        g["vs_baseline"] = None if base is None or base is g else {
            m: verdict(g[m], base[m]) for m in ("mIoU", "rare_mIoU")}
    header = ["group", "seeds", "mIoU", f"Δ mIoU vs {bval}", "rare mIoU", f"Δ rare vs {bval}",
              *[f"IoU {c}" for c in classes]]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * (len(header) - 2)]
    for g in results:
        lines.append("| " + " | ".join([
            g["group"], str(len(g["seeds"])), _cell(g["mIoU"]), _delta(g, "mIoU"),
            _cell(g["rare_mIoU"]), _delta(g, "rare_mIoU"),
            *[_cell(g["IoU"][c]) for c in classes]]) + " |")
    rare_note = ", ".join(f"{c} ({100 * shares[c]:.2f} %)" if shares else c for c in rare)
    text = "\n".join([
        f"Loss comparison, sweep `{sweep}`: best validation epoch of each job, in %, "
        "mean ± sample std over seeds [min, max].",
        f"Rare classes: {rare_note or 'none'}"
        + (f" (training pixel share < {100 * rare_below:g} %)." if shares else " (given)."),
        f"Δ vs the same overrides with {bkey}={bval}: clear if |Δ| > 2 x the larger seed std "
        "of the two groups, else within noise.", "", *lines])
    if failed:
        text += "\n\nFailed jobs (no metrics.json):\n" + "\n".join(
            f"- {j}: see {j / 'train.log'}" for j in failed)
    for g in results:
        del g["key"]
    data = {"sweep": str(sweep), "baseline": f"{bkey}={bval}", "classes": classes,
            "rare": rare, "train_pixel_shares": shares, "groups": results,
            "failed": [{"job": str(j), "log": str(j / "train.log")} for j in failed]}
    return text, data, failed


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _cell(s: dict[str, Any] | None) -> str:
    if s is None:
        return "-"
    if s["std"] is None:
        return f"{s['mean']:.1f} (1 seed)"
    return f"{s['mean']:.1f} ± {s['std']:.1f} [{s['min']:.1f}, {s['max']:.1f}]"


def _delta(group: dict[str, Any], metric: str) -> str:
    if group["baseline"] is None:
        return "no baseline"
    if group["vs_baseline"] is None:
        return "baseline"
    v = group["vs_baseline"][metric]
    return "-" if v is None else f"{v['diff']:+.1f} {v['verdict']}"


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    rare = [c for c in args.rare.split(",") if c]
    sweep = args.sweep_dir or Path("multirun/compare_losses") / time.strftime("%Y-%m-%d_%H-%M-%S")
    returncode = 0
    if not args.no_train:
        cmd = train_command(args, overrides, sweep)
        print("+ " + " ".join(cmd), flush=True)
        returncode = subprocess.run(cmd, check=False).returncode
    try:
        text, data, failed = summarise(sweep, rare, args.rare_below, args.baseline)
    except CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if returncode == 0 else 1
    data["sweep_returncode"] = returncode if not args.no_train else None
    (sweep / "loss_comparison.md").write_text(text + "\n")
    write_json(sweep / "loss_comparison.json", data)
    print(text)
    print(f"\nwritten: {sweep / 'loss_comparison.md'}, {sweep / 'loss_comparison.json'}")
    if failed or returncode:
        print(f"FAILED: {len(failed)} job(s) without metrics.json"
              + (f"; sweep exit status {returncode}" if returncode else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
