"""Helpers shared by the scripts: the composed train config, background load, device,
command line."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict


@dataclass
class Result:
    """Timings of one benchmarked variant, one value per round (ms)."""

    name: str
    times_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def spread_pct(self) -> float:
        """Interquartile range as a percentage of the median (a noise indicator)."""
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4)
        return 100.0 * (q3 - q1) / self.median_ms


class LoadMonitor:
    """CPU time used by *other* processes while the benchmark ran (Linux ``/proc/stat``).

    Other load makes multi-threaded CPU kernels wait for a descheduled thread, which can
    inflate some variants far more than others; the report warns when it is high.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        """``(wall s, busy CPU s of all processes, CPU s of this process)`` or None."""
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return None
        if fields[0] != "cpu" or len(fields) < 9:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    def other_load_pct(self) -> float | None:
        """Other processes' CPU time as a % of all CPUs' capacity since construction."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        capacity = wall * (os.cpu_count() or 1)
        return max(0.0, 100.0 * other / capacity) if capacity > 0 else None


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def load_note(pct: float | None) -> str:
    if pct is None:
        return f"background CPU load: unknown; loadavg {loadavg()}"
    note = (f"background CPU load during the run: {pct:.0f}% of {os.cpu_count()} CPUs; "
            f"loadavg {loadavg()}")
    if pct > 10:
        note += " -- WARNING: the machine was busy, timings may be inflated (rerun when idle)"
    return note


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def command_line() -> str:
    argv = getattr(sys, "orig_argv", None) or ["python", *sys.argv]
    return shlex.join(argv)


def compose_config(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The ``train`` config with ``overrides``; ``paths.output_dir`` set to ``output_dir``
    (``${hydra:runtime.output_dir}`` does not resolve under the compose API)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="segohem.conf"):
        cfg = compose("train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg
