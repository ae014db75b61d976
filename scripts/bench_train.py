"""Time segohem's training step (Lightning) against a hand-written PyTorch loop.

The config's ``module`` (``--overrides`` applied; deep-copied per run) trains on the same
in-memory batches three ways: ``hand-written`` (forward, loss, ``zero_grad``, ``backward``,
``step``, scheduler), ``segohem (TensorBoard)`` (``SegmentationModule`` in a ``Trainer`` with the
app's TensorBoard logger, no checkpoints or validation) and ``segohem (logger=False)``; steps
``--warmup`` to ``--warmup + --steps`` are timed, the variants alternate in ``--rounds`` rounds
(``torch.utils.benchmark.Measurement`` statistics). Target: <= 5 % overhead.

``--breakdown`` profiles those steps (``torch.profiler``): ``forward`` / ``loss`` are ranges that
module hooks put around the model's and the loss's forward, ``backward`` the autograd engine's
events, ``optimizer`` the ``Optimizer.step`` range less Lightning's closure in it (ranged by an
optimizer-step pre-hook); the rest is the loop's own host time, and the toolkit's overhead its
host time minus the hand-written loop's (on CUDA, ``CUDA_LAUNCH_BLOCKING=1`` puts the kernels in
their ranges).

    python scripts/bench_train.py [--device cpu|cuda] [--rounds 5] [--breakdown]
                                  [--height H --width W] [--overrides loss=ce ...]
                                  [--markdown FILE]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from hydra.utils import instantiate
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader, default_collate

from segohem.config.compose import compose_config
from segohem.data import build_dataset
from segohem.report.bench import BackgroundLoad, iqr_pct, measurement, parse_args, report, table

HAND, SEG_TB, SEG_NOLOG = "hand-written", "segohem (TensorBoard)", "segohem (logger=False)"
PARTS = ("forward", "loss", "backward", "optimizer")
TARGET_PCT = 5.0


class Window(pl.Callback):
    """Times steps ``[warmup, warmup + steps)`` of a loop that calls :meth:`at_step` at the
    start of every step (Lightning: ``on_train_batch_start``), under ``torch.profiler`` when
    ``profiled``."""

    def __init__(self, warmup: int, steps: int, device: torch.device, profiled: bool) -> None:
        self.warmup, self.steps, self.device = warmup, steps, device
        self.profiler = profile(activities=[ProfilerActivity.CPU]) if profiled else None
        self.start = self.seconds = None

    def at_step(self, step: int) -> None:
        if step in (self.warmup, self.warmup + self.steps) and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if step == self.warmup:
            self.start = time.perf_counter()
            if self.profiler:
                self.profiler.start()
        elif step == self.warmup + self.steps:
            self.seconds = time.perf_counter() - self.start
            if self.profiler:
                self.profiler.stop()

    def on_train_batch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        self.at_step(trainer.global_step)

    def parts_ms(self) -> dict[str, float]:
        """Milliseconds per step in each of :data:`PARTS` (see the module docstring)."""
        total = dict.fromkeys((*PARTS, "closure"), 0.0)
        for event in self.profiler.events():
            name = event.name
            part = ("backward" if name.startswith("autograd::engine::evaluate_function")
                    else "optimizer" if name.startswith("Optimizer.step#")
                    else name.removeprefix("bench/") if name.startswith("bench/") else None)
            if part:
                total[part] += event.time_range.elapsed_us() / 1e3
        total["optimizer"] -= total.pop("closure")
        return {part: ms / self.steps for part, ms in total.items()}


@contextlib.contextmanager
def ranges(model: nn.Module, loss: nn.Module) -> Iterator[None]:
    """Profiler ranges ``bench/forward`` and ``bench/loss`` around the forward of ``model`` and
    ``loss`` (module hooks), ``bench/closure`` around the closure that Lightning passes to
    ``optimizer.step`` (an optimizer-step pre-hook)."""
    opened: list[record_function] = []

    def enter(name: str) -> Any:
        def hook(*_: Any) -> None:
            opened.append(record_function(name))
            opened[-1].__enter__()
        return hook

    def leave(*_: Any) -> None:
        opened.pop().__exit__(None, None, None)

    def range_closure(_opt: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        closure = kwargs.get("closure")
        if closure is None:
            return None

        def ranged() -> Any:
            with record_function("bench/closure"):
                return closure()
        return args, {**kwargs, "closure": ranged}

    handles = [register_optimizer_step_pre_hook(range_closure)]
    for name, module in (("bench/forward", model), ("bench/loss", loss)):
        handles += [module.register_forward_pre_hook(enter(name)),
                    module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_hand_written(module: pl.LightningModule, batches: list, epoch_len: int,
                     window: Window, channels_last: bool) -> None:
    model, criterion = module.model, module.loss
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if module.compile_model:
        model.compile()
    total = window.warmup + window.steps + 1  # as many steps as the Lightning runs
    opt = module.optimizer_factory(model.parameters())
    sched = module.scheduler_factory(opt, total_steps=total) if module.scheduler_factory else None
    model.train()
    for step in range(total):
        window.at_step(step)
        batch = batches[step % epoch_len % len(batches)]
        images = batch["image"]
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = criterion(model(images), batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()


def run_lightning(module: pl.LightningModule, batches: list, epoch_len: int, window: Window,
                  logger: Any, root: Path) -> None:
    total = window.warmup + window.steps + 1  # the extra step ends the window at its start
    trainer = pl.Trainer(
        accelerator=window.device.type, devices=1, max_steps=total, logger=logger,
        callbacks=[window], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        log_every_n_steps=10, default_root_dir=str(root))
    cycled = [batches[i % len(batches)] for i in range(epoch_len)]
    trainer.fit(module, train_dataloaders=DataLoader(cycled, batch_size=None))
    if trainer.global_step != total:
        raise RuntimeError(f"Lightning ran {trainer.global_step} steps, expected {total}")


def quiet_lightning() -> None:
    """Silence Lightning's per-fit info lines and its hints about workers and log intervals."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in ("does not have many workers", "log_every_n_steps", "GPU available",
                    "no `val_dataloader`", "LeafSpec"):
        warnings.filterwarnings("ignore", message=f".*{message}.*")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="samples per step")
    parser.add_argument("--image-size", type=int, default=96, help="square side (>= 32)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: "
                        "--image-size); e.g. --height 512 --width 1024 for Cityscapes crops")
    parser.add_argument("--width", type=int, default=None, help="image width (default: "
                        "--image-size)")
    parser.add_argument("--num-batches", type=int, default=16, help="distinct batches, cycled")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 3)")
    parser.add_argument("--breakdown", action="store_true",
                        help="profile forward / loss / backward / optimizer and the host rest")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides, e.g. loss=ce")
    args = parse_args(parser, argv)
    height, width = args.height or args.image_size, args.width or args.image_size
    if (args.rounds < 3 or min(height, width) < 32 or args.warmup < 0
            or min(args.batch, args.num_batches, args.steps) < 1):
        parser.error("needs --rounds >= 3, image sides >= 32, --warmup >= 0, others >= 1")
    if args.breakdown and args.device.type == "cuda":
        os.environ["CUDA_LAUNCH_BLOCKING"] = "1"  # before CUDA starts: ranges hold kernels
    quiet_lightning()
    device = args.device
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    cfg = compose_config("train", [f"dataset.image_size=[{height},{width}]",
                                   f"dataset.batch_size={args.batch}", *args.overrides], tmp)
    pl.seed_everything(cfg.seed, verbose=False)
    template = instantiate(cfg.module)
    dataset = build_dataset(cfg.dataset.train_set, num_samples=args.num_batches * args.batch,
                            transform=instantiate(cfg.dataset.val_transform))
    items = [{"image": it["image"], "mask": it["mask"]} for it in map(dataset.__getitem__,
                                                                      range(len(dataset)))]
    batches = [{k: v.to(device) for k, v in default_collate(
        items[b * args.batch:(b + 1) * args.batch]).items()} for b in range(args.num_batches)]
    epoch_len = max(cfg.dataset.train_set.num_samples // args.batch, 1)
    ignored = torch.stack([b["mask"] for b in batches]) == cfg.dataset.ignore_index
    setup = (f"{cfg.model.arch}/{cfg.model.encoder_name} "
             f"({sum(p.numel() for p in template.model.parameters()) / 1e6:.2f} M params), "
             f"{type(template.loss).__name__}, {cfg.optimizer._target_.rsplit('.', 1)[-1]}, "
             f"scheduler {(cfg.get('scheduler') or {}).get('_target_', '-').rsplit('.')[-1]}; "
             f"batch ({args.batch}, 3, {height}, {width}), {ignored.float().mean():.1%} ignored, "
             f"{args.num_batches} in-memory batches, {epoch_len} steps/epoch; {args.rounds} "
             f"interleaved rounds of {args.warmup} warm-up + {args.steps} timed steps per run"
             + (f"; overrides: {' '.join(args.overrides)}" if args.overrides else ""))

    variants = (HAND, SEG_TB, SEG_NOLOG)
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    parts: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    load = BackgroundLoad()
    for r in range(args.rounds):
        for variant in variants:
            module = copy.deepcopy(template).to(device)
            window = Window(args.warmup, args.steps, device, args.breakdown)
            with ranges(module.model, module.loss) if args.breakdown else contextlib.nullcontext():
                if variant == HAND:
                    run_hand_written(module, batches, epoch_len, window, cfg.channels_last)
                else:  # the app's TensorBoard logger (conf/logger/tensorboard.yaml), or none
                    logger = variant == SEG_TB and instantiate(cfg.logger.tensorboard,
                                                               save_dir=str(tmp / f"tb{r}"))
                    run_lightning(module, batches, epoch_len, window, logger, tmp)
            seconds[variant].append(window.seconds)
            if args.breakdown:
                parts[variant].append(window.parts_ms())
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{v} {1e3 * s[-1] / args.steps:.2f}" for v, s in seconds.items()) + " ms/step",
            flush=True)
    note = load.note()

    steps = {v: measurement(v, s, args.steps) for v, s in seconds.items()}
    base = steps[HAND].median
    if args.breakdown:  # host time = the window less the parts, per round
        frames = {v: pd.DataFrame(p) for v, p in parts.items()}
        host = {v: measurement(v, pd.Series(seconds[v]) - f.sum(axis=1) * args.steps / 1e3,
                               args.steps) for v, f in frames.items()}
        added = {v: (host[v].median - host[HAND].median) / base for v in variants}
        rows = [{"variant": v, "median ms/step": f"{1e3 * steps[v].median:.2f}",
                 **{f"{p} ms": f"{frames[v][p].median():.2f}" for p in PARTS},
                 "host outside compute ms": f"{1e3 * host[v].median:.2f}",
                 "added host ms": "-" if v == HAND else f"{1e3 * added[v] * base:+.2f}",
                 "added % of step": "-" if v == HAND else f"{100 * added[v]:+.1f}"}
                for v in variants]
        worst = 100 * max(added[SEG_TB], added[SEG_NOLOG])
        verdict = (f"toolkit host overhead {10 * worst * base:+.2f} ms/step = {worst:+.1f}% of "
                   f"the hand-written step ({1e3 * base:.2f} ms)")
        iqr = 1e3 * max(h.iqr for h in host.values())
        noise = f"host-time IQR across rounds up to {iqr:.2f} ms"
    else:
        paired = pd.DataFrame(seconds).div(pd.Series(seconds[HAND]), axis=0) - 1
        rows = [{"variant": v, "median ms/step": f"{1e3 * m.median:.2f}",
                 "overhead %": "-" if v == HAND else f"{100 * (m.median / base - 1):+.1f}",
                 "paired overhead %": "-" if v == HAND else f"{100 * paired[v].median():+.1f}",
                 "IQR %": f"{iqr_pct(m):.1f}"} for v, m in steps.items()]
        worst = 100 * (max(steps[SEG_TB].median, steps[SEG_NOLOG].median) / base - 1)
        verdict = f"worst overhead {worst:+.1f}%"
        spread = max(iqr_pct(m) for m in steps.values())
        noise = (f"NOTE: the run-to-run noise (IQR up to {spread:.0f}%) exceeds the target, so "
                 "this verdict is not conclusive (rerun with more --rounds, on an idle machine)"
                 if spread > TARGET_PCT else "")
    verdict += (f": {'meets' if worst <= TARGET_PCT else 'MISSES'} the target <= "
                f"{TARGET_PCT:.0f}%" + (f" -- {noise}" if noise else ""))
    report(device, f"{setup}; {note}", [table(rows)], verdict, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
