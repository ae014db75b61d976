"""Benchmark segohem's training-step overhead against a hand-written PyTorch loop.

What is measured
    The steady-state wall-clock time per training step (forward, loss, backward, optimizer
    and scheduler step, plus everything the loop does between steps) of the *same* model,
    loss, optimizer, scheduler and data trained three ways:

    ``hand-written``
        ``model.train(); for batch in batches: logits = model(images);
        loss = criterion(logits, masks); opt.zero_grad(set_to_none=True); loss.backward();
        opt.step(); sched.step()``.
    ``segohem (TensorBoard)``
        :class:`segohem.module.SegmentationModule` fitted by a ``lightning.pytorch.Trainer``
        with the app's ``TensorBoardLogger`` (``conf/logger/tensorboard.yaml``, in a temp dir),
        ``log_every_n_steps=10``, no checkpointing, progress bar, model summary, sanity check
        or validation.
    ``segohem (logger=False)``
        the same with ``logger=False`` (``self.log`` still runs; nothing is written).

    Model, loss, optimizer and scheduler are built exactly as the default config builds them:
    the ``train`` config is composed with Hydra's compose API (plus ``--overrides``) and the
    ``model``, ``loss``, ``optimizer`` and ``scheduler`` nodes are instantiated. The model is
    built once after seeding with ``cfg.seed`` and deep-copied for every run, so all runs start
    from identical weights; each run gets a fresh loss, optimizer and scheduler (the scheduler
    with ``total_steps`` = the run's step count, which is what Lightning's
    ``estimated_stepping_batches`` gives the module).

    Data are in memory: ``--num-batches`` batches of ``--batch`` samples of
    ``SyntheticDataset(split="train", image_size=--image-size, transform=<the config's
    val_transform>)`` are generated and collated into ``{"image", "mask"}`` tensors once (moved
    to the device once) and reused by every run. Epochs are as long as in the configured run
    (``dataset.train_set.num_samples // --batch`` steps, cycling through the in-memory batches),
    so the per-epoch costs (epoch-end metric reduction, data loader restart) are amortised as
    in a real run. Lightning reads them through a ``DataLoader(batch_size=None, num_workers=0)``
    over a list-backed dataset; the hand-written loop indexes the list.

    Timing: each run does ``--warmup`` untimed steps, then the clock runs from the start of
    step ``warmup`` to the start of step ``warmup + steps`` (for Lightning: from one
    ``on_train_batch_start`` callback to another; one extra untimed step follows), so the
    window holds exactly ``--steps`` complete loop iterations and excludes the fixed start-up
    and tear-down costs of ``Trainer.fit``. On CUDA the clock is read after
    ``torch.cuda.synchronize()``.

    The variants run interleaved: each of the ``--rounds`` rounds runs hand-written, then
    segohem (TensorBoard), then segohem (logger=False), so slow drift hits all alike. The
    table reports the median ms/step over the rounds, the overhead ``median(B) / median(A) -
    1`` versus the hand-written loop, the median of the per-round paired overheads, and the
    interquartile range of the rounds as a percentage of the median (a noise indicator). The
    target is an overhead <= 5 %.

Breakdown (``--breakdown``)
    Wall-clock medians on a busy 2-core CPU vary by 10-35 % between rounds, more than the
    5 % target. ``--breakdown`` additionally times, in every variant, the model forward, the
    loss, ``backward()`` and the optimizer update (``scripts/step_probe.py``) and reports the
    host time outside them -- the loop's own cost. The toolkit's overhead is that host time
    minus the hand-written loop's, as a percentage of the hand-written step; it is stable to
    ~0.1 ms across rounds.

How to run
    python scripts/bench_train.py                           # cuda if available, else cpu
    python scripts/bench_train.py --device cpu --threads 2 --markdown results.md
    python scripts/bench_train.py --overrides loss=ce       # any extra Hydra overrides
    python scripts/bench_train.py --steps 20 --warmup 3 --rounds 3   # quick smoke run
    python scripts/bench_train.py --breakdown   # + forward/loss/backward/optimizer split
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bench_common import (
    LoadMonitor,
    Result,
    command_line,
    compose_config,
    device_name,
    load_note,
    loadavg,
)
from omegaconf import DictConfig
from step_probe import PARTS, ComputeProbe
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

Batch = dict[str, Tensor]
TARGET_PCT = 5.0
MIN_ROUNDS = 3

HAND = "hand-written"
SEG_TB = "segohem (TensorBoard)"
SEG_NOLOG = "segohem (logger=False)"
VARIANTS = (HAND, SEG_TB, SEG_NOLOG)


# --------------------------------------------------------------------------------------
# Setup: config, components, data
# --------------------------------------------------------------------------------------



@dataclass
class Components:
    """What both variants share: the initial model and factories for the rest."""

    cfg: DictConfig
    model: nn.Module  # initial weights; deep-copied for every run
    make_loss: Callable[[], nn.Module]
    optimizer: Callable[..., torch.optim.Optimizer]  # params -> Optimizer
    scheduler: Callable[..., Any] | None  # (optimizer, total_steps=) -> LRScheduler

    def fresh_model(self, device: torch.device) -> nn.Module:
        return copy.deepcopy(self.model).to(device)


def build_components(cfg: DictConfig) -> Components:
    """Instantiate model / loss / optimizer / scheduler like ``segohem.training.train``."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    loss_cfg = cfg.loss
    optimizer = instantiate(cfg.optimizer)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    model = instantiate(cfg.model)
    return Components(cfg=cfg, model=model, make_loss=lambda: instantiate(loss_cfg),
                      optimizer=optimizer, scheduler=scheduler)


