"""Time segohem's losses (forward + backward) against plain ``F.cross_entropy``.

Each loss runs ``loss(logits.detach().requires_grad_(), labels).backward()`` on the same seeded
``randn(B, C, H, W) * 2`` logits with ~10 % ignored labels (binary losses: ``(B, 1, H, W)``,
against a masked ``F.binary_cross_entropy_with_logits``), timed by ``torch.utils.benchmark`` in
interleaved rounds. Columns: median, ratio to ``ce`` and to segohem's ``CrossEntropyLoss()`` (the
kernel the mining losses share: the cost of mining alone), IQR, on CUDA the peak memory above
the inputs. ``bisenet-style`` / ``mmseg-style`` re-implement CoinCheung/BiSeNet's
``OhemCELoss`` and mmsegmentation's ``OHEMPixelSampler`` + CE for comparison (not imported).

    python scripts/bench_loss.py [--device cpu|cuda] [--rounds 15] [--threads N] [--markdown F]
    python scripts/bench_loss.py --height 64 --width 128 --rounds 7      # a quick run
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from segohem.losses import (
    BinaryOhemLoss,
    CrossEntropyLoss,
    MinorityRectificationLoss,
    OhemCELoss,
    OhemDiceLoss,
    TopKCELoss,
)
from segohem.report.bench import BackgroundLoad, interleaved, iqr_pct, parse_args, report, table

IGNORE = 255
KERNEL_BASELINE = "CrossEntropyLoss()"
LossFn = Callable[[Tensor, Tensor], Tensor]


def bisenet_style_ohem(logits: Tensor, labels: Tensor, thresh: float = 0.7) -> Tensor:
    """CoinCheung/BiSeNet's ``OhemCELoss.forward`` (batch mining; boolean indexing and
    ``topk(n_min)`` read sizes back to the host)."""
    n_min = labels[labels != IGNORE].numel() // 16
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none").view(-1)
    loss_hard = loss[loss > -math.log(thresh)]
    if loss_hard.numel() < n_min:
        loss_hard, _ = loss.topk(n_min)
    return loss_hard.mean()


def mmseg_style_ohem(logits: Tensor, labels: Tensor, thresh: float = 0.7,
                     min_kept: int = 100_000) -> Tensor:
    """mmsegmentation's ``OHEMPixelSampler.sample`` + weighted CE: the true-class
    probabilities of the valid pixels are sorted; pixels below ``max(sorted[min(min_kept * B,
    n - 1)], thresh)`` get weight 1; the sum is divided by the valid pixels."""
    with torch.no_grad():
        valid = labels != IGNORE
        seg_weight = logits.new_zeros(labels.shape)
        valid_seg_weight = seg_weight[valid]
        safe_labels = labels.clone().unsqueeze(1)
        safe_labels[safe_labels == IGNORE] = 0
        prob = F.softmax(logits, dim=1).gather(1, safe_labels).squeeze(1)
        sort_prob, _ = prob[valid].sort()
        min_threshold = (sort_prob[min(min_kept * labels.shape[0], sort_prob.numel() - 1)]
                         if sort_prob.numel() > 0 else 0.0)
        valid_seg_weight[prob[valid] < max(min_threshold, thresh)] = 1.0  # a host read
        seg_weight[valid] = valid_seg_weight
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none")
    return (loss * seg_weight).sum() / valid.sum().clamp_min(1)


def make_inputs(batch: int, classes: int, height: int, width: int, device: torch.device
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Seeded on the CPU (the same on every device): ``(logits, labels, binary_logits,
    binary_labels)``, ~10 % of the labels ignored."""
    gen = torch.Generator().manual_seed(0)

    def ignore_mask() -> Tensor:  # ~5 % scattered pixels + a band of ~5 % of the rows
        mask = torch.rand(batch, height, width, generator=gen) < 0.05
        band = max(1, round(0.05 * height))
        mask[:, (height - band) // 2:(height + band) // 2, :] = True
        return mask

    logits = torch.randn(batch, classes, height, width, generator=gen) * 2
    labels = torch.randint(0, classes, (batch, height, width), generator=gen)
    labels[ignore_mask()] = IGNORE
    bin_logits = torch.randn(batch, 1, height, width, generator=gen) * 2
    bin_labels = (torch.rand(batch, height, width, generator=gen) < 0.3).long()
    bin_labels[ignore_mask()] = IGNORE
    return tuple(t.to(device) for t in (logits, labels, bin_logits, bin_labels))


def multiclass_losses() -> dict[str, LossFn]:
    """The multi-class losses in table order; ``ce`` (the baseline) first."""
    return {
        "ce": lambda x, y: F.cross_entropy(x, y, ignore_index=IGNORE),
        KERNEL_BASELINE: CrossEntropyLoss(),
        "OhemCELoss(0.7)": OhemCELoss(thresh=0.7),
        "OhemCELoss(0.7, check_labels=False)": OhemCELoss(thresh=0.7, check_labels=False),
        "OhemCELoss(0.7, per_image=True)": OhemCELoss(thresh=0.7, per_image=True),
        "OhemCELoss(0.05) [n_min fallback]": OhemCELoss(thresh=0.05),
        "OhemDiceLoss(0.7, dice_weight=0.5, ce_weight=0) [ohem_dice before issue 19]":
            OhemDiceLoss(thresh=0.7, dice_weight=0.5, ce_weight=0.0),
        "OhemDiceLoss() [loss=ohem_dice, the default: + 0.5 Dice + 1.0 CE]": OhemDiceLoss(),
        "TopKCELoss(0.2)": TopKCELoss(top_k=0.2),
        "MinorityRectificationLoss(CE) [loss=crl]": MinorityRectificationLoss(
            CrossEntropyLoss(), alpha=0.5),
        "MinorityRectificationLoss(OHEM) [loss=ohem_crl]": MinorityRectificationLoss(
            OhemCELoss(thresh=0.7), alpha=0.5),
        "bisenet-style (re-impl.)": bisenet_style_ohem,
        "mmseg-style (re-impl.)": mmseg_style_ohem,
    }


def binary_losses(labels: Tensor) -> dict[str, LossFn]:
    """The binary losses; ``bce`` (the baseline) with a precomputed target and mask."""
    weight = (labels != IGNORE).unsqueeze(1).float()
    target, n_valid = (labels == 1).unsqueeze(1).float(), weight.sum().clamp_min(1)
    return {"bce": lambda x, _: F.binary_cross_entropy_with_logits(
                x, target, weight=weight, reduction="sum") / n_valid,
            "BinaryOhemLoss()": BinaryOhemLoss(),
            "BinaryOhemLoss(check_labels=False)": BinaryOhemLoss(check_labels=False)}


def step(loss_fn: LossFn, logits: Tensor, labels: Tensor) -> None:
    """One forward + backward on a fresh leaf view of ``logits``."""
    loss_fn(logits.detach().requires_grad_(), labels).backward()


def peak_extra_mib(loss_fn: LossFn, logits: Tensor, labels: Tensor) -> str:
    """CUDA: peak memory of one :func:`step` above what was allocated before it."""
    if logits.device.type != "cuda":
        return "n/a"
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(loss_fn, logits, labels)
    torch.cuda.synchronize()
    return f"{(torch.cuda.max_memory_allocated() - before) / 2**20:.1f}"


def loss_table(losses: dict[str, LossFn], logits: Tensor, labels: Tensor, rounds: int
               ) -> str:
    """Median ms per loss, its ratios to the first loss and to :data:`KERNEL_BASELINE`."""
    results = interleaved({name: partial(step, fn, logits, labels)
                           for name, fn in losses.items()}, rounds)
    base, *_ = results.values()
    kernel = results.get(KERNEL_BASELINE)
    return table([{
        "loss": f"`{name}`", "median ms": f"{1e3 * m.median:.2f}",
        f"x {next(iter(results))}": f"{m.median / base.median:.2f}",
        f"x {KERNEL_BASELINE}": f"{m.median / kernel.median:.2f}" if kernel else "-",
        "IQR %": f"{iqr_pct(m):.0f}",
        "peak extra MiB": peak_extra_mib(losses[name], logits, labels)}
        for name, m in results.items()])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=None, help="default: 2 on CPU, 8 on CUDA")
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (>= 3)")
    args = parse_args(parser, argv)
    if args.rounds < 3 or not 1 < args.classes < IGNORE or min(args.height, args.width) < 1:
        parser.error("needs --rounds >= 3, 1 < --classes < 255, --height / --width >= 1")
    batch = args.batch or (8 if args.device.type == "cuda" else 2)
    logits, labels, bin_logits, bin_labels = make_inputs(batch, args.classes, args.height,
                                                         args.width, args.device)
    load = BackgroundLoad()
    tables = [loss_table(multiclass_losses(), logits, labels, args.rounds),
              loss_table(binary_losses(bin_labels), bin_logits, bin_labels, args.rounds)]
    report(args.device, f"logits ({batch}, {args.classes}, {args.height}, {args.width}) "
           f"float32, {(labels == IGNORE).float().mean().item():.1%} ignored, forward + "
           f"backward, median of {args.rounds} interleaved rounds (torch.utils.benchmark "
           f"blocked_autorange, 1 warm-up call each); {load.note()}", tables, "", args.markdown)


if __name__ == "__main__":
    main()
