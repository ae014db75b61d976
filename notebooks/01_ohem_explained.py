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
# # 01 · Online Hard Example Mining, step by step
#
# `OhemCELoss` averages the cross-entropy over the **hard** pixels only: the valid pixels whose
# predicted probability of the true class is below `thresh`. So that a batch never trains on
# (almost) nothing, it keeps at least `n_min` pixels: when fewer pixels are hard, it takes the
# `n_min` largest losses instead (the *fallback*).
#
# This notebook
#
# 1. recomputes a small worked example by hand (the fixture `tests/fixtures/ohem_walkthrough.json`)
#    and checks it against `segohem.losses.OhemCELoss`,
# 2. shows, on an image of the embedded synthetic dataset, which pixels are kept for several
#    `thresh` and `n_min` values, and
# 3. compares batch mining with per-image mining (`per_image=True`) and with bootstrapped
#    cross-entropy (`TopKCELoss`).
#
# No training and no files besides the fixture are needed; it runs in a few seconds on a CPU.

# %%
# %matplotlib inline
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from segohem.data import SyntheticDataset
from segohem.losses import OhemCELoss, TopKCELoss
from segohem.viz import colorize, legend, legend_entries

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. The worked example
#
# Two images of 4 × 4 pixels, 3 classes, `thresh = 0.7`. The fixture stores the logits, the
# labels and the expected intermediate values.

# %%
walk = json.loads((Path("..") / "tests" / "fixtures" / "ohem_walkthrough.json").read_text())
logits = torch.tensor(walk["logits"])          # (B, C, H, W) = (2, 3, 4, 4)
labels = torch.tensor(walk["labels"])          # (B, H, W), int64
thresh, ignore_index, expected = walk["thresh"], walk["ignore_index"], walk["expected"]
print("logits", tuple(logits.shape), " labels", tuple(labels.shape), " thresh", thresh)
print("labels:\n", labels)

# %% [markdown]
# ### Step 1 · per-pixel cross-entropy
#
# The cross-entropy of a pixel is `-log p(true class)`, with `p = softmax(logits)` over the
# classes. Ignored pixels (`label == 255`) get no loss; this example has none.

# %%
pixel_ce = F.cross_entropy(logits, labels, reduction="none", ignore_index=ignore_index)
p_true = torch.exp(-pixel_ce)                  # probability of the true class
valid = labels != ignore_index
torch.testing.assert_close(pixel_ce.flatten(), torch.tensor(expected["pixel_ce"]),
                           atol=1e-4, rtol=0)
torch.set_printoptions(precision=3, sci_mode=False)
print("per-pixel CE (nats):\n", pixel_ce)
print("p(true class):\n", p_true)

# %% [markdown]
# ### Step 2 · the threshold
#
# A pixel is hard when `p(true class) < thresh`, i.e. when its loss exceeds `-log(thresh)`.
# With `thresh = 0.7` the loss threshold is `-log 0.7 ≈ 0.3567` nats: every pixel the model
# predicts with less than 70 % confidence counts. A *higher* `thresh` keeps *more* pixels
# (`thresh = 1` keeps every pixel with a non-zero loss: almost plain cross-entropy).

# %%
loss_threshold = -math.log(thresh)
hard = valid & (pixel_ce > loss_threshold)
n_valid, n_hard = int(valid.sum()), int(hard.sum())
print(f"loss threshold -log({thresh}) = {loss_threshold:.4f} nats")
print(f"valid pixels: {n_valid}, hard pixels: {n_hard}")
print("hard:\n", hard.int())
assert math.isclose(loss_threshold, expected["threshold_on_loss"], abs_tol=1e-4)
assert (n_valid, n_hard) == (expected["valid_pixels"], expected["hard_pixels"])

# %% [markdown]
# ### Step 3 · `n_min` and the fallback rule
#
# `n_min=None` (the default) means `valid // 16` (CoinCheung/BiSeNet's rule); an `int` is a
# pixel count and a float in (0, 1] a fraction of the valid pixels. If fewer than `n_min`
# pixels are hard, the loss is the mean of the `n_min` **largest** pixel losses instead.
#
# Here `32 // 16 = 2` and 28 pixels are hard, so there is no fallback: the loss is the mean
# over the 28 hard pixels.