def make_batches(cfg: DictConfig, num_batches: int, batch_size: int, image_size: int,
                 device: torch.device) -> list[Batch]:
    """``num_batches`` collated ``{"image", "mask"}`` batches of the synthetic train split,
    through the config's val transform (Normalize + ToTensorV2), on ``device``."""
    from hydra.utils import instantiate
    from torch.utils.data import default_collate

    from segohem.data import SyntheticDataset

    transform = instantiate(cfg.dataset.val_transform)
    dataset = SyntheticDataset(split="train", image_size=image_size, transform=transform,
                               num_samples=num_batches * batch_size,
                               seed=cfg.dataset.generator_seed,
                               ignore_index=cfg.dataset.ignore_index)
    batches = []
    for b in range(num_batches):
        items = [dataset[b * batch_size + i] for i in range(batch_size)]
        collated = default_collate([{"image": it["image"], "mask": it["mask"]} for it in items])
        batches.append({k: v.to(device) for k, v in collated.items()})
    return batches


class InMemoryBatches(Dataset):
    """Pre-collated batches, cycled to ``length`` items (for ``DataLoader(batch_size=None)``)."""

    def __init__(self, batches: list[Batch], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Batch:
        return self.batches[i % len(self.batches)]


# --------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_hand_written(comp: Components, batches: list[Batch], epoch_len: int, warmup: int,
                     steps: int, device: torch.device, probe: ComputeProbe | None = None
                     ) -> float:
    """Variant A; returns ms/step over the timed window (``probe``: also time its parts)."""
    model = comp.fresh_model(device)
    criterion = comp.make_loss().to(device)
    with probe.attach(model, criterion) if probe else contextlib.nullcontext():
        return _hand_written_loop(comp, model, criterion, batches, epoch_len, warmup, steps,
                                  device, probe)


def _hand_written_loop(comp: Components, model: nn.Module, criterion: nn.Module,
                       batches: list[Batch], epoch_len: int, warmup: int, steps: int,
                       device: torch.device, probe: ComputeProbe | None) -> float:
    cfg = comp.cfg
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model = torch.compile(model)
    total = warmup + steps + 1  # same step count as the Lightning runs
    opt = comp.optimizer(model.parameters())
    sched = comp.scheduler(opt, total_steps=total) if comp.scheduler is not None else None
    channels_last = bool(cfg.channels_last)
    n = len(batches)

    model.train()
    step = 0
    start = end = 0.0
    while step < total:
        for i in range(epoch_len):  # one epoch
            if step == warmup:
                sync(device)
                start = time.perf_counter()
                if probe:
                    probe.start()
            elif step == warmup + steps:
                sync(device)
                end = time.perf_counter()
                if probe:
                    probe.stop()
            if step == total:
                break
            batch = batches[i % n]
            images, masks = batch["image"], batch["mask"]
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images)
            loss = criterion(logits, masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
    return (end - start) * 1e3 / steps


def _step_timer(warmup: int, steps: int, device: torch.device,
                probe: ComputeProbe | None) -> Any:
    """A Lightning callback timing ``on_train_batch_start`` of step ``warmup`` to that of
    step ``warmup + steps`` (``global_step`` counts optimizer steps done)."""
    import lightning.pytorch as pl

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.start: float | None = None
            self.end: float | None = None

        def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 batch: Any, batch_idx: int) -> None:
            if trainer.global_step == warmup:
                sync(device)
                self.start = time.perf_counter()
                if probe:
                    probe.start()
            elif trainer.global_step == warmup + steps:
                sync(device)
                self.end = time.perf_counter()
                if probe:
                    probe.stop()

        def ms_per_step(self) -> float:
            if self.start is None or self.end is None:
                raise RuntimeError("the timed window was not reached")
            return (self.end - self.start) * 1e3 / steps

    return StepTimer()


