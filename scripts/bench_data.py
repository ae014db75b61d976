"""Benchmark the Cityscapes TRAIN data pipeline: images/s per DataLoader worker.

What is measured
    The throughput of ``dataset[i]`` for the ``dataset=cityscapes`` config's ``train_set``
    (:class:`segohem.data.CityscapesDataset` with the config's ``train_transform``): PNG decode
    of the 1024x2048 image and of its ``labelIds`` mask, labelId -> trainId mapping and the
    dataset's checks, then the albumentations train pipeline (random scale x0.5-x2.0, pad,
    512x1024 random crop, flip, colour jitter, Normalize, ToTensorV2). Nothing else: no model,
    no collation beyond ``batch_size=1``.

    (a) ``single process``: ``dataset[i]`` called in a loop in this process, ``--passes``
        passes over all images after 2 untimed warm-up items. The same loop reports a
        breakdown, timed by wrapping the dataset's own steps with a timer (a few microseconds
        per call): image decode (``read_image``), mask decode (``read_mask``), label mapping
        (``_decode_mask``), transform (the albumentations ``Compose``) and the rest of
        ``__getitem__`` (size check, uint8 cast, long-tensor conversion).
    (b) ``DataLoader, N workers`` for each N of ``--workers``: a ``DataLoader(batch_size=1,
        num_workers=N)`` with segohem's worker seeding (``seed_worker_transform``) over a
        fixed index list of ``max(2, 2 N)`` warm-up items followed by ``--passes`` passes over
        all images; the clock runs from the arrival of the last warm-up item to the arrival
        of the last item, so worker start-up is excluded. Images/s per worker = images/s / N.
        Unlike (a) this includes what every training run pays on top of ``dataset[i]``: the
        worker's ``default_collate`` into shared memory of the float32 image and int64 mask
        (10 MB per 512x1024 sample) and the hand-over to the main process.

    Measurements run interleaved in ``--rounds`` rounds (single process, then each worker
    count), so a burst of other load hits all alike; the tables report the median over the
    rounds and the interquartile range of the rounds as a % of the median (noise). The
    breakdown is the median per step over the single-process rounds ("rest" = median total
    minus the steps' medians).

    OpenCV's own thread pool is limited to ``--cv2-threads`` (default 1) in this process and
    in every worker, and torch to 1 thread (as in DataLoader workers), so "per worker" means
    "per CPU core". ``--cv2-threads -1`` keeps OpenCV's default (one thread per core in every
    worker, which is what an unmodified training run does).

    The verdict extrapolates the per-worker rate of the largest measured worker count that
    fits the machine's cores (else the single-process rate) to 8 workers -- "if cores
    scale", i.e. assuming 8 free cores -- and compares it with the bar of 25 images/s for
    8 workers (the rate that keeps a GPU fed at batch 8 and ~3 steps/s).

Data
    By default a Cityscapes-layout tree (``leftImg8bit/train/<city>/*_leftImg8bit.png`` +
    ``gtFine/train/<city>/*_gtFine_labelIds.png``) of ``--num-images`` (16) street-like
    scenes is written to a temp dir: sky, skyline of buildings, trees, road, sidewalks,
    poles, signs, cars, people, ego vehicle, out-of-ROI border, with per-object colours,
    low-frequency shading, fine texture and camera-like pixel noise, saved as RGB PNG with
    Pillow's default compression. The files come out at ~2.4 MB per image (real Cityscapes:
    ~2.2 MB), so PNG decode costs what it costs on the real data; the masks use real
    labelIds (ignored ids included). ``--root`` uses an existing Cityscapes tree instead
    (its first ``--num-images`` train images).

How to run
    python scripts/bench_data.py                           # 16 synthetic 1024x2048 images
    python scripts/bench_data.py --workers 1,2,4 --markdown results.md
    python scripts/bench_data.py --root /data/cityscapes --num-images 64
    python scripts/bench_data.py --size 128 256 --num-images 2 --workers 0   # smoke run
    python scripts/bench_data.py --overrides dataset.crop_size=[768,768]  # Hydra overrides
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_common import (
    LoadMonitor,
    command_line,
    compose_config,
    device_name,
    load_note,
    loadavg,
)
from omegaconf import DictConfig

BAR_IMAGES_PER_S = 25.0  # with 8 workers
BAR_WORKERS = 8
CITYSCAPES_SIZE = (1024, 2048)
CITIES = ("aachen", "bochum", "bremen")
PARTS = ("image decode", "mask decode", "label mapping", "transform")


# --------------------------------------------------------------------------------------
# A synthetic, realistic Cityscapes tree
# --------------------------------------------------------------------------------------

# labelId -> base RGB colour of the synthetic scenes (roughly what the class looks like).
_COLOURS = {
    1: (20, 20, 25), 3: (0, 0, 0), 4: (110, 90, 80), 7: (110, 105, 110), 8: (165, 155, 150),
    9: (140, 120, 125), 11: (150, 130, 115), 12: (170, 165, 150), 13: (120, 110, 95),
    17: (90, 90, 95), 19: (40, 40, 35), 20: (200, 190, 60), 21: (70, 105, 45),
    22: (140, 150, 90), 23: (170, 200, 230), 24: (90, 60, 70), 26: (60, 70, 120),
    33: (130, 30, 40),
}


def _field(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field (h, w) float32 in about [-1, 1]: a cubic-upsampled grid."""
    import cv2

    grid = rng.uniform(-1, 1, cells).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def make_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A street-like scene: uint8 RGB image (h, w, 3) and uint8 Cityscapes labelIds (h, w)."""
    import cv2

    inst = np.zeros((h, w), np.uint16)  # instance id; instance 0 = sky
    ids: list[int] = [23]
    colours: list[np.ndarray] = [np.array(_COLOURS[23], np.float32)]

    def new(label: int) -> int:
        ids.append(label)
        jitter = rng.uniform(-25, 25, 3) + rng.uniform(-20, 20)
        colours.append(np.clip(np.array(_COLOURS[label], np.float32) + jitter, 0, 255))
        return len(ids) - 1

    def s(v: float) -> int:  # fraction of the width -> px
        return max(1, round(v * w))

    horizon = int(h * rng.uniform(0.4, 0.5))
    # Buildings along the skyline, walls / fences and trees in front of them.
    x = 0
    while x < w:
        bw = s(rng.uniform(0.05, 0.2))
        cv2.rectangle(inst, (x, int(h * rng.uniform(0.02, 0.3))), (x + bw, horizon), new(11), -1)
        for _ in range(int(rng.integers(0, 12))):  # windows: same class, other colour
            wx, wy = x + int(rng.uniform(0, bw)), int(h * rng.uniform(0.1, 0.4))
            cv2.rectangle(inst, (wx, wy), (wx + s(0.008), wy + s(0.01)), new(11), -1)
        x += bw
    for _ in range(int(rng.integers(1, 4))):
        x0 = s(rng.uniform(0, 0.9))
        cv2.rectangle(inst, (x0, horizon - s(rng.uniform(0.01, 0.03))),
                      (x0 + s(rng.uniform(0.05, 0.2)), horizon), new(int(rng.choice([12, 13]))),
                      -1)
    for _ in range(int(rng.integers(2, 7))):
        c = (s(rng.uniform(0, 1)), int(horizon - h * rng.uniform(0.05, 0.3)))
        axes = (s(rng.uniform(0.03, 0.1)), s(rng.uniform(0.03, 0.08)))
        cv2.ellipse(inst, c, axes, float(rng.uniform(0, 180)), 0, 360, new(21), -1)
    # Ground: sidewalk / terrain below the horizon, the road as a trapezoid.
    cv2.rectangle(inst, (0, horizon), (w, h), new(8), -1)
    for side in (0, 1):
        x0 = 0 if side == 0 else w - s(0.15)
        cv2.rectangle(inst, (x0, horizon), (x0 + s(rng.uniform(0.05, 0.15)),
                                            horizon + s(0.03)), new(22), -1)
    vx = w * rng.uniform(0.4, 0.6)
    road = np.array([[vx - w * 0.05, horizon], [vx + w * 0.05, horizon],
                     [w * rng.uniform(0.85, 1.1), h], [w * rng.uniform(-0.1, 0.15), h]], np.int32)
    cv2.fillPoly(inst, [road], new(7))
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = s(rng.uniform(0, 0.9)), int(h * rng.uniform(0.55, 0.8))
        cv2.rectangle(inst, (x0, y0), (x0 + s(0.06), y0 + s(0.02)), new(int(rng.choice([4, 9]))),
                      -1)
    # Poles with signs / lights, cars, people, bicycles (bigger when lower in the image).
    for _ in range(int(rng.integers(2, 8))):
        x0 = s(rng.uniform(0, 1))
        top, bottom = int(h * rng.uniform(0.1, 0.35)), int(h * rng.uniform(0.5, 0.7))
        cv2.rectangle(inst, (x0, top), (x0 + s(rng.uniform(0.002, 0.006)), bottom), new(17), -1)
        if rng.random() < 0.6:
            cv2.rectangle(inst, (x0 - s(0.01), top), (x0 + s(0.012), top + s(0.02)),
                          new(int(rng.choice([19, 20]))), -1)
    for _ in range(int(rng.integers(2, 10))):
        y = rng.uniform(0.0, 1.0)
        size = 0.03 + 0.15 * y
        y0 = int(horizon + (h - horizon) * 0.6 * y)
        x0 = s(rng.uniform(-0.05, 1.0))
        cw, ch = s(size), s(size * 0.45)
        car = new(26)
        cv2.rectangle(inst, (x0, y0 - ch), (x0 + cw, y0), car, -1)
        cv2.ellipse(inst, (x0 + cw // 2, y0 - ch), (cw // 3, ch // 2), 0, 180, 360, car, -1)
        for wx in (x0 + cw // 5, x0 + 4 * cw // 5):  # wheels: dark, same class
            cv2.circle(inst, (wx, y0), max(1, ch // 4), new(26), -1)
    for _ in range(int(rng.integers(0, 8))):
        y = rng.uniform(0.0, 1.0)
        ph = s(0.02 + 0.1 * y)
        x0, y0 = s(rng.uniform(0, 1)), int(horizon + (h - horizon) * 0.5 * y)
        label = 24 if rng.random() < 0.8 else 33
        cv2.ellipse(inst, (x0, y0 - ph // 2), (max(1, ph // 6), ph // 2), 0, 0, 360, new(label),
                    -1)
        cv2.circle(inst, (x0, y0 - ph - ph // 10), max(1, ph // 10), new(label), -1)
    # Ego vehicle (bonnet) at the bottom, out-of-ROI border around the image.
    ego = int(h * rng.uniform(0.03, 0.08))
    cv2.ellipse(inst, (w // 2, h + ego), (int(w * 0.7), 2 * ego), 0, 180, 360, new(1), -1)
    border = new(3)
    b = max(1, h // 200)
    inst[:b], inst[-b:], inst[:, :b], inst[:, -b:] = border, border, border, border

    labels = np.array(ids, np.uint8)[inst]
    image = np.stack(colours)[inst]  # (h, w, 3) float32
    shade = 1.0 + 0.18 * _field(rng, h, w, (6, 12)) + 0.06 * _field(rng, h, w, (48, 96))
    image *= shade[..., None]
    image = cv2.GaussianBlur(image, (3, 3), 0)  # soft object edges, like optics
    image += 3.0 * _field(rng, h, w, (h // 8, w // 8))[..., None]  # fine texture
    image += rng.standard_normal(image.shape, dtype=np.float32) * 1.0  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), labels


@dataclass
class TreeInfo:
    root: Path
    num_images: int
    image_mb: float  # mean file size
    mask_kb: float
    seconds: float


def write_cityscapes_tree(root: Path, num_images: int, size: tuple[int, int],
                          seed: int = 0) -> TreeInfo:
    """``num_images`` scenes in the Cityscapes train layout under ``root`` (threads)."""
    from PIL import Image

    start = time.perf_counter()

    def one(i: int) -> tuple[int, int]:
        city = CITIES[i % len(CITIES)]
        stem = f"{city}_{i:06d}_000019"
        image_dir = root / "leftImg8bit" / "train" / city
        mask_dir = root / "gtFine" / "train" / city
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        image, labels = make_scene(np.random.default_rng([seed, i]), *size)
        image_path = image_dir / f"{stem}_leftImg8bit.png"
        mask_path = mask_dir / f"{stem}_gtFine_labelIds.png"
        Image.fromarray(image).save(image_path)
        Image.fromarray(labels).save(mask_path)
        return image_path.stat().st_size, mask_path.stat().st_size

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        sizes = list(pool.map(one, range(num_images)))
    return TreeInfo(root, num_images, statistics.mean(s[0] for s in sizes) / 1e6,
                    statistics.mean(s[1] for s in sizes) / 1e3, time.perf_counter() - start)


# --------------------------------------------------------------------------------------
# Config and dataset
# --------------------------------------------------------------------------------------



def make_dataset(cfg: DictConfig, num_images: int) -> Any:
    """The config's ``train_set``, cut to its first ``num_images`` samples."""
    from hydra.utils import instantiate

    from segohem.data.geometry import resolve_auto_geometry

    resolve_auto_geometry(cfg.dataset)  # dataset.crop_size / scale_range: auto
    dataset = instantiate(cfg.dataset.train_set)
    if num_images < len(dataset.samples):
        dataset.samples = dataset.samples[:num_images]
    return dataset


def limit_threads(cv2_threads: int) -> None:
    """torch to 1 thread (as in DataLoader workers); OpenCV to ``cv2_threads`` (-1: keep)."""
    torch.set_num_threads(1)
    if cv2_threads >= 0:
        import cv2

        cv2.setNumThreads(cv2_threads)


class ChildrenLoadMonitor(LoadMonitor):
    """:class:`LoadMonitor` that counts this process's (finished, joined) DataLoader workers
    as its own CPU time, not as other processes' load."""

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        sample = LoadMonitor._sample()
        if sample is None:
            return None
        t = os.times()
        return sample[0], sample[1], sample[2] + t.children_user + t.children_system


class WorkerInit:
    """``worker_init_fn``: segohem's worker seeding, then the thread limits (picklable)."""

    def __init__(self, cv2_threads: int) -> None:
        self.cv2_threads = cv2_threads

    def __call__(self, worker_id: int) -> None:
        from segohem.data.datamodule import seed_worker_transform

        seed_worker_transform(worker_id)
        limit_threads(self.cv2_threads)


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One round of one measurement."""

    name: str
    workers: int  # 0: in this process
    images: int
    seconds: float
    parts_s: dict[str, float] = field(default_factory=dict)  # single process only

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


@dataclass
class Series:
    """The rounds of one measurement; rates are medians over the rounds."""

    name: str
    workers: int
    rounds: list[Throughput] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return statistics.median(r.images_per_s for r in self.rounds)

    @property
    def per_worker(self) -> float:
        return self.images_per_s / max(self.workers, 1)

    @property
    def spread_pct(self) -> float | None:
        """Interquartile range of the rounds' images/s as a % of the median (noise)."""
        if len(self.rounds) < 2:
            return None
        q1, _, q3 = statistics.quantiles([r.images_per_s for r in self.rounds], n=4)
        return 100.0 * (q3 - q1) / self.images_per_s