# %%
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
assert n_min == expected["n_min"]

# %% [markdown]
# `last_stats` (a `MiningStats`) is what the trainer logs as `train/ohem/*`: `kept_fraction`
# (kept / valid pixels), `fallback` (1 when the `n_min` rule decided) and `threshold` (the
# effective loss threshold in nats: `-log(thresh)`, or the `n_min`-th largest loss in the
# fallback). `selected_pixels(logits, labels)` returns the map of kept pixels (1 kept, 0
# dropped or ignored):

# %%
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
plt.show()

# %% [markdown]
# ### The fallback in action
#
# With a strict `thresh = 0.05` the loss threshold is `-log 0.05 ≈ 3.0` nats and only one pixel
# (CE 3.75) is hard. That is fewer than `n_min = 2`, so the loss becomes the mean of the two
# largest losses and the reported `threshold` is the 2nd largest loss, 2.51. Ignoring pixels
# changes `valid`, hence the default `n_min`: with 16 ignored pixels `n_min = 16 // 16 = 1`.

# %%
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
      f" loss {loss:.4f} = largest CE of image 0 {pixel_ce[0].max():.4f}")

# %% [markdown]
# ## 2. Which pixels does OHEM keep on a real-looking image?
#
# A sample of the embedded `SyntheticDataset` (5 object classes on a textured background; thin
# *lines* and small *dots* are the rare classes; white = the ignored band around objects). We
# do not train a model here: an *imperfect prediction* is built from the true mask, blurred
# (uncertain edges, washed-out thin structures) and with noise, much like a half-trained
# network. The colours are the dataset's palette, through `segohem.viz` as in TensorBoard and
# `segohem-predict`; `legend` draws the key.

# %%
dataset = SyntheticDataset(split="val", num_samples=8, image_size=(96, 96))


def rgb(ids):
    """(H, W) class ids -> (H, W, 3) colours in [0, 1] for imshow (ignored pixels white)."""
    ids = torch.as_tensor(ids)[None]
    return colorize(ids, dataset.palette, dataset.ignore_index)[0].permute(1, 2, 0)


def fake_logits(mask, noise=0.5, blur=5, confidence=5.0, seed=0):
    """(1, C, H, W) logits of an imperfect model: the one-hot mask, box-blurred, plus noise."""
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
axes[1].imshow(rgb(mask[0])), axes[1].set_title("ground truth")
axes[2].imshow(rgb(sample_logits.argmax(1)[0])), axes[2].set_title("imperfect prediction")
im = axes[3].imshow(p, cmap="RdYlGn", vmin=0, vmax=1)
axes[3].set_title("p(true class)")
fig.colorbar(im, ax=axes[3], fraction=0.046)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
key = legend(720, legend_entries(dataset.classes, dataset.palette, dataset.ignore_index))
plt.figure(figsize=(9, 9 * key.shape[1] / key.shape[2]))   # 1 pixel per pixel at 80 dpi
plt.imshow(key.permute(1, 2, 0)), plt.axis("off")
plt.show()

# %% [markdown]
# ### A grid of `thresh` × `n_min`
#
# White pixels are kept. Read each title as *kept fraction · effective threshold (nats)*, with
# **FALLBACK** when the `n_min` rule decided. What to look for:
#
# * a low `thresh` (0.5) keeps only the confidently wrong pixels: edges, the thin line, the
#   dots. Here fewer than `valid // 16` pixels pass it, so `n_min` decides (fallback);
# * a high `thresh` (0.9) also keeps the merely uncertain pixels, drifting towards plain CE;
# * a large `n_min` (here 30 % of the valid pixels) overrides `thresh` whenever fewer pixels
#   are hard: OHEM then behaves like top-k CE.

# %%
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
        axes[i, j].set_title(f"thresh={t}, n_min={n}\nkept {stats.kept_fraction:.1%}"
                             f" · thr {stats.threshold:.3f}{flag}", fontsize=10)
        axes[i, j].axis("off")
        rows.append((t, n, loss.item(), stats.kept_fraction.item(), stats.fallback.item(),
                     stats.threshold.item()))