def run_segohem(comp: Components, batches: list[Batch], epoch_len: int, warmup: int,
                steps: int, device: torch.device, log_dir: Path | None,
                probe: ComputeProbe | None = None) -> float:
    """Variant B (``log_dir``: TensorBoardLogger there) or C (None: ``logger=False``);
    returns ms/step over the timed window (``probe``: also time its parts)."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import TensorBoardLogger

    from segohem.module import SegmentationModule

    cfg = comp.cfg
    model, criterion = comp.fresh_model(device), comp.make_loss()
    module = SegmentationModule(
        model=model, loss=criterion, optimizer=comp.optimizer,
        scheduler=comp.scheduler, num_classes=cfg.dataset.num_classes,
        class_names=cfg.dataset.get("class_names"), ignore_index=cfg.dataset.ignore_index,
        compile=cfg.compile, channels_last=cfg.channels_last)
    logger: Any = False
    if log_dir is not None:
        tb_cfg = (cfg.get("logger") or {}).get("tensorboard")
        logger = (instantiate(tb_cfg, save_dir=str(log_dir)) if tb_cfg is not None else
                  TensorBoardLogger(save_dir=str(log_dir), name="tensorboard", version="",
                                    default_hp_metric=False))
    timer = _step_timer(warmup, steps, device, probe)
    total = warmup + steps + 1  # the extra step ends the window at its batch start
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, max_steps=total, logger=logger,
        callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        log_every_n_steps=10, default_root_dir=str(log_dir or cfg.paths.output_dir))
    loader = DataLoader(InMemoryBatches(batches, epoch_len), batch_size=None, shuffle=False,
                        num_workers=0)
    with probe.attach(model, criterion) if probe else contextlib.nullcontext():
        trainer.fit(module, train_dataloaders=loader)
    if trainer.global_step != total:
        raise RuntimeError(f"Lightning ran {trainer.global_step} steps, expected {total}")
    return timer.ms_per_step()


# --------------------------------------------------------------------------------------
# Statistics and reporting
# --------------------------------------------------------------------------------------


Row = tuple[str, str, str, str, str]
HEADER = ("variant", "median ms/step", "overhead %", "paired overhead %", "IQR %")


def table_rows(results: list[Result]) -> list[Row]:
    """The first result is the baseline (hand-written). ``overhead`` compares the medians;
    ``paired`` is the median over rounds of each round's ratio to that round's baseline."""
    base = results[0]
    rows = []
    for res in results:
        if res is base:
            over, paired = "-", "-"
        else:
            over = f"{100.0 * (res.median_ms / base.median_ms - 1):+.1f}"
            ratios = [t / b - 1 for t, b in zip(res.times_ms, base.times_ms, strict=True)]
            paired = f"{100.0 * statistics.median(ratios):+.1f}"
        rows.append((res.name, f"{res.median_ms:.2f}", over, paired, f"{res.spread_pct:.1f}"))
    return rows


def verdict(results: list[Result]) -> str:
    base = results[0].median_ms
    worst = max(res.median_ms / base - 1 for res in results[1:]) * 100.0
    ok = "meets" if worst <= TARGET_PCT else "MISSES"
    text = f"worst overhead {worst:+.1f}% {ok} the target <= {TARGET_PCT:.0f}%"
    noise = max(res.spread_pct for res in results)
    if noise > TARGET_PCT:
        text += (f" -- NOTE: the run-to-run noise (IQR up to {noise:.0f}%) exceeds the target, "
                 f"so this verdict is not conclusive (rerun with more --rounds, on an idle "
                 f"machine)")
    return text


def format_text(title: str, rows: list[tuple[str, ...]],
                header: tuple[str, ...] = HEADER) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    sep = "-" * len(line(header))
    return "\n".join([title, sep, line(header), sep, *(line(r) for r in rows), sep])


def format_markdown(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]
    out += [f"| {row[0]} | " + " | ".join(row[1:]) + " |" for row in rows]
    return "\n".join(out)


BREAKDOWN_HEADER = ("variant", "median ms/step", *(f"{p} ms" for p in PARTS),
                    "host outside compute ms", "added host ms", "added % of step")


def _host_ms(res: Result, parts: list[dict[str, float]]) -> list[float]:
    """Per round: step time minus the time inside forward/loss/backward/optimizer."""
    return [t - sum(p.values()) for t, p in zip(res.times_ms, parts, strict=True)]


def breakdown_rows(results: dict[str, Result],
                   parts: dict[str, list[dict[str, float]]]) -> list[tuple[str, ...]]:
    """Medians over rounds; ``added`` is the host time beyond the hand-written loop's, also
    as a percentage of the hand-written loop's median step."""
    base_host = statistics.median(_host_ms(results[HAND], parts[HAND]))
    base_step = results[HAND].median_ms
    rows = []
    for name, res in results.items():
        host = statistics.median(_host_ms(res, parts[name]))
        cells = [f"{statistics.median(p[k] for p in parts[name]):.2f}" for k in PARTS]
        added = "-" if name == HAND else f"{host - base_host:+.2f}"
        pct = "-" if name == HAND else f"{100.0 * (host - base_host) / base_step:+.1f}"
        rows.append((name, f"{res.median_ms:.2f}", *cells, f"{host:.2f}", added, pct))
    return rows


