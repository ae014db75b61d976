"""Write the teaching notebooks of this folder (outputs stripped) from the cell lists below.

    python notebooks/_build_notebooks.py        # rewrites 01_*.ipynb, 02_*.ipynb, 03_*.ipynb

Edit the cells here rather than in Jupyter, so the stored notebooks stay free of outputs and
execution counts (``tests/test_notebooks.py`` checks both, and executes every notebook).
"""

# The cells hold Markdown prose (×, –, wide tables): line length and look-alike characters are
# the notebooks' business, not the linter's.
# ruff: noqa: E501, RUF001

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def md(text: str) -> tuple[str, str]:
    return ("md", text)


def code(text: str) -> tuple[str, str]:
    return ("code", text)


# --------------------------------------------------------------------------------------------
# 01: OHEM explained
# --------------------------------------------------------------------------------------------
NB01 = [
    md("""\
# 01 · Online Hard Example Mining, step by step

`OhemCELoss` averages the cross-entropy over the **hard** pixels only: the valid pixels whose
predicted probability of the true class is below `thresh`. So that a batch never trains on
(almost) nothing, it keeps at least `n_min` pixels: when fewer pixels are hard, it takes the
`n_min` largest losses instead (the *fallback*).

This notebook

1. recomputes a small worked example by hand (the fixture `tests/fixtures/ohem_walkthrough.json`)
   and checks it against `segohem.losses.OhemCELoss`,
2. shows, on an image of the embedded synthetic dataset, which pixels are kept for several
   `thresh` and `n_min` values, and
3. compares batch mining with per-image mining (`per_image=True`) and with bootstrapped
   cross-entropy (`TopKCELoss`).

No training and no files besides the fixture are needed; it runs in a few seconds on a CPU."""),
    code("""\
%matplotlib inline
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from segohem.data import SyntheticDataset
from segohem.losses import OhemCELoss, TopKCELoss

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 80"""),
    md("""\
## 1. The worked example

Two images of 4 × 4 pixels, 3 classes, `thresh = 0.7`. The fixture stores the logits, the
labels and the expected intermediate values."""),
    code("""\
walk = json.loads((Path("..") / "tests" / "fixtures" / "ohem_walkthrough.json").read_text())
logits = torch.tensor(walk["logits"])          # (B, C, H, W) = (2, 3, 4, 4)
labels = torch.tensor(walk["labels"])          # (B, H, W), int64
thresh, ignore_index, expected = walk["thresh"], walk["ignore_index"], walk["expected"]
print("logits", tuple(logits.shape), " labels", tuple(labels.shape), " thresh", thresh)
print("labels:\\n", labels)"""),
    md("""\
### Step 1 · per-pixel cross-entropy

The cross-entropy of a pixel is `-log p(true class)`, with `p = softmax(logits)` over the
classes. Ignored pixels (`label == 255`) get no loss; this example has none."""),
    code("""\
pixel_ce = F.cross_entropy(logits, labels, reduction="none", ignore_index=ignore_index)
p_true = torch.exp(-pixel_ce)                  # probability of the true class
valid = labels != ignore_index
torch.testing.assert_close(pixel_ce.flatten(), torch.tensor(expected["pixel_ce"]),
                           atol=1e-4, rtol=0)
torch.set_printoptions(precision=3, sci_mode=False)
print("per-pixel CE (nats):\\n", pixel_ce)
print("p(true class):\\n", p_true)"""),
    md("""\
### Step 2 · the threshold

A pixel is hard when `p(true class) < thresh`, i.e. when its loss exceeds `-log(thresh)`.
With `thresh = 0.7` the loss threshold is `-log 0.7 ≈ 0.3567` nats: every pixel the model
predicts with less than 70 % confidence counts. A *higher* `thresh` keeps *more* pixels
(`thresh = 1` keeps every pixel with a non-zero loss: almost plain cross-entropy)."""),
    code("""\
loss_threshold = -math.log(thresh)
hard = valid & (pixel_ce > loss_threshold)
n_valid, n_hard = int(valid.sum()), int(hard.sum())
print(f"loss threshold -log({thresh}) = {loss_threshold:.4f} nats")
print(f"valid pixels: {n_valid}, hard pixels: {n_hard}")
print("hard:\\n", hard.int())
assert math.isclose(loss_threshold, expected["threshold_on_loss"], abs_tol=1e-4)
assert (n_valid, n_hard) == (expected["valid_pixels"], expected["hard_pixels"])"""),
    md("""\
### Step 3 · `n_min` and the fallback rule

`n_min=None` (the default) means `valid // 16` (CoinCheung/BiSeNet's rule); an `int` is a
pixel count and a float in (0, 1] a fraction of the valid pixels. If fewer than `n_min`
pixels are hard, the loss is the mean of the `n_min` **largest** pixel losses instead.

Here `32 // 16 = 2` and 28 pixels are hard, so there is no fallback: the loss is the mean
over the 28 hard pixels."""),
    code("""\
n_min = n_valid // 16
fallback = n_hard < n_min
if fallback:
    by_hand = pixel_ce[valid].topk(n_min).values.mean()
else:
    by_hand = pixel_ce[hard].mean()
print(f"n_min = {n_valid} // 16 = {n_min};  fallback: {fallback}")
print(f"loss by hand: mean CE over the {n_hard} hard pixels = {by_hand:.4f}")

criterion = OhemCELoss(thresh=thresh, ignore_index=ignore_index)
loss = criterion(logits, labels)
print(f"OhemCELoss:   {loss:.4f}   (fixture: {expected['loss']})")
print(criterion.last_stats)
assert abs(by_hand.item() - expected["loss"]) < expected["loss_atol"]
assert abs(loss.item() - expected["loss"]) < expected["loss_atol"]
assert n_min == expected["n_min"]"""),
    md("""\
`last_stats` (a `MiningStats`) is what the trainer logs as `train/ohem/*`: `kept_fraction`
(kept / valid pixels), `fallback` (1 when the `n_min` rule decided) and `threshold` (the
effective loss threshold in nats: `-log(thresh)`, or the `n_min`-th largest loss in the
fallback). `selected_pixels(logits, labels)` returns the map of kept pixels (1 kept, 0
dropped or ignored):"""),
    code("""\
kept = criterion.selected_pixels(logits, labels)
fig, axes = plt.subplots(2, 3, figsize=(9, 6))
for b in range(2):
    for ax, data, title, cmap in ((axes[b, 0], labels[b], "labels", "viridis"),
                                  (axes[b, 1], pixel_ce[b], "per-pixel CE", "magma"),
                                  (axes[b, 2], kept[b], "kept by OHEM", "gray")):
        ax.imshow(data, cmap=cmap, vmin=0)
        ax.set_title(f"image {b}: {title}")
        ax.set_xticks([]), ax.set_yticks([])
    for (y, x), value in np.ndenumerate(pixel_ce[b].numpy()):
        axes[b, 1].text(x, y, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if value < 2.5 else "black")
plt.tight_layout()
plt.show()"""),
    md("""\
### The fallback in action

With a strict `thresh = 0.05` the loss threshold is `-log 0.05 ≈ 3.0` nats and only one pixel
(CE 3.75) is hard. That is fewer than `n_min = 2`, so the loss becomes the mean of the two
largest losses and the reported `threshold` is the 2nd largest loss, 2.51. Ignoring pixels
changes `valid`, hence the default `n_min`: with 16 ignored pixels `n_min = 16 // 16 = 1`."""),
    code("""\
strict = OhemCELoss(thresh=0.05)
loss = strict(logits, labels)
top2 = pixel_ce.flatten().topk(2).values
print(f"hard pixels at thresh 0.05: {int((pixel_ce > -math.log(0.05)).sum())}  (< n_min = 2)")
print(f"loss {loss:.4f} = mean of the two largest CEs {top2.tolist()} = {top2.mean():.4f}")
print(strict.last_stats)
assert torch.isclose(loss, top2.mean()) and strict.last_stats.fallback == 1

for n in (8, 0.5):   # an explicit count, then a fraction of the valid pixels
    c = OhemCELoss(thresh=0.05, n_min=n)
    k = n if isinstance(n, int) else int(n * n_valid)
    print(f"n_min={n!r}: loss {c(logits, labels):.4f} = mean of the {k} largest "
          f"{pixel_ce.flatten().topk(k).values.mean():.4f}")

half_ignored = labels.clone()
half_ignored[1] = 255                          # ignore the whole second image
loss = strict(logits, half_ignored)
print(f"second image ignored: valid {int(strict.last_stats.valid_pixels)}, n_min 16 // 16 = 1,"
      f" loss {loss:.4f} = largest CE of image 0 {pixel_ce[0].max():.4f}")"""),
    md("""\
## 2. Which pixels does OHEM keep on a real-looking image?

A sample of the embedded `SyntheticDataset` (5 object classes on a textured background; thin
*lines* and small *dots* are the rare classes; white = the ignored band around objects). We
do not train a model here: an *imperfect prediction* is built from the true mask, blurred
(uncertain edges, washed-out thin structures) and with noise, much like a half-trained
network."""),
    code("""\
dataset = SyntheticDataset(split="val", num_samples=8, image_size=(96, 96))
PALETTE = np.array([*dataset.palette, (255, 255, 255)], dtype=np.uint8)   # + white = ignore


def colorize(mask):
    \"\"\"(H, W) class ids -> (H, W, 3) RGB with the dataset palette (ignored pixels white).\"\"\"
    mask = np.asarray(mask)
    return PALETTE[np.where(mask == dataset.ignore_index, len(dataset.palette), mask)]


def fake_logits(mask, noise=0.5, blur=5, confidence=5.0, seed=0):
    \"\"\"(1, C, H, W) logits of an imperfect model: the one-hot mask, box-blurred, plus noise.\"\"\"
    mask = torch.as_tensor(mask)
    mask = torch.where(mask == dataset.ignore_index, 0, mask)
    onehot = F.one_hot(mask, len(dataset.classes)).permute(2, 0, 1).float()[None]
    blurred = F.avg_pool2d(onehot, blur, stride=1, padding=blur // 2, count_include_pad=False)
    g = torch.Generator().manual_seed(seed)
    return confidence * blurred + noise * torch.randn(blurred.shape, generator=g)


sample = dataset[1]
image, mask = sample["image"], torch.as_tensor(sample["mask"])[None]   # (H, W, 3), (1, H, W)
sample_logits = fake_logits(mask[0])
ce = F.cross_entropy(sample_logits, mask, reduction="none", ignore_index=255)[0]
p = torch.where(mask[0] == 255, float("nan"), torch.exp(-ce))
counts = np.bincount(mask[mask != 255], minlength=len(dataset.classes))
print({name: f"{100 * c / counts.sum():.1f} %" for name, c in zip(dataset.classes, counts)})

fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
axes[0].imshow(image), axes[0].set_title("image")
axes[1].imshow(colorize(mask[0])), axes[1].set_title("ground truth")
axes[2].imshow(colorize(sample_logits.argmax(1)[0])), axes[2].set_title("imperfect prediction")
im = axes[3].imshow(p, cmap="RdYlGn", vmin=0, vmax=1)
axes[3].set_title("p(true class)")
fig.colorbar(im, ax=axes[3], fraction=0.046)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()"""),
    md("""\
### A grid of `thresh` × `n_min`

White pixels are kept. Read each title as *kept fraction · effective threshold (nats)*, with
**FALLBACK** when the `n_min` rule decided. What to look for:

* a low `thresh` (0.5) keeps only the confidently wrong pixels: edges, the thin line, the
  dots. Here fewer than `valid // 16` pixels pass it, so `n_min` decides (fallback);
* a high `thresh` (0.9) also keeps the merely uncertain pixels, drifting towards plain CE;
* a large `n_min` (here 30 % of the valid pixels) overrides `thresh` whenever fewer pixels
  are hard: OHEM then behaves like top-k CE."""),
    code("""\
threshes = (0.5, 0.7, 0.9)
n_mins = (None, 0.15, 0.3)
fig, axes = plt.subplots(len(threshes), len(n_mins), figsize=(10, 10))
rows = []
for i, t in enumerate(threshes):
    for j, n in enumerate(n_mins):
        criterion = OhemCELoss(thresh=t, n_min=n)
        loss = criterion(sample_logits, mask)
        stats = criterion.last_stats
        selected = criterion.selected_pixels(sample_logits, mask)[0]
        flag = " FALLBACK" if stats.fallback > 0 else ""
        axes[i, j].imshow(selected, cmap="gray", vmin=0, vmax=1)
        axes[i, j].set_title(f"thresh={t}, n_min={n}\\nkept {stats.kept_fraction:.1%}"
                             f" · thr {stats.threshold:.3f}{flag}", fontsize=10)
        axes[i, j].axis("off")
        rows.append((t, n, loss.item(), stats.kept_fraction.item(), stats.fallback.item(),
                     stats.threshold.item()))
plt.tight_layout()
plt.show()
print(f"{'thresh':>6} {'n_min':>6} {'loss':>7} {'kept':>7} {'fallback':>8} {'thr (nats)':>10}")
for t, n, loss, kf, fb, thr in rows:
    print(f"{t:>6} {n!s:>6} {loss:>7.3f} {kf:>7.1%} {fb:>8.0f} {thr:>10.3f}")"""),
    md("""\
Which classes are kept? OHEM shifts the loss towards the rare, thin classes: compare the
class shares among the kept pixels with those among all valid pixels."""),
    code("""\
criterion = OhemCELoss(thresh=0.7)
selected = criterion.selected_pixels(sample_logits, mask)[0]
valid_px = mask[0] != 255
print(f"{'class':<11} {'all valid':>9} {'kept (thresh 0.7)':>18}")
for c, name in enumerate(dataset.classes):
    share_all = ((mask[0] == c) & valid_px).sum() / valid_px.sum()
    share_kept = (selected * (mask[0] == c)).sum() / selected.sum()
    print(f"{name:<11} {share_all:>9.1%} {share_kept:>18.1%}")"""),
    md("""\
## 3. Batch mining, per-image mining and top-k

A batch of four images whose predictions are of very different quality: image 0 is almost
perfect, image 3 is poor. Three losses:

* `OhemCELoss(thresh=0.7)` mines the **whole batch** at once: `n_min = valid // 16` counts
  the batch's pixels, so the easy image may contribute (almost) nothing;
* `OhemCELoss(thresh=0.7, per_image=True)` mines **each image** on its own (its own `n_min`
  and fallback) and averages the per-image losses: every image contributes;
* `TopKCELoss(top_k=0.1)` (bootstrapped CE, DeepLab / detectron2) always keeps exactly 10 %
  of the valid pixels, the largest losses, however many are hard."""),
    code("""\
quality = [dict(noise=0.15, blur=1, confidence=8.0), dict(noise=0.5, blur=3, confidence=6.0),
           dict(noise=0.6, blur=5, confidence=5.0), dict(noise=1.2, blur=7, confidence=3.0)]
samples = [dataset[i] for i in range(4)]
masks = torch.stack([torch.as_tensor(s["mask"]) for s in samples])
batch_logits = torch.cat([fake_logits(m, seed=i, **q)
                          for i, (m, q) in enumerate(zip(masks, quality))])
losses = {"OHEM, batch": OhemCELoss(thresh=0.7),
          "OHEM, per_image=True": OhemCELoss(thresh=0.7, per_image=True),
          "TopKCELoss(top_k=0.1)": TopKCELoss(top_k=0.1)}

fig, axes = plt.subplots(len(losses) + 1, 4, figsize=(11, 11.5))
for b in range(4):
    axes[0, b].imshow(colorize(batch_logits[b].argmax(0)))
    axes[0, b].set_title(f"image {b}: prediction")
for row, (name, criterion) in enumerate(losses.items(), start=1):
    loss = criterion(batch_logits, masks)
    stats = criterion.last_stats
    selected = criterion.selected_pixels(batch_logits, masks)
    print(f"{name:<22} loss {loss:.3f}  kept {stats.kept_fraction:6.1%}  "
          f"fallback {stats.fallback:.2f}  threshold {stats.threshold:.3f}")
    for b in range(4):
        share = selected[b].sum() / (masks[b] != 255).sum()
        axes[row, b].imshow(selected[b], cmap="gray", vmin=0, vmax=1)
        axes[row, b].set_title(f"{name}\\nkept {share:.1%} of image {b}", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()"""),
    md("""\
With batch mining the poor image dominates the batch's hard pixels; per-image mining gives
the nearly perfect image its own `n_min` (its fallback is counted in `fallback`, now the
fraction of images that used it; with nothing really hard in that image, its kept pixels are
scattered noise, the price of a per-image minimum); top-k keeps the same 10 % of the batch
whether the model is good or bad.

## Tuning `thresh` and `n_min`

* Watch `train/ohem/kept_fraction` and `train/ohem/fallback` in TensorBoard. A kept fraction
  near 1 means `thresh` is too high for your model (almost plain CE); a fallback rate near 1
  means `n_min` decides, not `thresh` (effectively top-k CE with `k = n_min`).
* Start from `thresh=0.7, n_min=None` (BiSeNet's defaults). Typical `thresh` values are
  0.5–0.9; sweep them with `segohem-train -m loss.thresh=0.5,0.7,0.9 loss.n_min=null,0.3`
  (notebook 03).
* `n_min` from other toolkits (`min_kept`):

| toolkit | their setting | counted over | segohem |
|---|---|---|---|
| CoinCheung/BiSeNet `OhemCELoss` | `n_min = valid // 16` | batch on one GPU | `n_min=None` (default) |
| mmsegmentation `OHEMPixelSampler` | `min_kept=100000` | **each image** | `per_image=True, n_min=100000`, or `n_min=100000 * B` for batch mining |
| PaddleSeg `OhemCrossEntropyLoss` | `min_kept=10000` | batch on one GPU | `n_min=10000` |
| HRNet `OhemCrossEntropy` | `min_kept=100000` | batch on one GPU | `n_min=100000` |
| detectron2 `DeepLabCE` | `top_k_percent_pixels=0.2` | batch | `TopKCELoss(top_k=0.2)` |

  mmsegmentation also divides the loss by all valid pixels rather than the kept ones, so its
  loss scale changes with the kept count; segohem's is the mean over the kept pixels.
* Under DDP each GPU mines its own shard (its `n_min` counts its own pixels), as in every
  toolkit above; `loss.sync_across_ranks=true` mines the global batch."""),
]