@contextlib.contextmanager
def _timed(owner: Any, name: str, part: str, acc: dict[str, float]) -> Iterator[bool]:
    """Wrap ``owner.name`` (a function or callable attribute) to add its time to
    ``acc[part]``; yields False (and changes nothing) when it does not exist."""
    original = getattr(owner, name, None)
    if original is None or not callable(original):
        yield False
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            acc[part] = acc.get(part, 0.0) + time.perf_counter() - t0

    had_own = isinstance(owner, type) or name in vars(owner)
    setattr(owner, name, wrapper)
    try:
        yield True
    finally:
        if had_own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def single_process(dataset: Any, passes: int) -> Throughput:
    """``dataset[i]`` in this process over ``passes`` passes, with the step breakdown."""
    from segohem.data.datasets import _common

    for i in range(min(2, len(dataset))):  # warm-up: lazy imports, first allocations
        dataset[i]
    acc: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        hooked = [
            stack.enter_context(_timed(_common, "read_image", "image decode", acc)),
            stack.enter_context(_timed(_common, "read_mask", "mask decode", acc)),
            stack.enter_context(_timed(dataset, "_decode_mask", "label mapping", acc)),
        ]
        transform = dataset.transform
        if transform is not None:
            dataset.transform = _TimedCall(transform, acc)
        hooked.append(transform is not None)
        try:
            start = time.perf_counter()
            for _ in range(passes):
                for i in range(len(dataset)):
                    dataset[i]
            seconds = time.perf_counter() - start
        finally:
            dataset.transform = transform
    parts = {p: acc.get(p, 0.0) for p, ok in zip(PARTS, hooked, strict=True) if ok}
    return Throughput("single process (dataset[i])", 0, passes * len(dataset), seconds, parts)


