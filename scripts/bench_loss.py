"""Benchmark segohem's losses (forward + backward) against plain ``F.cross_entropy``.

What is measured
    The wall-clock time of one training-style loss step,
    ``x = logits.detach().requires_grad_(); loss(x, labels).backward()``,
    for every loss on the *same* tensors: ``logits = randn(B, C, H, W) * 2`` (seeded) and
    ``labels = randint(0, C, (B, H, W))`` with about 10% of the pixels set to the ignore
    index 255 (a horizontal band of rows plus scattered random pixels). On CUDA the clock
    is stopped after ``torch.cuda.synchronize()``, so asynchronous kernels are counted.

    The losses run interleaved: each round calls every loss once, in turn, so slow drift
    (thermal throttling, other processes, allocator state) hits all of them alike. After
    2 warm-up rounds, ``--rounds`` rounds are measured and the table reports the median
    time per loss and its ratio to the median of the ``ce`` baseline
    (``F.cross_entropy(logits, labels, ignore_index=255)``) and to segohem's own
    ``CrossEntropyLoss()``, which uses the same per-pixel CE kernel as the mining losses
    (so that second ratio is the cost of the mining alone), plus the interquartile range
    of the rounds as a percentage of the median (large values mean a noisy machine: rerun
    with more rounds, or on an idle one). On CUDA it also reports the peak memory
    allocated during one call on top of what was allocated before it (the inputs); this
    includes the ``B*C*H*W`` float32 gradient of the logits, which every loss produces.
    On CPU memory is "n/a".

    ``bisenet-style`` and ``mmseg-style`` are re-implementations, written in this script,
    of CoinCheung/BiSeNet's ``OhemCELoss`` and mmsegmentation's ``OHEMPixelSampler`` +
    ``CrossEntropyLoss`` (thresh 0.7, ``min_kept`` 100000 per image), for comparison
    only; they are not imported from those projects.

    ``BinaryOhemLoss`` gets a second table on ``(B, 1, H, W)`` logits with 0/1 labels and
    the same ignore pattern, against ``F.binary_cross_entropy_with_logits`` (masked by a
    precomputed weight, so the baseline is the bare BCE kernel cost).

    ``--sync-check`` (CUDA only) runs every segohem loss once more, with
    ``check_labels=False``, under ``torch.cuda.set_sync_debug_mode("error")`` and reports
    whether forward + backward completed without a host-device synchronisation.

How to run
    python scripts/bench_loss.py                       # cuda if available, else cpu
    python scripts/bench_loss.py --device cpu --rounds 7 --threads 2
    python scripts/bench_loss.py --device cuda --sync-check --markdown results.md
    python scripts/bench_loss.py --height 64 --width 128 --rounds 7   # quick smoke run
"""

from __future__ import annotations

import argparse
import datetime
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_common import LoadMonitor, command_line, device_name, load_note
from bench_common import Result as TimedResult
from torch import Tensor

from segohem.losses import (
    BinaryOhemLoss,
    CrossEntropyLoss,
    MinorityRectificationLoss,
    OhemCELoss,
    TopKCELoss,
)

IGNORE = 255
WARMUP_ROUNDS = 2
MIN_ROUNDS = 7

LossFn = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------------------
# Reference re-implementations (for comparison only, not imported from the projects).
# --------------------------------------------------------------------------------------


def bisenet_style_ohem(logits: Tensor, labels: Tensor, thresh: float = 0.7) -> Tensor:
    """Re-implementation of CoinCheung/BiSeNet's ``OhemCELoss.forward`` (batch mining).

    Boolean-mask indexing and ``topk(n_min)`` read sizes back to the host (syncs on CUDA).
    """
    thresh_loss = -math.log(thresh)
    n_min = labels[labels != IGNORE].numel() // 16
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none").view(-1)
    loss_hard = loss[loss > thresh_loss]
    if loss_hard.numel() < n_min:
        loss_hard, _ = loss.topk(n_min)
    return loss_hard.mean()


