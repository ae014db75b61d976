# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · A small `thresh` × `n_min` sweep, analysed
#
# OHEM has two knobs: `loss.thresh` (which pixels count as hard) and `loss.n_min` (how many
# pixels are kept at least). This notebook runs a Hydra grid sweep over both, exactly as on the
# command line, then reads every job's folder:
#
# * `.hydra/overrides.yaml`: the job's hyperparameters,
# * `metrics.json`: best / last validation metrics with per-class IoU,
# * `tensorboard/`: the `val/mIoU` curve and the mining statistics,
#
# plots mIoU and the rare classes' IoU against `thresh` for each `n_min`, and picks the best
# configuration.
#
# The sweep is tiny (6 jobs of 48 × 48 images, 6 epochs each: 205 s on a slow 2-core CPU with
# one thread), so differences of a point or two are noise; the *shape* of the result is what to look
# at. For real decisions run longer and over several seeds (`scripts/compare_losses.py` runs 3).

# %%
# %matplotlib inline
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. Run the sweep
#
# `segohem-train -m` (here `python -m segohem.cli.train -m`, with this notebook's Python) runs one
# job per combination of the comma-separated values, one after the other, each in its own
# numbered folder under `hydra.sweep.dir`.
#
# About the `n_min` values: `null` means `valid // 16`, i.e. 6.25 % of the valid pixels. A
# value below that (such as `0.05`) would never bind before the default does, so in a run this
# short it would reproduce the `null` jobs exactly; `0.3` (keep at least 30 %) makes the
# fallback visible.

# %%
TINY = [
    "dataset.image_size=[48,48]",
    "dataset.train_set.num_samples=256",
    "dataset.val_set.num_samples=16",
    "dataset.num_workers=0",
    "trainer.max_epochs=6",
    "min_train_steps=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "image_log_every_n_epochs=100",      # no image grids: they are not needed here
]
workdir = Path(tempfile.mkdtemp(prefix="segohem_nb03_"))
sweep_dir = workdir / "sweep"
command = [sys.executable, "-m", "segohem.cli.train", "-m",
           "loss.thresh=0.5,0.7,0.9", "loss.n_min=null,0.3", *TINY,
           f"hydra.sweep.dir={sweep_dir}"]
print("segohem-train", shlex.join(command[4:]), "\n")