class _TimedCall:
    def __init__(self, fn: Callable[..., Any], acc: dict[str, float]) -> None:
        self.fn, self.acc = fn, acc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.acc["transform"] = self.acc.get("transform", 0.0) + time.perf_counter() - t0


def data_loader(dataset: Any, workers: int, passes: int, cv2_threads: int) -> Throughput:
    """``DataLoader(batch_size=1, num_workers=workers)``: images/s after a warm-up."""
    from torch.utils.data import DataLoader

    warmup = max(2, 2 * workers)
    n = len(dataset)
    indices = [i % n for i in range(warmup)] + list(range(n)) * passes
    loader = DataLoader(dataset, batch_size=1, sampler=indices, num_workers=workers,
                        worker_init_fn=WorkerInit(cv2_threads) if workers else None)
    start = None
    for k, batch in enumerate(loader):
        if batch["image"].ndim != 4 or batch["mask"].dtype != torch.int64:
            raise RuntimeError(f"unexpected batch: image {tuple(batch['image'].shape)}, "
                               f"mask {batch['mask'].dtype}")
        if k == warmup - 1:
            start = time.perf_counter()
    assert start is not None
    seconds = time.perf_counter() - start
    label = f"DataLoader, {workers} worker{'s' if workers != 1 else ''}" if workers else \
        "DataLoader, 0 workers (main process)"
    return Throughput(label, workers, n * passes, seconds)


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