def mmseg_style_ohem(
    logits: Tensor, labels: Tensor, thresh: float = 0.7, min_kept: int = 100_000
) -> Tensor:
    """Re-implementation of mmsegmentation's ``OHEMPixelSampler.sample`` + weighted CE.

    As in mmseg, ``min_kept`` is per image and becomes ``batch_kept = min_kept * B``; the
    true-class probabilities of all valid pixels of the batch are sorted (one full sort),
    and pixels with a probability below ``max(sorted[min(batch_kept, n - 1)], thresh)``
    get weight 1. The weighted per-pixel CE is divided by the number of valid pixels
    (mmseg's ``avg_non_ignore=True``; the default divides by all pixels, same cost).
    """
    with torch.no_grad():
        batch_kept = min_kept * labels.shape[0]
        valid = labels != IGNORE
        seg_weight = logits.new_zeros(labels.shape)
        valid_seg_weight = seg_weight[valid]
        prob = F.softmax(logits, dim=1)
        safe_labels = labels.clone().unsqueeze(1)
        safe_labels[safe_labels == IGNORE] = 0
        prob = prob.gather(1, safe_labels).squeeze(1)
        sort_prob, _ = prob[valid].sort()
        if sort_prob.numel() > 0:
            min_threshold = sort_prob[min(batch_kept, sort_prob.numel() - 1)]
        else:
            min_threshold = 0.0
        threshold = max(min_threshold, thresh)  # tensor vs float: a host read, as in mmseg
        valid_seg_weight[prob[valid] < threshold] = 1.0
        seg_weight[valid] = valid_seg_weight
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none")
    return (loss * seg_weight).sum() / valid.sum().clamp_min(1)


# --------------------------------------------------------------------------------------
# Inputs and loss tables
# --------------------------------------------------------------------------------------


def make_ignore_mask(batch: int, height: int, width: int, gen: torch.Generator) -> Tensor:
    """``(B, H, W)`` bool, True on ~10% of the pixels: a band of ~5% of the rows in the
    middle of each image plus ~5% scattered random pixels."""
    mask = torch.rand(batch, height, width, generator=gen) < 0.05
    band = max(1, round(0.05 * height))
    top = (height - band) // 2
    mask[:, top:top + band, :] = True
    return mask