start = time.perf_counter()
done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
if done.returncode != 0:
    raise RuntimeError(f"sweep failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
for line in (done.stdout + done.stderr).splitlines():
    if "[HYDRA]" in line:
        print(line.split("[HYDRA]", 1)[1].strip())
print(f"\nsweep finished in {time.perf_counter() - start:.0f} s: {sweep_dir}")


# %% [markdown]
# ## 2. Read the job folders
#
# Each job folder holds `.hydra/overrides.yaml` (a list of `key=value` strings) and
# `metrics.json`, whose format is
# `{"last": {...}, "best": {"epoch", "step", "mIoU", "mAcc", "aAcc", "IoU": {class: value or null}, "Acc": {...}}}`.

# %%
def read_job(job_dir):
    overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    overrides = dict(item.split("=", 1) for item in overrides)
    metrics = json.loads((job_dir / "metrics.json").read_text())
    return {"job": job_dir.name, "dir": job_dir, "thresh": float(overrides["loss.thresh"]),
            "n_min": overrides["loss.n_min"], "best": metrics["best"], "last": metrics["last"]}


job_dirs = sorted((d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()),
                  key=lambda d: int(d.name))
jobs = [read_job(d) for d in job_dirs]
class_names = list(jobs[0]["best"]["IoU"])


def iou(job, name):
    value = job["best"]["IoU"][name]
    return np.nan if value is None else value


# The rare classes: the two with the lowest mean IoU across the jobs.
mean_iou = {name: np.nanmean([iou(job, name) for job in jobs]) for name in class_names}
rare = sorted(class_names, key=mean_iou.get)[:2]

header = f"{'job':>3} {'thresh':>6} {'n_min':>5} {'epoch':>5} {'mIoU':>6} {'mAcc':>6}"
header += "".join(f" {name:>10}" for name in class_names)
print(header)
for job in jobs:
    best = job["best"]
    print(f"{job['job']:>3} {job['thresh']:>6} {job['n_min']:>5} {best['epoch']:>5} "
          f"{best['mIoU']:>6.1%} {best['mAcc']:>6.1%}"
          + "".join(f" {iou(job, name):>10.1%}" for name in class_names))
print("\nrare classes (lowest mean IoU):", rare)

# %% [markdown]
# ## 3. Curves from TensorBoard
#
# Every job logged into its own `tensorboard/` folder (`tensorboard --logdir <sweep dir>` shows
# them side by side; its HPARAMS tab lists the hyperparameters with `val/mIoU_best`). Besides
# `val/mIoU`, the epoch means of the mining statistics explain the differences: the kept
# fraction, and the fallback rate (the share of steps where `n_min`, not `thresh`, decided).

# %%
TAGS = ("val/mIoU", "train/ohem/kept_fraction_epoch", "train/ohem/fallback_epoch")
colors = {0.5: "tab:blue", 0.7: "tab:orange", 0.9: "tab:green"}
styles = {"null": "-", "0.3": "--"}
fig, axes = plt.subplots(1, len(TAGS), figsize=(15, 3.6))
for job in jobs:
    events = EventAccumulator(str(job["dir"] / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for ax, tag in zip(axes, TAGS):
        values = events.Scalars(tag)
        ax.plot([v.step for v in values], [v.value for v in values], marker=".",
                color=colors.get(job["thresh"]), linestyle=styles.get(job["n_min"], ":"),
                label=f"thresh={job['thresh']}, n_min={job['n_min']}")
for ax, tag in zip(axes, TAGS):
    ax.set_title(tag)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. mIoU and rare-class IoU against `thresh`
#
# One line per `n_min`. A low `thresh` concentrates the loss on the confidently wrong pixels
# (borders, thin and small objects); a high one drifts towards plain cross-entropy. A large
# `n_min` keeps easy pixels in the loss once the model gets good (fallback rate → 1), which
# dilutes the hard ones. (The thinnest class, *line*, may still be at 0 after so few steps:
# it is the last one a model learns, and the one that needs the longer default run.)

# %%
n_min_values = list(dict.fromkeys(job["n_min"] for job in jobs))
panels = [("mIoU", lambda job: job["best"]["mIoU"])]
panels += [(f"IoU {name}", lambda job, name=name: iou(job, name)) for name in rare]
fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
for ax, (title, value) in zip(axes, panels):
    for n_min in n_min_values:
        group = sorted((job for job in jobs if job["n_min"] == n_min), key=lambda j: j["thresh"])
        ax.plot([job["thresh"] for job in group], [value(job) for job in group],
                marker="o", linestyle=styles.get(n_min, ":"), label=f"n_min={n_min}")
    ax.set_title(f"best-epoch {title}")
    if title != "mIoU":
        ax.set_ylim(-0.02, 1)
    ax.set_xlabel("loss.thresh")
    ax.set_xticks(sorted({job["thresh"] for job in jobs}))
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Pick the configuration
#
# By best-epoch mIoU. Configurations within about a point of the best are as good within the
# noise of a run this short: look at their rare-class IoU too, and confirm with longer runs and
# other seeds.

# %%
ranked = sorted(jobs, key=lambda job: job["best"]["mIoU"], reverse=True)
choice = ranked[0]
for job in ranked:
    gap = choice["best"]["mIoU"] - job["best"]["mIoU"]
    mark = "  <- best" if job is choice else ("  (within 1 point)" if gap < 0.01 else "")
    print(f"thresh={job['thresh']}, n_min={job['n_min']:<5} mIoU {job['best']['mIoU']:.1%}  "
          + "  ".join(f"{name} {iou(job, name):.1%}" for name in rare) + mark)
print(f"\nbest: loss.thresh={choice['thresh']} loss.n_min={choice['n_min']} "
      f"(mIoU {choice['best']['mIoU']:.1%})")
print(f"train it properly with:  segohem-train loss.thresh={choice['thresh']} "
      f"loss.n_min={choice['n_min']}")

# %% [markdown]
# ## Alternative: `segohem.report.sweep_summary`
#
# The package's sweep summary does the same reading (it also copes with failed or unfinished
# jobs and Optuna sweeps) and writes `summary.csv`, `summary.md` and `miou_vs_thresh.png`:
#
# ```bash
# python scripts/summarize_sweep.py multirun/train/<date>    # or: --out reports/ --rare line dot
# ```
#
# From Python:

# %%
from IPython.display import Image, display

from segohem.report.sweep_summary import PLOT_NAME, summarize

report_dir = workdir / "report"
summarize(sweep_dir, report_dir)
# The plot is drawn on a bare Agg figure (no pyplot state): show its PNG.
display(Image(filename=report_dir / PLOT_NAME, width=600))

# %% [markdown]
# The sweep lives in a temporary folder; delete it when done (`shutil.rmtree(workdir)`).