HEADER = ("pipeline", "images/s", "images/s per worker", "ms/image per worker", "IQR %",
          f"{BAR_WORKERS} workers if cores scale")


def table_rows(results: list[Series]) -> list[tuple[str, ...]]:
    return [(r.name, f"{r.images_per_s:.2f}", f"{r.per_worker:.2f}",
             f"{1e3 / r.per_worker:.1f}",
             "-" if r.spread_pct is None else f"{r.spread_pct:.0f}",
             f"~{BAR_WORKERS * r.per_worker:.0f} images/s") for r in results]


BREAKDOWN_HEADER = ("step of dataset[i]", "ms/image", "% of dataset[i]")


def breakdown_rows(single: Series) -> list[tuple[str, ...]]:
    """Median ms/image over the single-process rounds, per step and in total."""
    def median_ms(seconds: Callable[[Throughput], float]) -> float:
        return statistics.median(1e3 * seconds(r) / r.images for r in single.rounds)

    total_ms = median_ms(lambda r: r.seconds)
    rows, known = [], 0.0
    for part in PARTS:
        if all(part in r.parts_s for r in single.rounds):
            ms = median_ms(lambda r, p=part: r.parts_s[p])
            known += ms
            rows.append((part, f"{ms:.1f}", f"{100 * ms / total_ms:.0f}%"))
        else:
            rows.append((part, "n/a", "-"))
    rest = total_ms - known
    rows.append(("rest (checks, casts, tensors)", f"{rest:.1f}", f"{100 * rest / total_ms:.0f}%"))
    rows.append(("total dataset[i]", f"{total_ms:.1f}", "100%"))
    return rows


def basis(results: list[Series]) -> Series:
    """The measurement the 8-worker extrapolation uses: most workers that fit the cores."""
    cores = os.cpu_count() or 1
    loaders = [r for r in results if 0 < r.workers <= cores]
    return max(loaders, key=lambda r: r.workers) if loaders else results[0]


def verdict(results: list[Series]) -> str:
    b = basis(results)
    projected = BAR_WORKERS * b.per_worker
    ok = "meets" if projected >= BAR_IMAGES_PER_S else "MISSES"
    return (f"{BAR_WORKERS} workers ~ {projected:.0f} images/s if cores scale "
            f"({b.per_worker:.2f} images/s per worker, from '{b.name}'): {ok} the bar of "
            f"{BAR_IMAGES_PER_S:.0f} images/s per {BAR_WORKERS} workers "
            f"({BAR_IMAGES_PER_S / BAR_WORKERS:.2f} per worker)")


def format_text(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *rest])

    sep = "-" * len(line(header))
    return "\n".join([title, sep, line(header), sep, *(line(r) for r in rows), sep])


def format_markdown(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Images/s of the Cityscapes train pipeline (dataset[i]) per DataLoader "
                    "worker.")
    parser.add_argument("--root", type=Path, default=None,
                        help="an existing Cityscapes tree (default: write synthetic 1024x2048 "
                             "scenes to a temp dir)")
    parser.add_argument("--num-images", type=int, default=16,
                        help="images to write (or to use from --root)")
    parser.add_argument("--size", type=int, nargs=2, default=list(CITYSCAPES_SIZE),
                        metavar=("H", "W"), help="size of the written images (not with --root)")
    parser.add_argument("--crop", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="training crop (default: the config's crop_size, 512 1024; half "
                             "of --size when --size is not 1024 2048)")
    parser.add_argument("--workers", default="1,2",
                        help="comma-separated DataLoader worker counts (0: main process)")
    parser.add_argument("--passes", type=int, default=2,
                        help="timed passes over the images per measurement and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of all measurements (medians are reported)")
    parser.add_argument("--cv2-threads", type=int, default=1,
                        help="cv2.setNumThreads in this process and every worker (-1: keep "
                             "OpenCV's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the written scenes")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="append the results as Markdown tables to this file")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="extra Hydra overrides of the train config")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    except ValueError:
        parser.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    if not args.workers or min(args.workers) < 0:
        parser.error("--workers needs at least one count, each >= 0")
    if args.num_images < 1 or args.passes < 1 or args.rounds < 1:
        parser.error("--num-images, --passes and --rounds must be >= 1")
    if min(args.size) < 32:
        parser.error(f"--size must be >= 32 px each, got {args.size}")
    if args.crop is not None and min(args.crop) < 1:
        parser.error(f"--crop must be >= 1 px each, got {args.crop}")
    if args.crop is None and tuple(args.size) != CITYSCAPES_SIZE and args.root is None:
        args.crop = [max(32, args.size[0] // 2), max(32, args.size[1] // 2)]
    return args


def main(argv: list[str] | None = None) -> None:
    import cv2

    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        run_benchmark(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        torch.set_num_threads(threads[0])  # when called in-process (tests)
        cv2.setNumThreads(threads[1])


def run_benchmark(args: argparse.Namespace, tmp: Path) -> None:
    if args.root is None:
        print(f"writing {args.num_images} synthetic {args.size[0]}x{args.size[1]} scenes "
              f"(Cityscapes layout) to {tmp} ...", flush=True)
        tree = write_cityscapes_tree(tmp / "cityscapes", args.num_images, tuple(args.size),
                                     args.seed)
        root = tree.root
        data = (f"{tree.num_images} synthetic {args.size[0]}x{args.size[1]} scenes, PNG "
                f"{tree.image_mb:.2f} MB/image + labelIds {tree.mask_kb:.0f} KB/mask "
                f"(written in {tree.seconds:.0f} s)")
    else:
        root = args.root
        data = f"Cityscapes tree {root}"
    overrides = ["dataset=cityscapes", f"dataset.root={root}"]
    if args.crop is not None:
        overrides.append(f"dataset.crop_size=[{args.crop[0]},{args.crop[1]}]")
    cfg = compose_config([*overrides, *args.overrides], tmp / "run")
    limit_threads(args.cv2_threads)
    dataset = make_dataset(cfg, args.num_images)
    if args.root is not None:
        data += f", first {len(dataset)} train images"
    crop, (lo, hi) = tuple(cfg.dataset.crop_size), tuple(cfg.dataset.scale_range)
    import cv2

    setup = (f"{data}; {type(dataset).__name__}(mask_type={dataset.mask_type}) + the "
             f"dataset=cityscapes train_transform ({crop[0]}x{crop[1]} crops, "
             f"scale x{lo:g}-x{hi:g}, flip, colour jitter, normalise); {args.rounds} "
             f"interleaved rounds of {args.passes} timed passes per measurement, median images/s; "
             f"cv2 threads {cv2.getNumThreads()}, torch threads 1")
    if args.overrides:
        setup += f"; overrides: {' '.join(args.overrides)}"
    print(f"torch {torch.__version__} | cpu: {device_name(torch.device('cpu'))} | "
          f"{os.cpu_count()} cores\n{setup}", flush=True)
    print(f"loadavg before: {loadavg()}", flush=True)

    monitor = ChildrenLoadMonitor()
    single = Series("single process (dataset[i])", 0)
    loaders = {w: Series("", w) for w in args.workers}
    for r in range(args.rounds):
        single.rounds.append(single_process(dataset, args.passes))
        line = [f"single process {single.rounds[-1].images_per_s:.2f}"]
        for workers, series in loaders.items():
            res = data_loader(dataset, workers, args.passes, args.cv2_threads)
            series.name = res.name
            series.rounds.append(res)
            line.append(f"{workers} workers {res.images_per_s:.2f}")
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(line) + " images/s", flush=True)
    results = [single, *loaders.values()]
    load = load_note(monitor.other_load_pct())

    rows, brows = table_rows(results), breakdown_rows(single)
    conclusion = verdict(results)
    print()
    print(format_text("Cityscapes train pipeline throughput", rows, HEADER))
    print()
    print(format_text("single-process breakdown (median over rounds)", brows,
                      BREAKDOWN_HEADER))
    print(conclusion)
    print(f"\n{load}", flush=True)

    if args.markdown is not None:
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        text = [
            "",
            f"`{command_line()}` | {now} | torch {torch.__version__} | cpu: "
            f"{device_name(torch.device('cpu'))} | {os.cpu_count()} cores",
            "",
            f"{setup}; {load}.",
            "",
            format_markdown(rows, HEADER),
            "",
            format_markdown(brows, BREAKDOWN_HEADER),
            "",
            conclusion + ".",
        ]
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(text) + "\n")
        print(f"\nappended Markdown to {args.markdown}")


if __name__ == "__main__":
    main()
