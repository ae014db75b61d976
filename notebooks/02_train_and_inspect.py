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
# # 02 · Train a model and look inside
#
# A short training run from Python, with the same Hydra configs as `segohem-train`, then:
#
# 1. load the best checkpoint and predict on validation images,
# 2. read the per-class IoU from the run's `metrics.json`,
# 3. read back from TensorBoard's event files the images the trainer logged (`val/samples`:
#    input | ground truth | prediction | pixels OHEM kept) and the `train/ohem/kept_fraction`
#    curve.
#
# The run is tiny (64 × 64 images, 384 training images, 10 epochs: 75 s on a slow
# 2-core CPU) but long enough for sensible predictions. The default `segohem-train` (96 × 96,
# 512 images, 18 epochs) reaches mIoU ≈ 85 %.

# %%
# %matplotlib inline
import io
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import make_grid

from segohem.config.compose import compose_config

plt.rcParams["figure.dpi"] = 80
# Quieter output: num_workers=0 keeps the notebook simple (Lightning would suggest more
# workers); the other two are notices from tqdm and from a Lightning/torch version pairing.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*IProgress not found.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")

# %% [markdown]
# ## 1. Compose the config
#
# `segohem.config.compose.compose_config` composes the configs shipped in the package
# (`segohem.conf`, with Hydra's compose API) and takes the same overrides as the command line.
# Under the compose API there is no Hydra run directory, so `paths.output_dir` (by default
# `${hydra:runtime.output_dir}`) is its third argument. The cell can be re-run as it is.

# %%
OVERRIDES = [
    "dataset.image_size=[64,64]",
    "dataset.train_set.num_samples=384",
    "dataset.val_set.num_samples=32",
    "dataset.num_workers=0",
    "trainer.max_epochs=10",
    "min_train_steps=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "loss.thresh=0.7",           # the defaults, spelled out: OHEM with BiSeNet's settings
    "loss.n_min=null",
]
output_dir = Path(tempfile.mkdtemp(prefix="segohem_nb02_"))
cfg = compose_config("train", OVERRIDES, output_dir)
print("run directory:", output_dir)
print(OmegaConf.to_yaml(cfg.loss))

# %% [markdown]
# ## 2. Train
#
# `segohem.train.run.train(cfg)` is what `segohem-train` runs: it builds the datasets, the
# model, the loss and the Lightning trainer from the config, fits, and returns the best
# validation mIoU. The run directory gets `checkpoints/`, `tensorboard/` and `metrics.json`.

# %%
from segohem.train.run import train

start = time.perf_counter()
best_miou = train(cfg)
print(f"best val mIoU {best_miou:.3f} after {time.perf_counter() - start:.0f} s")
files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
print(files)

# %% [markdown]
# ## 3. Load the best checkpoint and predict
#
# `checkpoints/best.ckpt` is a Lightning checkpoint. Besides the weights, segohem stores the
# resolved run config and the class names under `checkpoint["segohem"]`, so the model can be
# rebuilt without the original command line: `segohem.train.checkpoint.load_model` does that (safe
# `weights_only` loading, the model rebuilt from the config, weights loaded, eval mode; it also
# returns the dataset's colours, `palette`, which every picture of segohem uses).

# %%
from segohem.train.checkpoint import load_model

loaded = load_model(output_dir / "checkpoints" / "best.ckpt")
model, run_cfg, class_names = loaded.model, loaded.config, loaded.class_names
palette, ignore_index = loaded.palette, loaded.ignore_index
checkpoint = torch.load(output_dir / "checkpoints" / "best.ckpt", map_location="cpu",
                        weights_only=True)
saved = checkpoint["segohem"]
print(f"checkpoint of epoch {checkpoint['epoch']} (step {checkpoint['global_step']}), "
      f"val mIoU {saved['best_val']['mIoU']:.3f}; classes {class_names}")

# %% [markdown]
# The validation set from the same config: once with its transform (normalised tensors, the
# model's input) and once without (the raw uint8 images, for display).
# `segohem.infer.core.predict_scores` is the inference of `segohem-eval` / `segohem-predict`
# (logits at the input size; sliding windows and TTA on request). The pictures come from
# `segohem.viz`, as in TensorBoard and `segohem-predict`: `colorize` (class ids -> the palette's
# colours, ignored pixels white), `overlay` (colours blended into the image) and `legend` (the
# colour key under a picture).

# %%
from segohem.infer.core import predict_scores
from segohem.viz import colorize, legend, legend_entries, overlay

val_set = instantiate(run_cfg.dataset.val_set)
raw_val = instantiate(run_cfg.dataset.val_set, transform=None)
indices = [0, 1, 2, 3, 4]
images = torch.stack([val_set[i]["image"] for i in indices])
masks = torch.stack([torch.as_tensor(val_set[i]["mask"]) for i in indices])
pred = predict_scores(model, images).argmax(1)

raw = torch.stack([torch.as_tensor(raw_val[i]["image"]).permute(2, 0, 1) for i in indices])
blended = torch.stack([overlay(image, ids, palette, alpha=0.5) for image, ids in zip(raw, pred)])
columns = [raw / 255, colorize(masks, palette, ignore_index), colorize(pred, palette, ignore_index),
           blended / 255]                           # each (B, 3, H, W) in [0, 1]
