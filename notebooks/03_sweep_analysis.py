# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
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
# command line, then reads every job's folder with `segohem.report` (as
# `scripts/summarize_sweep.py` does):
#
# * `.hydra/overrides.yaml` and `.hydra/config.yaml`: the job's hyperparameters,
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
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
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
# Each job folder holds `.hydra/overrides.yaml` (a list of `key=value` strings),
# `.hydra/config.yaml` (the resolved config), `status.json` (the job's outcome) and
# `metrics.json`, whose format is
# `{"last": {...}, "best": {"epoch", "step", "mIoU", "mAcc", "aAcc", "IoU": {class: value or null}, "Acc": {...}}}`.
#
# `segohem.report.jobs.read_sweep` reads them all into `Job`s (`params` by override key,
# `result`: the best validation epoch, `status`: ok / pruned / incomplete / failed, so crashed
# or unfinished jobs are listed too). `segohem.report.sweep_summary.summarize` prints the table
# below and writes it as `summary.csv` and `summary.md`, with the plot `miou_vs_thresh.png`
# (section 6); on the command line: `python scripts/summarize_sweep.py <sweep dir>`.
# The *rare* classes are the two with the lowest mean IoU across the jobs (`--rare` picks
# others).

# %%
from segohem.report.jobs import read_sweep
from segohem.report.sweep_summary import PLOT_NAME, format_param, rare_classes, summarize

report_dir = workdir / "report"
summarize(sweep_dir, report_dir)
jobs = [job for job in read_sweep(sweep_dir) if job.result]   # the same jobs, for the plots
rare = rare_classes(jobs, None)


def thresh(job):
    return job.params["loss.thresh"]


def n_min(job):
    """As on the command line: "null" or "0.3"."""
    return format_param(job.params["loss.n_min"])


def iou(job, name):
    value = job.result["IoU"][name]
    return np.nan if value is None else value

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
    events = EventAccumulator(str(job.path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for ax, tag in zip(axes, TAGS):
        values = events.Scalars(tag)
        ax.plot([v.step for v in values], [v.value for v in values], marker=".",
                color=colors.get(thresh(job)), linestyle=styles.get(n_min(job), ":"),
                label=f"thresh={thresh(job)}, n_min={n_min(job)}")
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
n_min_values = list(dict.fromkeys(n_min(job) for job in jobs))
panels = [("mIoU", lambda job: job.result["mIoU"])]
panels += [(f"IoU {name}", lambda job, name=name: iou(job, name)) for name in rare]
fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
for ax, (title, value) in zip(axes, panels):
    for n in n_min_values:
        group = sorted((job for job in jobs if n_min(job) == n), key=thresh)
        ax.plot([thresh(job) for job in group], [value(job) for job in group],
                marker="o", linestyle=styles.get(n, ":"), label=f"n_min={n}")
    ax.set_title(f"best-epoch {title}")
    if title != "mIoU":
        ax.set_ylim(-0.02, 1)
    ax.set_xlabel("loss.thresh")
    ax.set_xticks(sorted({thresh(job) for job in jobs}))
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
ranked = sorted(jobs, key=lambda job: job.result["mIoU"], reverse=True)
choice = ranked[0]
for job in ranked:
    gap = choice.result["mIoU"] - job.result["mIoU"]
    mark = "  <- best" if job is choice else ("  (within 1 point)" if gap < 0.01 else "")
    print(f"thresh={thresh(job)}, n_min={n_min(job):<5} mIoU {job.result['mIoU']:.1%}  "
          + "  ".join(f"{name} {iou(job, name):.1%}" for name in rare) + mark)
print(f"\nbest: loss.thresh={thresh(choice)} loss.n_min={n_min(choice)} "
      f"(mIoU {choice.result['mIoU']:.1%})")
print(f"train it properly with:  segohem-train loss.thresh={thresh(choice)} "
      f"loss.n_min={n_min(choice)}")

# %% [markdown]
# ## 6. The summary's plot
#
# `summarize` (section 2) also drew mIoU against `loss.thresh`, one line per `loss.n_min`, into
# `miou_vs_thresh.png` (for an Optuna sweep it adds Optuna's own plots):
#
# ```bash
# python scripts/summarize_sweep.py multirun/train/<date>    # or: --out reports/ --rare line dot
# ```

# %%
# The plot is drawn on a bare Agg figure (no pyplot state): show its PNG.
display(Image(filename=report_dir / PLOT_NAME, width=600))

# %% [markdown]
# The sweep lives in a temporary folder; delete it when done (`shutil.rmtree(workdir)`).
