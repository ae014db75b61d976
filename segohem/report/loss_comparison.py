"""Compare losses over several seeds on any dataset: one multirun of ``segohem.cli.train``, then per
loss the mean ± std of mIoU, of each class's IoU and of the rare classes' mean IoU.

The sweep is ``python -m segohem.cli.train -m loss=<losses> seed=<seeds>
trainer.enable_progress_bar=false hydra.sweep.dir=<dir> <overrides after -->``. Its jobs are read
with :func:`segohem.report.jobs.read_sweep` (the ``best`` validation epoch of ``metrics.json``) and
grouped by those of their overrides that differ between jobs, ``seed`` excepted (normally only
``loss``), so the seeds are a group's replicates.

Rare classes: ``--rare`` names them; otherwise they are the classes whose share of the valid
pixels of the training masks is below ``--rare-below`` (the training set is built from the
job's ``.hydra/config.yaml``, masks only).

Verdict against the baseline group (the same overrides with ``loss=<--baseline>``, or
``--baseline key=value``; where no run has those, the runs with only ``key=value`` set), for
mIoU and the rare classes' mean IoU: Δ = difference of the
means, σ = the larger sample std (ddof=1) over seeds of the two groups; ``clear`` when
|Δ| > 2σ, else ``within noise`` (``n/a`` with fewer than 2 seeds in either group).

Lowest class Δ: per group, the class whose mean IoU is furthest below the baseline's (the
"no class more than 5 points below CE" rule).

Recorded runs instead of a sweep dir: ``--runs FILE.jsonl [FILE ...] --set NAME`` reads one
held-out set's runs from JSON-lines logs (:mod:`segohem.report.run_log`; ``--rare`` is then
needed) and prints the same table; ``--out DIR`` keeps the files.

Writes ``<sweep>/loss_comparison.md`` (also printed) and ``<sweep>/loss_comparison.json``.
:func:`main` (``python scripts/compare_losses.py``) exits 1 when the sweep command failed or a
job has no ``metrics.json`` with a validated epoch (its ``train.log`` is named), 2 on bad
arguments or an unreadable sweep.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from segohem.data import build_dataset
from segohem.data.class_counts import class_pixel_counts
from segohem.files import write_json
from segohem.report.jobs import Job, SweepError, read_sweep
from segohem.report.run_log import read_run_log

Key = tuple[tuple[str, str], ...]  # the overrides that tell a group apart


class CompareError(Exception):
    """The sweep cannot be summarised as asked."""


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Options before ``--``; everything after it is passed to Hydra unchanged."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 usage="%(prog)s [options] [-- hydra overrides...]")
    ap.add_argument("--losses", default="ce,ohem,topk", help="loss configs (comma-separated)")
    ap.add_argument("--seeds", default="0,1,2", help="seeds (comma-separated)")
    ap.add_argument("--sweep-dir", type=Path, help="default: multirun/compare_losses/<time>")
    ap.add_argument("--no-train", action="store_true", help="only summarise --sweep-dir")
    ap.add_argument("--runs", type=Path, nargs="+",
                    help="summarise JSON-lines run log(s) instead (no training)")
    ap.add_argument("--set", help="with --runs: the held-out set's runs")
    ap.add_argument("--tags", help="with --runs: only tags starting with these (comma-separated)")
    ap.add_argument("--out", type=Path, help="with --runs: folder for the .md / .json files")
    ap.add_argument("--rare", default="", help="rare class names (comma-separated)")
    ap.add_argument("--rare-below", type=float, default=0.01,
                    help="else: classes under this training pixel share")
    ap.add_argument("--baseline", default="ce", help="loss name, or key=value")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the sweep")
    args = ap.parse_args(argv[:cut])
    if args.no_train and args.sweep_dir is None:
        ap.error("--no-train needs --sweep-dir")
    if args.runs is not None and (args.sweep_dir is not None or not args.rare):
        ap.error("--runs needs --rare and takes no --sweep-dir (it starts no training)")
    if args.runs is None and (args.set or args.tags or args.out):
        ap.error("--set, --tags and --out go with --runs")
    return args, argv[cut + 1:]


def train_command(args: argparse.Namespace, overrides: list[str], sweep: Path) -> list[str]:
    """The multirun command line."""
    return [args.python, "-m", "segohem.cli.train", "-m", f"loss={args.losses}",
            f"seed={args.seeds}", "trainer.enable_progress_bar=false",
            f"hydra.sweep.dir={sweep}", *overrides]


def group_keys(runs: list[Job]) -> list[Key]:
    """Per run, the overrides (``seed`` excepted) that vary between runs, plus ``loss``."""
    keys = sorted({k for r in runs for k in r.overrides or {}} - {"seed"})
    varying = [k for k in keys if k == "loss" or
               len({(r.overrides or {}).get(k) for r in runs}) > 1]
    return [tuple((k, (r.overrides or {}).get(k, "-")) for k in varying) for r in runs]


def label(key: Key) -> str:
    """``ohem`` for a key of only the loss, else ``k=v k=v`` without the keys left unset
    (``-``); ``default`` when every key is unset."""
    if [k for k, _ in key] == ["loss"] and key[0][1] != "-":
        return key[0][1]
    if not key:
        return "all"
    return " ".join(f"{k}={v}" for k, v in key if v != "-") or "default"


def stats(values: pd.Series) -> dict[str, Any] | None:
    """Mean, sample std (ddof=1; None for one value), min, max and n of the non-NaN values
    (fractions), in %; None if there are none."""
    vals = 100.0 * values.dropna().astype(float)
    if vals.empty:
        return None
    return {"mean": vals.mean(), "std": vals.std() if len(vals) > 1 else None,
            "min": vals.min(), "max": vals.max(), "n": len(vals), "values": vals.tolist()}


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


def read_runs(sweep: Path) -> tuple[list[Job], list[dict[str, str]]]:
    """The jobs of a sweep dir with a ``metrics.json``, and the others as ``{job, log}``."""
    try:
        jobs = read_sweep(sweep)
    except SweepError as err:
        raise CompareError(str(err)) from None
    runs = [j for j in jobs if j.source == "metrics.json"]
    failed = [{"job": str(j.path), "log": str(j.path / "train.log")}
              for j in jobs if j.source != "metrics.json"]
    return runs, failed


def lowest_class(group: dict[str, Any], base: dict[str, Any]) -> dict[str, Any] | None:
    """The class whose mean IoU is furthest below (or least above) the baseline's."""
    diffs = {c: s["mean"] - base["IoU"][c]["mean"] for c, s in group["IoU"].items()
             if s is not None and base["IoU"].get(c) is not None}
    if not diffs:
        return None
    worst = min(diffs, key=diffs.__getitem__)
    return {"class": worst, "diff": diffs[worst]}