plt.tight_layout()
plt.show()
print(f"{'thresh':>6} {'n_min':>6} {'loss':>7} {'kept':>7} {'fallback':>8} {'thr (nats)':>10}")
for t, n, loss, kf, fb, thr in rows:
    print(f"{t:>6} {n!s:>6} {loss:>7.3f} {kf:>7.1%} {fb:>8.0f} {thr:>10.3f}")

# %% [markdown]
# Which classes are kept? OHEM shifts the loss towards the rare, thin classes: compare the
# class shares among the kept pixels with those among all valid pixels.

# %%
criterion = OhemCELoss(thresh=0.7)
selected = criterion.selected_pixels(sample_logits, mask)[0]
valid_px = mask[0] != 255
print(f"{'class':<11} {'all valid':>9} {'kept (thresh 0.7)':>18}")
for c, name in enumerate(dataset.classes):
    share_all = ((mask[0] == c) & valid_px).sum() / valid_px.sum()
    share_kept = (selected * (mask[0] == c)).sum() / selected.sum()
    print(f"{name:<11} {share_all:>9.1%} {share_kept:>18.1%}")

# %% [markdown]
# ## 3. Batch mining, per-image mining and top-k
#
# A batch of four images whose predictions are of very different quality: image 0 is almost
# perfect, image 3 is poor. Three losses:
#
# * `OhemCELoss(thresh=0.7)` mines the **whole batch** at once: `n_min = valid // 16` counts
#   the batch's pixels, so the easy image may contribute (almost) nothing;
# * `OhemCELoss(thresh=0.7, per_image=True)` mines **each image** on its own (its own `n_min`
#   and fallback) and averages the per-image losses: every image contributes;
# * `TopKCELoss(top_k=0.1)` (bootstrapped CE, DeepLab / detectron2) always keeps exactly 10 %
#   of the valid pixels, the largest losses, however many are hard.

# %%
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
    axes[0, b].imshow(rgb(batch_logits[b].argmax(0)))
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
        axes[row, b].set_title(f"{name}\nkept {share:.1%} of image {b}", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# With batch mining the poor image dominates the batch's hard pixels; per-image mining gives
# the nearly perfect image its own `n_min` (its fallback is counted in `fallback`, now the
# fraction of images that used it; with nothing really hard in that image, its kept pixels are
# scattered noise, the price of a per-image minimum); top-k keeps the same 10 % of the batch
# whether the model is good or bad.
#
# ## Tuning `thresh` and `n_min`
#
# * Watch `train/ohem/kept_fraction` and `train/ohem/fallback` in TensorBoard. A kept fraction
#   near 1 means `thresh` is too high for your model (almost plain CE); a fallback rate near 1
#   means `n_min` decides, not `thresh` (effectively top-k CE with `k = n_min`).
# * Start from `thresh=0.7, n_min=None` (BiSeNet's defaults). Typical `thresh` values are
#   0.5–0.9; sweep them with `segohem-train -m loss.thresh=0.5,0.7,0.9 loss.n_min=null,0.3`
#   (notebook 03).
# * `n_min` from other toolkits (`min_kept`):
#
# | toolkit | their setting | counted over | segohem |
# |---|---|---|---|
# | CoinCheung/BiSeNet `OhemCELoss` | `n_min = valid // 16` | batch on one GPU | `n_min=None` (default) |
# | mmsegmentation `OHEMPixelSampler` | `min_kept=100000` | **each image** | `per_image=True, n_min=100000`, or `n_min=100000 * B` for batch mining |
# | PaddleSeg `OhemCrossEntropyLoss` | `min_kept=10000` | batch on one GPU | `n_min=10000` |
# | HRNet `OhemCrossEntropy` | `min_kept=100000` | batch on one GPU | `n_min=100000` |
# | detectron2 `DeepLabCE` | `top_k_percent_pixels=0.2` | batch | `TopKCELoss(top_k=0.2)` |
#
#   mmsegmentation also divides the loss by all valid pixels rather than the kept ones, so its
#   loss scale changes with the kept count; segohem's is the mean over the kept pixels.
# * Under DDP each GPU mines its own shard (its `n_min` counts its own pixels), as in every
#   toolkit above; `loss.sync_across_ranks=true` mines the global batch.