grid = make_grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns), pad_value=1.0)
key = legend(grid.shape[2], legend_entries(class_names, palette, ignore_index))
picture = torch.cat([grid, key / 255], dim=1)
plt.figure(figsize=(7.5, 7.5 * picture.shape[1] / picture.shape[2]))
plt.imshow(picture.permute(1, 2, 0), interpolation="nearest")
plt.title("image | ground truth | prediction | prediction over the image")
plt.axis("off")
plt.show()

# %% [markdown]
# ## 4. Per-class IoU from `metrics.json`
#
# `metrics.json` holds the `last` and the `best` validation epoch (epoch, step, mIoU, mAcc,
# aAcc, and IoU / Acc by class name; `null` for a class absent from both prediction and
# ground truth). With this little training the thin *line* class lags behind: it is the class
# OHEM focuses on, and the one that needs the longer default run.

# %%
from segohem.report.metrics_json import read_report, summary_table

metrics = read_report(output_dir)   # the run directory's metrics.json
best, last = metrics["best"], metrics["last"]
print(f"best epoch {best['epoch']} (step {best['step']}), last epoch {last['epoch']}\n")
print(summary_table(best, class_names))

values = [np.nan if best["IoU"][c] is None else best["IoU"][c] for c in class_names]
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(class_names, values, color=[np.array(c) / 255 for c in palette],
       edgecolor="grey")
ax.axhline(best["mIoU"], color="grey", linestyle="--", label=f"mIoU {best['mIoU']:.1%}")
ax.set_ylabel(f"IoU (epoch {best['epoch']})")
ax.set_ylim(0, 1)
ax.legend(loc="lower left")
plt.show()

# %% [markdown]
# ## 5. What TensorBoard saw
#
# `tensorboard --logdir <run dir>` shows these interactively; here the event files are read
# with TensorBoard's `EventAccumulator` (`size_guidance={"images": 0}` keeps every image
# instead of a sample). Each `val/samples` image has one row per validation image:
# input | ground truth | prediction | pixels OHEM kept (white), and under the rows a legend of
# the class colours. Early in training OHEM keeps large regions; later mostly object borders
# and thin structures.

# %%
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

events = EventAccumulator(str(output_dir / "tensorboard"),
                          size_guidance={"images": 0, "scalars": 0})
events.Reload()
print("scalars:", events.Tags()["scalars"])
samples = events.Images("val/samples")
print(f"{len(samples)} val/samples images, at steps {[s.step for s in samples]}")

shown = [samples[0], samples[len(samples) // 2], samples[-1]]
fig, axes = plt.subplots(1, len(shown), figsize=(15, 5.5))
for ax, event in zip(axes, shown):
    ax.imshow(plt.imread(io.BytesIO(event.encoded_image_string), format="png"))
    ax.set_title(f"step {event.step}: input | truth | prediction | kept")
    ax.axis("off")
plt.tight_layout()
plt.show()


# %% [markdown]
# The mining statistics over training: `train/ohem/kept_fraction` (kept / valid pixels, logged
# every `trainer.log_every_n_steps` steps), the fallback flag (1 when fewer than `n_min`
# pixels were hard), the validation mIoU and the per-class IoU. As the model gets better
# fewer pixels are hard; a fallback rate near 1 would mean `n_min`, not `thresh`, decides what is trained on.

# %%
def scalar(tag):
    values = events.Scalars(tag)
    return np.array([v.step for v in values]), np.array([v.value for v in values])


fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
for ax, tag in zip(axes, ("train/ohem/kept_fraction", "train/ohem/fallback", "val/mIoU")):
    steps, values = scalar(tag)
    ax.plot(steps, values, marker=".")
    ax.set_title(tag)
axes[1].set_ylim(-0.05, 1.05)
for name, color in zip(class_names, palette):
    steps, values = scalar(f"val/IoU/{name}")
    axes[3].plot(steps, values, marker=".", label=name,
                 color=np.array(color) / 255 if name != "background" else "grey")
axes[3].set_title("val/IoU/<class>")
axes[3].legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Which classes does OHEM mine now?
#
# The trained model's logits on the validation images, through the loss of the run
# (`selected_pixels` marks the kept pixels): the share of each class among the kept pixels
# against its share among all valid pixels.

# %%
criterion = instantiate(run_cfg.loss)
val_images = torch.stack([val_set[i]["image"] for i in range(len(val_set))])
val_masks = torch.stack([torch.as_tensor(val_set[i]["mask"]) for i in range(len(val_set))])
val_logits = predict_scores(model, val_images)
selected = criterion.selected_pixels(val_logits, val_masks)
criterion(val_logits, val_masks)
print(f"kept {criterion.last_stats.kept_fraction:.1%} of the valid pixels, "
      f"fallback {criterion.last_stats.fallback:.0f}\n")
valid = val_masks != ignore_index
print(f"{'class':<11} {'all valid':>9} {'kept':>7}")
for c, name in enumerate(class_names):
    share_all = ((val_masks == c) & valid).sum() / valid.sum()
    share_kept = (selected * (val_masks == c)).sum() / selected.sum()
    print(f"{name:<11} {share_all:>9.1%} {share_kept:>7.1%}")

# %% [markdown]
# Next: notebook 03 sweeps `loss.thresh` and `loss.n_min` and compares the runs. The run
# directory above is a temporary folder; delete it when done (`shutil.rmtree(output_dir)`).