def breakdown_verdict(results: dict[str, Result],
                      parts: dict[str, list[dict[str, float]]]) -> str:
    base_host = statistics.median(_host_ms(results[HAND], parts[HAND]))
    base_step = results[HAND].median_ms
    worst = max(statistics.median(_host_ms(res, parts[name])) - base_host
                for name, res in results.items() if name != HAND)
    pct = 100.0 * worst / base_step
    ok = "meets" if pct <= TARGET_PCT else "MISSES"
    spread = max(statistics.quantiles(_host_ms(res, parts[name]), n=4)[2]
                 - statistics.quantiles(_host_ms(res, parts[name]), n=4)[0]
                 for name, res in results.items())
    return (f"toolkit host overhead {worst:+.2f} ms/step = {pct:+.1f}% of the hand-written "
            f"step ({base_step:.2f} ms): {ok} the target <= {TARGET_PCT:.0f}% (host-time IQR "
            f"across rounds up to {spread:.2f} ms)")


def format_breakdown_markdown(rows: list[tuple[str, ...]]) -> str:
    out = ["| " + " | ".join(BREAKDOWN_HEADER) + " |",
           "|---|" + "---:|" * (len(BREAKDOWN_HEADER) - 1)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def quiet_lightning() -> None:
    """Silence Lightning's per-fit info lines and the num_workers / logging-interval hints."""
    import lightning.pytorch  # noqa: F401  (creates its loggers)

    prefixes = ("lightning", "lightning_fabric", "pytorch_lightning")
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in prefixes]
    for name in {*prefixes, *names}:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time segohem's Lightning training step against a hand-written loop.")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8, help="samples per step")
    parser.add_argument("--image-size", type=int, default=96, help="square image side (>= 32)")
    parser.add_argument("--num-batches", type=int, default=16,
                        help="distinct in-memory batches (cycled)")
    parser.add_argument("--epoch-steps", type=int, default=None,
                        help="steps per epoch (default: dataset.train_set.num_samples // batch "
                             "of the config, as in a real run)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=5,
                        help=f"interleaved rounds (>= {MIN_ROUNDS})")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time forward / loss / backward / optimizer inside each step "
                             "and report the host time outside them (the loop's own cost)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="append the results as a Markdown table to this file")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="extra Hydra overrides of the train config, e.g. loss=ce")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be >= {MIN_ROUNDS}, got {args.rounds}")
    if args.image_size < 32:
        parser.error(f"--image-size must be >= 32, got {args.image_size}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    for name in ("batch", "num_batches", "epoch_steps", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        run_benchmark(args, device, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_benchmark(args: argparse.Namespace, device: torch.device, tmp: Path) -> None:
    """Build everything, run the interleaved rounds, print (and append) the results."""
    size = args.image_size
    overrides = [f"dataset.image_size=[{size},{size}]", f"dataset.batch_size={args.batch}",
                 *args.overrides]
    cfg = compose_config(overrides, tmp)
    comp = build_components(cfg)
    batches = make_batches(cfg, args.num_batches, args.batch, size, device)
    epoch_len = args.epoch_steps or max(cfg.dataset.train_set.num_samples // args.batch, 1)
    ignored = sum(int((b["mask"] == cfg.dataset.ignore_index).sum()) for b in batches)
    ignored /= sum(b["mask"].numel() for b in batches)
    n_params = sum(p.numel() for p in comp.model.parameters())

    setup = (f"{cfg.model.arch}/{cfg.model.encoder_name} ({n_params / 1e6:.2f} M params), "
             f"loss {cfg.loss._target_.rsplit('.', 1)[-1]}, "
             f"optimizer {cfg.optimizer._target_.rsplit('.', 1)[-1]}, scheduler "
             f"{cfg.scheduler._target_.rsplit('.', 1)[-1] if cfg.get('scheduler') else None}; "
             f"batch ({args.batch}, 3, {size}, {size}) float32, {ignored:.1%} ignored, "
             f"{args.num_batches} in-memory batches, {epoch_len} steps/epoch\n"
             f"{args.rounds} interleaved rounds, each run {args.warmup} warm-up + {args.steps} "
             f"timed steps; median ms/step")
    if args.overrides:
        setup += f"\noverrides: {' '.join(args.overrides)}"
    header = (f"torch {torch.__version__} | device: {args.device} ({device_name(device)}) | "
              f"threads: {torch.get_num_threads()}\n{setup}")
    print(header, flush=True)
    print(f"loadavg before: {loadavg()}", flush=True)

    results = {name: Result(name) for name in VARIANTS}
    parts: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    monitor = LoadMonitor()
    for r in range(args.rounds):
        for name in VARIANTS:
            probe = ComputeProbe(device) if args.breakdown else None
            if name == HAND:
                ms = run_hand_written(comp, batches, epoch_len, args.warmup, args.steps,
                                      device, probe)
            else:
                log_dir = tmp / f"tb_round{r}" if name == SEG_TB else None
                ms = run_segohem(comp, batches, epoch_len, args.warmup, args.steps, device,
                                 log_dir, probe)
            results[name].times_ms.append(ms)
            if probe is not None:
                parts[name].append({k: 1e3 * v / args.steps for k, v in probe.seconds.items()})
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{name} {res.times_ms[-1]:.2f}" for name, res in results.items()) + " ms/step",
            flush=True)
    load = load_note(monitor.other_load_pct())

    if args.breakdown:
        title = "training step breakdown: host time outside forward/loss/backward/optimizer"
        brows = breakdown_rows(results, parts)
        text_rows, md, conclusion = brows, format_breakdown_markdown(brows), \
            breakdown_verdict(results, parts)
        print()
        print(format_text(title, text_rows, BREAKDOWN_HEADER))
    else:
        rows = table_rows(list(results.values()))
        md, conclusion = format_markdown(rows), verdict(list(results.values()))
        print()
        print(format_text("training step: segohem (Lightning) vs a hand-written loop", rows))
    print(conclusion)
    print(f"\n{load}", flush=True)

    if args.markdown is not None:
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        parts = [
            "",
            f"`{command_line()}` | {now} | torch {torch.__version__} | "
            f"{args.device}: {device_name(device)} | threads: {torch.get_num_threads()}",
            "",
            setup.replace("\n", "; ") + f"; {load}.",
            "",
            md,
            "",
            conclusion + ".",
        ]
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(parts) + "\n")
        print(f"\nappended Markdown to {args.markdown}")


if __name__ == "__main__":
    main()