def _lowest(group: dict[str, Any]) -> str:
    low = group["lowest_class_vs_baseline"]
    return "-" if low is None else f"{low['class']} {low['diff']:+.1f}"


def summarise(source: str, runs: list[Job], failed: list[dict[str, str]], rare: list[str],
              rare_below: float, baseline: str) -> tuple[str, dict[str, Any]]:
    """Markdown table and JSON-able results of the runs of ``source`` (a sweep dir or run log);
    ``failed``: the runs without results, listed under the table."""
    if not runs:
        raise CompareError(f"{source}: no job has a result; see "
                           + ", ".join(f["log"] for f in failed))
    classes = list(runs[0].result["IoU"])
    shares = None
    if not rare:
        shares = class_shares(runs[0].path, classes)
        rare = [c for c in classes if shares[c] < rare_below]
    if unknown := [c for c in rare if c not in classes]:
        raise CompareError(f"unknown rare classes {unknown}; classes are {classes}")
    frame = pd.DataFrame([{"key": key, "job": str(r.path), "seed": (r.overrides or {}).get("seed"),
                           "mIoU": r.result["mIoU"], **r.result["IoU"]}
                          for key, r in zip(group_keys(runs), runs, strict=True)])
    frame[classes] = frame[classes].astype(float)
    frame["rare_mIoU"] = frame[rare].mean(axis=1) if rare else float("nan")
    results = [{"group": label(key), "overrides": dict(key), "key": key,
                "seeds": members["seed"].tolist(), "jobs": members["job"].tolist(),
                "mIoU": stats(members["mIoU"]), "rare_mIoU": stats(members["rare_mIoU"]),
                "IoU": {c: stats(members[c]) for c in classes}}
               for key, members in frame.groupby("key", sort=False)]
    bkey, bval = baseline.split("=", 1) if "=" in baseline else ("loss", baseline)
    by_key = {g["key"]: g for g in results}
    for g in results:
        key = g.pop("key")
        base = by_key.get(tuple((k, bval if k == bkey else v) for k, v in key),
                          by_key.get(tuple((k, bval if k == bkey else "-") for k, _ in key)))
        g["baseline"] = None if base is None else base["group"]
        g["vs_baseline"] = None if base is None or base is g else {
            m: verdict(g[m], base[m]) for m in ("mIoU", "rare_mIoU")}
        g["lowest_class_vs_baseline"] = (None if base is None or base is g
                                         else lowest_class(g, base))
    table = pd.DataFrame([{
        "group": g["group"], "seeds": str(len(g["seeds"])), "mIoU": _cell(g["mIoU"]),
        f"Δ mIoU vs {bval}": _delta(g, "mIoU"), "rare mIoU": _cell(g["rare_mIoU"]),
        f"Δ rare vs {bval}": _delta(g, "rare_mIoU"),
        f"lowest class Δ vs {bval}": _lowest(g),
        **{f"IoU {c}": _cell(g["IoU"][c]) for c in classes}} for g in results])
    rare_note = ", ".join(f"{c} ({100 * shares[c]:.2f} %)" if shares else c for c in rare)
    text = "\n".join([
        f"Loss comparison, `{source}`: best validation epoch of each job, in %, "
        "mean ± sample std over seeds [min, max].",
        f"Rare classes: {rare_note or 'none'}"
        + (f" (training pixel share < {100 * rare_below:g} %)." if shares else " (given)."),
        f"Δ vs the same overrides with {bkey}={bval} (else only {bkey}={bval}): clear if "
        "|Δ| > 2 x the larger seed std of the two groups, else within noise.", "",
        table.to_markdown(index=False, disable_numparse=True,
                          colalign=["left"] + ["right"] * (len(table.columns) - 1))])
    if failed:
        text += "\n\nFailed jobs (no result):\n" + "\n".join(
            f"- {f['job']}: see {f['log']}" for f in failed)
    data = {"sweep": source, "baseline": f"{bkey}={bval}", "classes": classes,
            "rare": rare, "train_pixel_shares": shares, "groups": results, "failed": failed}
    return text, data


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    rare = [c for c in args.rare.split(",") if c]
    returncode = 0
    try:
        if args.runs is not None:
            runs, failed = read_run_log(args.runs, args.set, args.tags)
            source = " ".join(map(str, args.runs)) + (f" --set {args.set}" if args.set else "")
            out = args.out
        else:
            sweep = args.sweep_dir or (Path("multirun/compare_losses")
                                       / time.strftime("%Y-%m-%d_%H-%M-%S"))
            if not args.no_train:
                cmd = train_command(args, overrides, sweep)
                print("+ " + " ".join(cmd), flush=True)
                returncode = subprocess.run(cmd, check=False).returncode
            (runs, failed), source, out = read_runs(sweep), str(sweep), sweep
        text, data = summarise(source, runs, failed, rare, args.rare_below, args.baseline)
    except (CompareError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if returncode == 0 else 1
    data["sweep_returncode"] = returncode if not (args.no_train or args.runs) else None
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "loss_comparison.md").write_text(text + "\n")
        write_json(out / "loss_comparison.json", data)
        print(f"\nwritten: {out / 'loss_comparison.md'}, {out / 'loss_comparison.json'}")
    if failed or returncode:
        print(f"FAILED: {len(failed)} job(s) without a result"
              + (f"; sweep exit status {returncode}" if returncode else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