def make_inputs(
    batch: int, classes: int, height: int, width: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Seeded inputs built on the CPU (identical on every device), then moved.

    Returns ``(logits, labels, binary_logits, binary_labels)``.
    """
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, height, width, generator=gen) * 2
    labels = torch.randint(0, classes, (batch, height, width), generator=gen)
    labels[make_ignore_mask(batch, height, width, gen)] = IGNORE
    bin_logits = torch.randn(batch, 1, height, width, generator=gen) * 2
    bin_labels = (torch.rand(batch, height, width, generator=gen) < 0.3).long()
    bin_labels[make_ignore_mask(batch, height, width, gen)] = IGNORE
    return logits.to(device), labels.to(device), bin_logits.to(device), bin_labels.to(device)


def multiclass_losses() -> dict[str, LossFn]:
    """The multi-class losses, in table order; ``ce`` (the baseline) comes first."""

    def ce(logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)

    return {
        "ce": ce,
        "CrossEntropyLoss()": CrossEntropyLoss(),
        "OhemCELoss(0.7)": OhemCELoss(thresh=0.7),
        "OhemCELoss(0.7, check_labels=False)": OhemCELoss(thresh=0.7, check_labels=False),
        "OhemCELoss(0.7, per_image=True)": OhemCELoss(thresh=0.7, per_image=True),
        "OhemCELoss(0.05) [n_min fallback]": OhemCELoss(thresh=0.05),
        "TopKCELoss(0.2)": TopKCELoss(top_k=0.2),
        "MinorityRectificationLoss(CE) [loss=crl]": MinorityRectificationLoss(
            CrossEntropyLoss(), alpha=0.5),
        "MinorityRectificationLoss(OHEM) [loss=ohem_crl]": MinorityRectificationLoss(
            OhemCELoss(thresh=0.7), alpha=0.5),
        "bisenet-style (re-impl.)": bisenet_style_ohem,
        "mmseg-style (re-impl.)": mmseg_style_ohem,
    }


def binary_losses(valid: Tensor, target: Tensor) -> dict[str, LossFn]:
    """The binary losses; ``bce`` (the baseline) uses a precomputed target and mask."""
    weight = valid.unsqueeze(1).to(torch.float32)
    target = target.unsqueeze(1).to(torch.float32)
    n_valid = valid.sum().clamp_min(1)

    def bce(logits: Tensor, labels: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            logits, target, weight=weight, reduction="sum") / n_valid

    return {
        "bce": bce,
        "BinaryOhemLoss()": BinaryOhemLoss(),
        "BinaryOhemLoss(check_labels=False)": BinaryOhemLoss(check_labels=False),
    }


def sync_check_losses() -> dict[str, LossFn]:
    """Every segohem loss of the tables, with ``check_labels=False``."""
    return {
        "CrossEntropyLoss(check_labels=False)": CrossEntropyLoss(check_labels=False),
        "OhemCELoss(0.7, check_labels=False)": OhemCELoss(thresh=0.7, check_labels=False),
        "OhemCELoss(0.7, per_image=True, check_labels=False)": OhemCELoss(
            thresh=0.7, per_image=True, check_labels=False),
        "OhemCELoss(0.05, check_labels=False)": OhemCELoss(thresh=0.05, check_labels=False),
        "TopKCELoss(0.2, check_labels=False)": TopKCELoss(top_k=0.2, check_labels=False),
        "BinaryOhemLoss(check_labels=False)": BinaryOhemLoss(check_labels=False),
        "MinorityRectificationLoss(OHEM, check_labels=False)": MinorityRectificationLoss(
            OhemCELoss(thresh=0.7, check_labels=False), alpha=0.5),
    }


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


@dataclass
class Result(TimedResult):
    """Timings of one loss, plus its peak extra CUDA memory."""

    peak_mib: float | None = None


def step(loss_fn: LossFn, logits: Tensor, labels: Tensor) -> None:
    """One forward + backward on a fresh leaf view of ``logits``."""
    x = logits.detach().requires_grad_()
    loss_fn(x, labels).backward()


def time_step(loss_fn: LossFn, logits: Tensor, labels: Tensor, device: torch.device) -> float:
    """Milliseconds of one :func:`step` (synchronised on CUDA)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step(loss_fn, logits, labels)
    if cuda:
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def bench(
    losses: dict[str, LossFn], logits: Tensor, labels: Tensor, device: torch.device, rounds: int
) -> list[Result]:
    """Interleaved timing: each round runs every loss once, in table order."""
    results = {name: Result(name, []) for name in losses}
    for round_idx in range(WARMUP_ROUNDS + rounds):
        for name, loss_fn in losses.items():
            elapsed = time_step(loss_fn, logits, labels, device)
            if round_idx >= WARMUP_ROUNDS:
                results[name].times_ms.append(elapsed)
    if device.type == "cuda":
        for name, loss_fn in losses.items():
            results[name].peak_mib = peak_extra_mib(loss_fn, logits, labels, device)
    return list(results.values())


def peak_extra_mib(loss_fn: LossFn, logits: Tensor, labels: Tensor, device: torch.device) -> float:
    """Peak CUDA memory of one step above what was allocated before it, in MiB."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step(loss_fn, logits, labels)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def sync_check(
    losses: dict[str, LossFn], inputs: dict[str, tuple[Tensor, Tensor]], device: torch.device
) -> list[tuple[str, str]]:
    """Run each loss once under ``set_sync_debug_mode("error")``; ("yes"|"no: ...") each."""
    rows = []
    for name, loss_fn in losses.items():
        logits, labels = inputs["binary" if "Binary" in name else "multiclass"]
        torch.cuda.synchronize(device)
        try:
            torch.cuda.set_sync_debug_mode("error")
            step(loss_fn, logits, labels)
            verdict = "yes"
        except RuntimeError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            verdict = f"no ({first_line})"
        finally:
            torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize(device)
        rows.append((name, verdict))
    return rows


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


Row = tuple[str, str, str, str, str, str]
KERNEL_BASELINE = "CrossEntropyLoss()"


def table_rows(results: list[Result], kernel_baseline: str | None = None) -> list[Row]:
    """``(name, median ms, ratio vs baseline, ratio vs kernel baseline, IQR %, memory)``
    strings; the first result is the baseline. ``kernel_baseline`` names segohem's plain
    CE, which uses the same per-pixel CE kernel as the mining losses, so the second ratio
    is the cost of mining alone ("-" when not given)."""
    base = results[0].median_ms
    by_name = {res.name: res.median_ms for res in results}
    kernel = by_name.get(kernel_baseline) if kernel_baseline else None
    rows = []
    for res in results:
        mem = "n/a" if res.peak_mib is None else f"{res.peak_mib:.1f}"
        vs_kernel = "-" if kernel is None else f"{res.median_ms / kernel:.2f}"
        rows.append((res.name, f"{res.median_ms:.2f}", f"{res.median_ms / base:.2f}",
                     vs_kernel, f"{res.spread_pct:.0f}", mem))
    return rows


def _header(baseline: str) -> tuple[str, ...]:
    return ("loss", "median ms", f"x {baseline}", f"x {KERNEL_BASELINE}", "IQR %",
            "peak extra MiB")


def format_text(title: str, rows: list[Row], baseline: str) -> str:
    header = _header(baseline)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    sep = "-" * len(line(header))
    return "\n".join([title, sep, line(header), sep, *(line(r) for r in rows), sep])


def format_markdown(rows: list[Row], baseline: str) -> str:
    header = _header(baseline)
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += [f"| `{row[0]}` | " + " | ".join(row[1:]) + " |" for row in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time segohem losses (forward + backward) against F.cross_entropy.")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: 2 on CPU, 8 on CUDA)")
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=15,
                        help=f"measured rounds after {WARMUP_ROUNDS} warm-up rounds "
                             f"(>= {MIN_ROUNDS})")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="append the results as Markdown tables to this file")
    parser.add_argument("--sync-check", action="store_true",
                        help="CUDA only: check that each segohem loss runs without a sync")
    args = parser.parse_args(argv)
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be >= {MIN_ROUNDS}, got {args.rounds}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.sync_check and args.device != "cuda":
        parser.error("--sync-check needs --device cuda")
    for name in ("classes", "height", "width", "threads", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    if args.classes >= IGNORE:
        parser.error(f"--classes must be < {IGNORE} (the ignore index)")
    if args.batch is None:
        args.batch = 8 if args.device == "cuda" else 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    logits, labels, bin_logits, bin_labels = make_inputs(
        args.batch, args.classes, args.height, args.width, device)
    ignored = (labels == IGNORE).float().mean().item()

    header = (
        f"torch {torch.__version__} | device: {args.device} ({device_name(device)}) | "
        f"threads: {torch.get_num_threads()}\n"
        f"logits ({args.batch}, {args.classes}, {args.height}, {args.width}) float32, "
        f"{ignored:.1%} ignored | {args.rounds} rounds (+{WARMUP_ROUNDS} warm-up), "
        f"median forward+backward"
    )
    print(header, flush=True)

    monitor = LoadMonitor()
    multi = bench(multiclass_losses(), logits, labels, device, args.rounds)
    multi_rows = table_rows(multi, KERNEL_BASELINE)
    print()
    print(format_text("multi-class losses vs F.cross_entropy", multi_rows, "ce"), flush=True)

    valid = bin_labels != IGNORE
    binary = bench(binary_losses(valid, bin_labels == 1), bin_logits, bin_labels, device,
                   args.rounds)
    bin_rows = table_rows(binary)
    print()
    print(format_text("binary losses vs F.binary_cross_entropy_with_logits (B, 1, H, W)",
                      bin_rows, "bce"), flush=True)

    load = load_note(monitor.other_load_pct())
    print(f"\n{load}", flush=True)

    sync_rows: list[tuple[str, str]] = []
    if args.sync_check:
        inputs = {"multiclass": (logits, labels), "binary": (bin_logits, bin_labels)}
        sync_rows = sync_check(sync_check_losses(), inputs, device)
        width = max(len(name) for name, _ in sync_rows)
        print("\nsync check (torch.cuda.set_sync_debug_mode('error'), check_labels=False)")
        for name, verdict in sync_rows:
            print(f"{name.ljust(width)}  sync-free: {verdict}")

    if args.markdown is not None:
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        parts = [
            "",
            f"`{command_line()}` | {now} | torch {torch.__version__} | "
            f"{args.device}: {device_name(device)} | threads: {torch.get_num_threads()}",
            "",
            f"logits ({args.batch}, {args.classes}, {args.height}, {args.width}) float32, "
            f"{ignored:.1%} ignored, median of {args.rounds} interleaved rounds "
            f"(+{WARMUP_ROUNDS} warm-up), forward + backward; {load}.",
            "",
            format_markdown(multi_rows, "ce"),
            "",
            format_markdown(bin_rows, "bce"),
        ]
        if sync_rows:
            parts += ["", "| loss (check_labels=False) | sync-free |", "|---|---|"]
            parts += [f"| `{name}` | {verdict.replace('|', '/')} |" for name, verdict in sync_rows]
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(parts) + "\n")
        print(f"\nappended Markdown to {args.markdown}")


if __name__ == "__main__":
    main()