# --------------------------------------------------------------------------------------------
# 02: train and inspect
# --------------------------------------------------------------------------------------------
NB02 = [
    md("""\
# 02 · Train a model and look inside

A short training run from Python, with the same Hydra configs as `segohem-train`, then:

1. load the best checkpoint and predict on validation images,
2. read the per-class IoU from the run's `metrics.json`,
3. read back from TensorBoard's event files the images the trainer logged (`val/samples`:
   input | ground truth | prediction | pixels OHEM kept) and the `train/ohem/kept_fraction`
   curve.

The run is tiny (64 × 64 images, 384 training images, 10 epochs: under a minute on a
2-core CPU) but long enough for sensible predictions. The default `segohem-train` (96 × 96,
512 images, 18 epochs) reaches mIoU ≈ 84 %."""),
    code("""\
%matplotlib inline
import io
import json
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

plt.rcParams["figure.dpi"] = 80
# Quieter output: num_workers=0 keeps the notebook simple (Lightning would suggest more
# workers); the other two are notices from tqdm and from a Lightning/torch version pairing.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*IProgress not found.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")"""),
    md("""\
## 1. Compose the config

`initialize_config_module` points Hydra at the configs shipped in the package
(`segohem.conf`); `compose("train", overrides=[...])` takes the same overrides as the command
line. Under the compose API there is no Hydra run directory, so `paths.output_dir` (by default
`${hydra:runtime.output_dir}`) is set by hand."""),
    code("""\
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
GlobalHydra.instance().clear()   # allows re-running this cell
with initialize_config_module(version_base="1.3", config_module="segohem.conf"):
    cfg = compose("train", overrides=OVERRIDES)
output_dir = Path(tempfile.mkdtemp(prefix="segohem_nb02_"))
with open_dict(cfg):
    cfg.paths.output_dir = str(output_dir)
print("run directory:", output_dir)
print(OmegaConf.to_yaml(cfg.loss))"""),
    md("""\
## 2. Train

`segohem.training.train(cfg)` is what `segohem-train` runs: it builds the datasets, the
model, the loss and the Lightning trainer from the config, fits, and returns the best
validation mIoU. The run directory gets `checkpoints/`, `tensorboard/` and `metrics.json`."""),
    code("""\
from segohem.training import train

start = time.perf_counter()
best_miou = train(cfg)
print(f"best val mIoU {best_miou:.3f} after {time.perf_counter() - start:.0f} s")
files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
print(files)"""),
    md("""\
## 3. Load the best checkpoint and predict

`checkpoints/best.ckpt` is a Lightning checkpoint. Besides the weights, segohem stores the
resolved run config and the class names under `checkpoint["segohem"]`, so the model can be
rebuilt without the original command line: `segohem.checkpoint.load_model` does that (safe
`weights_only` loading, the model rebuilt from the config, weights loaded, eval mode)."""),
    code("""\
from segohem.checkpoint import load_model

loaded = load_model(output_dir / "checkpoints" / "best.ckpt")
model, run_cfg, class_names = loaded.model, loaded.config, loaded.class_names
checkpoint = torch.load(output_dir / "checkpoints" / "best.ckpt", map_location="cpu",
                        weights_only=True)
saved = checkpoint["segohem"]
print(f"checkpoint of epoch {checkpoint['epoch']} (step {checkpoint['global_step']}), "
      f"val mIoU {saved['best_val']['mIoU']:.3f}; classes {class_names}")"""),
    md("""\
The validation set from the same config: once with its transform (normalised tensors, the
model's input) and once without (the raw uint8 images, for display)."""),
    code("""\
val_set = instantiate(run_cfg.dataset.val_set)
raw_val = instantiate(run_cfg.dataset.val_set, transform=None)
ignore_index = run_cfg.dataset.ignore_index
palette = np.array([*raw_val.palette, (255, 255, 255)], dtype=np.uint8)   # + white = ignore


def colorize(ids):
    ids = np.asarray(ids)
    return palette[np.where(ids == ignore_index, len(raw_val.palette), ids)]


indices = [0, 1, 2, 3, 4]
images = torch.stack([val_set[i]["image"] for i in indices])
masks = torch.stack([torch.as_tensor(val_set[i]["mask"]) for i in indices])
with torch.no_grad():
    logits = model(images)
    if logits.shape[-2:] != masks.shape[-2:]:   # models with an output stride
        logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear")
pred = logits.argmax(1)

fig, axes = plt.subplots(len(indices), 3, figsize=(7.5, 2.6 * len(indices)))
for row, i in enumerate(indices):
    for ax, data, title in ((axes[row, 0], raw_val[i]["image"], "image"),
                            (axes[row, 1], colorize(masks[row]), "ground truth"),
                            (axes[row, 2], colorize(pred[row]), "prediction")):
        ax.imshow(data)
        ax.set_title(title if row == 0 else "")
        ax.axis("off")
handles = [plt.Rectangle((0, 0), 1, 1, color=np.array(c) / 255) for c in raw_val.palette]
fig.legend(handles, class_names, loc="lower center", ncol=len(class_names))
plt.tight_layout(rect=(0, 0.03, 1, 1))
plt.show()"""),
    md("""\
## 4. Per-class IoU from `metrics.json`

`metrics.json` holds the `last` and the `best` validation epoch (epoch, step, mIoU, mAcc,
aAcc, and IoU / Acc by class name; `null` for a class absent from both prediction and
ground truth). With this little training the thin *line* class lags behind: it is the class
OHEM focuses on, and the one that needs the longer default run."""),
    code("""\
from segohem.training import summary_table

metrics = json.loads((output_dir / "metrics.json").read_text())
best, last = metrics["best"], metrics["last"]
print(f"best epoch {best['epoch']} (step {best['step']}), last epoch {last['epoch']}\\n")
print(summary_table(best, class_names))

values = [np.nan if best["IoU"][c] is None else best["IoU"][c] for c in class_names]
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(class_names, values, color=[np.array(c) / 255 for c in raw_val.palette],
       edgecolor="grey")
ax.axhline(best["mIoU"], color="grey", linestyle="--", label=f"mIoU {best['mIoU']:.1%}")
ax.set_ylabel(f"IoU (epoch {best['epoch']})")
ax.set_ylim(0, 1)
ax.legend(loc="lower left")
plt.show()"""),
    md("""\
## 5. What TensorBoard saw

`tensorboard --logdir <run dir>` shows these interactively; here the event files are read
with TensorBoard's `EventAccumulator` (`size_guidance={"images": 0}` keeps every image
instead of a sample). Each `val/samples` image has one row per validation image:
input | ground truth | prediction | pixels OHEM kept (white). Early in training OHEM keeps
large regions; later mostly object borders and thin structures."""),
    code("""\
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
plt.show()"""),
    md("""\
The mining statistics over training: `train/ohem/kept_fraction` (kept / valid pixels, logged
every `trainer.log_every_n_steps` steps), the fallback flag (1 when fewer than `n_min`
pixels were hard), the validation mIoU and the per-class IoU. As the model gets better
fewer pixels are hard; a fallback rate near 1 would mean `n_min`, not `thresh`, decides what is trained on."""),
    code("""\
def scalar(tag):
    values = events.Scalars(tag)
    return np.array([v.step for v in values]), np.array([v.value for v in values])


fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
for ax, tag in zip(axes, ("train/ohem/kept_fraction", "train/ohem/fallback", "val/mIoU")):
    steps, values = scalar(tag)
    ax.plot(steps, values, marker=".")
    ax.set_title(tag)
axes[1].set_ylim(-0.05, 1.05)
for name, color in zip(class_names, raw_val.palette):
    steps, values = scalar(f"val/IoU/{name}")
    axes[3].plot(steps, values, marker=".", label=name,
                 color=np.array(color) / 255 if name != "background" else "grey")
axes[3].set_title("val/IoU/<class>")
axes[3].legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()"""),
    md("""\
## 6. Which classes does OHEM mine now?

The trained model's logits on the validation images, through the loss of the run
(`selected_pixels` marks the kept pixels): the share of each class among the kept pixels
against its share among all valid pixels."""),
    code("""\
criterion = instantiate(run_cfg.loss)
val_images = torch.stack([val_set[i]["image"] for i in range(len(val_set))])
val_masks = torch.stack([torch.as_tensor(val_set[i]["mask"]) for i in range(len(val_set))])
with torch.no_grad():
    val_logits = model(val_images)
selected = criterion.selected_pixels(val_logits, val_masks)
criterion(val_logits, val_masks)
print(f"kept {criterion.last_stats.kept_fraction:.1%} of the valid pixels, "
      f"fallback {criterion.last_stats.fallback:.0f}\\n")
valid = val_masks != ignore_index
print(f"{'class':<11} {'all valid':>9} {'kept':>7}")
for c, name in enumerate(class_names):
    share_all = ((val_masks == c) & valid).sum() / valid.sum()
    share_kept = (selected * (val_masks == c)).sum() / selected.sum()
    print(f"{name:<11} {share_all:>9.1%} {share_kept:>7.1%}")"""),
    md("""\
Next: notebook 03 sweeps `loss.thresh` and `loss.n_min` and compares the runs. The run
directory above is a temporary folder; delete it when done (`shutil.rmtree(output_dir)`)."""),
]


