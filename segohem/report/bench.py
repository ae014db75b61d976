"""What the benchmarks (``scripts/bench_*.py``) share: interleaved timing statistics from
``torch.utils.benchmark``, the background CPU load from ``psutil`` (the ``test`` extra), and the
report (pandas tables as Markdown, printed and appended to a file with the command line).
Times are in seconds unless a name says otherwise."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.benchmark import Measurement, Timer
from torch.utils.benchmark.utils.common import TaskSpec


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None
               ) -> argparse.Namespace:
    """Add ``--device``, ``--threads`` and ``--markdown``, parse ``argv`` and apply them."""
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--markdown", type=Path, help="append the results to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = torch.device(args.device)
    return args


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, Measurement]:
    """Time each call with a ``torch.utils.benchmark`` Timer (this process's torch threads):
    each round runs every timer's ``blocked_autorange`` once (one warm-up call, one timed
    block), in turn, so slow drift of a busy machine hits all of them alike; the rounds of a
    call are merged into one :class:`Measurement` (median, IQR)."""
    timers = {name: Timer("call()", description=name, num_threads=torch.get_num_threads(),
                          globals={"call": call}) for name, call in calls.items()}
    runs: dict[str, list[Measurement]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            runs[name].append(timer.blocked_autorange(min_run_time=0))
    return {name: Measurement.merge(ms)[0] for name, ms in runs.items()}


def measurement(name: str, seconds: Sequence[float], per_round: int = 1) -> Measurement:
    """The :class:`Measurement` of rounds timed by the caller, ``per_round`` units each."""
    return Measurement(per_round, list(seconds), TaskSpec(stmt=name, setup=""))


def iqr_pct(m: Measurement) -> float:
    """Interquartile range of the rounds as a % of their median: a noise indicator."""
    return 100.0 * m.iqr / m.median


class BackgroundLoad:
    """CPU time of *other* processes since construction, as a % of all CPUs (``psutil``);
    this process's threads and its finished children (DataLoader workers) are not counted."""

    def __init__(self) -> None:
        try:
            import psutil  # the test extra, as the benchmarks
        except ImportError as err:
            raise ImportError("the benchmarks measure the background CPU load with psutil: "
                              "pip install 'segohem[test]' (or psutil)") from err
        self.psutil = psutil
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        """(wall clock s, busy CPU s of all processes, CPU s of this one and its children)."""
        psutil = self.psutil
        cpu, own = psutil.cpu_times(), psutil.Process().cpu_times()
        busy = sum(getattr(cpu, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq",
                                                  "steal"))
        mine = own.user + own.system + own.children_user + own.children_system
        return time.perf_counter(), busy, mine

    def note(self) -> str:
        """The load since construction in one sentence, with a warning above 10 %."""
        end = self._sample()
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        psutil, cpus = self.psutil, self.psutil.cpu_count() or 1
        pct = max(0.0, 100.0 * other / ((end[0] - self.start[0]) * cpus))
        loadavg = " ".join(f"{x:.2f}" for x in psutil.getloadavg())
        note = f"background CPU load during the run: {pct:.0f}% of {cpus} CPUs; loadavg {loadavg}"
        if pct > 10:
            note += " -- WARNING: the machine was busy, timings may be inflated (rerun when idle)"
        return note


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model (``/proc/cpuinfo``; else ``platform``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        return next(line.split(":", 1)[1].strip() for line in cpuinfo
                    if line.startswith("model name"))
    return platform.processor() or platform.machine()


def table(rows: list[dict[str, str]]) -> str:
    """Rows of formatted cells as a Markdown table, the first column left-aligned."""
    frame = pd.DataFrame(rows)
    return frame.to_markdown(index=False, disable_numparse=True,
                             colalign=["left"] + ["right"] * (len(frame.columns) - 1))


def report(device: torch.device, setup: str, tables: Sequence[str], verdict: str,
           markdown: Path | None) -> None:
    """Print ``setup``, the tables and the verdict; append them to ``markdown`` under a line
    with the command, the time, torch, the device and the thread count."""
    command = shlex.join(getattr(sys, "orig_argv", None) or ["python", *sys.argv])
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    head = (f"`{command}` | {now} | torch {torch.__version__} | {device.type}: "
            f"{device_name(device)} | threads: {torch.get_num_threads()}")
    text = "\n\n".join([f"{setup}.", *tables, *([f"{verdict}."] if verdict else [])])
    print(f"\n{head}\n\n{text}", flush=True)
    if markdown is not None:
        with markdown.open("a", encoding="utf-8") as fh:
            fh.write(f"\n{head}\n\n{text}\n")
        print(f"\nappended Markdown to {markdown}")