# --------------------------------------------------------------------------------------------
# 03: sweep analysis
# --------------------------------------------------------------------------------------------
NB03 = [
    md("""\
# 03 · A small `thresh` × `n_min` sweep, analysed

OHEM has two knobs: `loss.thresh` (which pixels count as hard) and `loss.n_min` (how many
pixels are kept at least). This notebook runs a Hydra grid sweep over both, exactly as on the
command line, then reads every job's folder:

* `.hydra/overrides.yaml`: the job's hyperparameters,
* `metrics.json`: best / last validation metrics with per-class IoU,
* `tensorboard/`: the `val/mIoU` curve and the mining statistics,

plots mIoU and the rare classes' IoU against `thresh` for each `n_min`, and picks the best
configuration.

The sweep is tiny (6 jobs of 48 × 48 images, 6 epochs each: about a minute and a half on a
2-core CPU), so differences of a point or two are noise; the *shape* of the result is what to look
at. For real decisions run longer and over several seeds (`scripts/compare_losses.py` runs 3)."""),
    code("""\
%matplotlib inline
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

plt.rcParams["figure.dpi"] = 80"""),
    md("""\
## 1. Run the sweep

`segohem-train -m` (here `python -m segohem.train -m`, with this notebook's Python) runs one
job per combination of the comma-separated values, one after the other, each in its own
numbered folder under `hydra.sweep.dir`.

About the `n_min` values: `null` means `valid // 16`, i.e. 6.25 % of the valid pixels. A
value below that (such as `0.05`) would never bind before the default does, so in a run this
short it would reproduce the `null` jobs exactly; `0.3` (keep at least 30 %) makes the
fallback visible."""),
    code("""\
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
command = [sys.executable, "-m", "segohem.train", "-m",
           "loss.thresh=0.5,0.7,0.9", "loss.n_min=null,0.3", *TINY,
           f"hydra.sweep.dir={sweep_dir}"]
print("segohem-train", shlex.join(command[4:]), "\\n")

start = time.perf_counter()
done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
if done.returncode != 0:
    raise RuntimeError(f"sweep failed:\\n{done.stdout[-3000:]}\\n{done.stderr[-3000:]}")
for line in (done.stdout + done.stderr).splitlines():
    if "[HYDRA]" in line:
        print(line.split("[HYDRA]", 1)[1].strip())
print(f"\\nsweep finished in {time.perf_counter() - start:.0f} s: {sweep_dir}")"""),
    md("""\
## 2. Read the job folders

Each job folder holds `.hydra/overrides.yaml` (a list of `key=value` strings) and
`metrics.json`, whose format is
`{"last": {...}, "best": {"epoch", "step", "mIoU", "mAcc", "aAcc", "IoU": {class: value or null}, "Acc": {...}}}`."""),
    code("""\
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
print("\\nrare classes (lowest mean IoU):", rare)"""),
    md("""\
## 3. Curves from TensorBoard

Every job logged into its own `tensorboard/` folder (`tensorboard --logdir <sweep dir>` shows
them side by side; its HPARAMS tab lists the hyperparameters with `val/mIoU_best`). Besides
`val/mIoU`, the epoch means of the mining statistics explain the differences: the kept
fraction, and the fallback rate (the share of steps where `n_min`, not `thresh`, decided)."""),
    code("""\
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
plt.show()"""),
    md("""\
## 4. mIoU and rare-class IoU against `thresh`

One line per `n_min`. A low `thresh` concentrates the loss on the confidently wrong pixels
(borders, thin and small objects); a high one drifts towards plain cross-entropy. A large
`n_min` keeps easy pixels in the loss once the model gets good (fallback rate → 1), which
dilutes the hard ones. (The thinnest class, *line*, may still be at 0 after so few steps:
it is the last one a model learns, and the one that needs the longer default run.)"""),
    code("""\
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
plt.show()"""),
    md("""\
## 5. Pick the configuration

By best-epoch mIoU. Configurations within about a point of the best are as good within the
noise of a run this short: look at their rare-class IoU too, and confirm with longer runs and
other seeds."""),
    code("""\
ranked = sorted(jobs, key=lambda job: job["best"]["mIoU"], reverse=True)
choice = ranked[0]
for job in ranked:
    gap = choice["best"]["mIoU"] - job["best"]["mIoU"]
    mark = "  <- best" if job is choice else ("  (within 1 point)" if gap < 0.01 else "")
    print(f"thresh={job['thresh']}, n_min={job['n_min']:<5} mIoU {job['best']['mIoU']:.1%}  "
          + "  ".join(f"{name} {iou(job, name):.1%}" for name in rare) + mark)
print(f"\\nbest: loss.thresh={choice['thresh']} loss.n_min={choice['n_min']} "
      f"(mIoU {choice['best']['mIoU']:.1%})")
print(f"train it properly with:  segohem-train loss.thresh={choice['thresh']} "
      f"loss.n_min={choice['n_min']}")"""),
    md("""\
## Alternative: `scripts/summarize_sweep.py`

The repository's script does the same reading (it also copes with failed or unfinished jobs
and Optuna sweeps) and writes `summary.csv`, `summary.md` and `miou_vs_thresh.png`:

```bash
python scripts/summarize_sweep.py multirun/train/<date>    # or: --out reports/ --rare line dot
```

From Python, import it from `scripts/`:"""),
    code("""\
from IPython.display import Image, display

scripts = Path("..").resolve() / "scripts"
if (scripts / "summarize_sweep.py").is_file():
    sys.path.insert(0, str(scripts))
    import summarize_sweep

    report_dir = workdir / "report"
    status = summarize_sweep.main([str(sweep_dir), "--out", str(report_dir)])
    assert status == 0, status
    # The script switches matplotlib to the Agg backend while plotting, so show its PNG
    # directly (run `%matplotlib inline` again before plotting more in this kernel).
    display(Image(filename=report_dir / summarize_sweep.PLOT_NAME, width=600))
else:
    print("scripts/summarize_sweep.py is not in this checkout")"""),
    md("""\
The sweep lives in a temporary folder; delete it when done (`shutil.rmtree(workdir)`)."""),
]


NOTEBOOKS = {
    "01_ohem_explained.ipynb": NB01,
    "02_train_and_inspect.ipynb": NB02,
    "03_sweep_analysis.ipynb": NB03,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata=METADATA)
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"cell-{i:02d}"  # stable ids: rebuilding gives the same file
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(names: list[str]) -> None:
    for name, cells in NOTEBOOKS.items():
        if cells and (not names or name in names):
            nbformat.write(build(cells), HERE / name)
            print("wrote", HERE / name)


if __name__ == "__main__":
    main(sys.argv[1:])
