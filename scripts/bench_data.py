"""Time the Cityscapes train data pipeline: images/s per DataLoader worker.

``dataset[i]`` of the ``dataset=cityscapes`` train set (PNG decode, labelId -> trainId, checks,
the train transform) in this process (``torch.utils.benchmark``, 2 warm-up passes) and through
``DataLoader(batch_size=1, num_workers=N)`` with segohem's worker seeding (from the last of
``max(2, 2N)`` warm-up items to the last item), alternating in ``--rounds`` rounds; OpenCV
``--cv2-threads`` and torch 1 thread per process, so "per worker" means "per core". The steps of
``dataset[i]`` are their shares of a pass under ``cProfile``. The verdict extrapolates the most
workers that fit the cores to 8, against 25 images/s. Data: ``--num-images`` street-like
1024x2048 scenes in the Cityscapes layout (PNG ~2.4 MB/image, real labelIds), or ``--root``.

    python scripts/bench_data.py [--workers 1,2] [--root DIR] [--markdown FILE]
    python scripts/bench_data.py --size 128 256 --num-images 2 --workers 0   # a quick run
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from bench_common import BackgroundLoad, iqr_pct, measurement, report, table
from hydra.utils import instantiate
from PIL import Image
from torch.utils.benchmark import Timer
from torch.utils.data import DataLoader

from segohem.config.compose import compose_config
from segohem.data.datamodule import seed_worker_transform
from segohem.data.geometry import resolve_auto_geometry

BAR, BAR_WORKERS = 25.0, 8  # images/s with 8 workers
# labelId -> base RGB colour of the synthetic scenes (roughly what the class looks like).
COLOURS = {1: (20, 20, 25), 3: (0, 0, 0), 4: (110, 90, 80), 7: (110, 105, 110),
           8: (165, 155, 150), 9: (140, 120, 125), 11: (150, 130, 115), 12: (170, 165, 150),
           13: (120, 110, 95), 17: (90, 90, 95), 19: (40, 40, 35), 20: (200, 190, 60),
           21: (70, 105, 45), 22: (140, 150, 90), 23: (170, 200, 230), 24: (90, 60, 70),
           26: (60, 70, 120), 33: (130, 30, 40)}


def make_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A street-like uint8 RGB image (h, w, 3) and its uint8 Cityscapes labelIds (h, w): sky,
    buildings, walls, trees, road, sidewalk, poles, signs, cars, people, ego vehicle, border."""
    inst = np.zeros((h, w), np.uint16)  # instance id; 0 = sky
    ids, colours = [23], [np.array(COLOURS[23], np.float32)]

    def new(label: int) -> int:
        ids.append(label)
        jitter = rng.uniform(-25, 25, 3) + rng.uniform(-20, 20)
        colours.append(np.clip(np.array(COLOURS[label], np.float32) + jitter, 0, 255))
        return len(ids) - 1

    def s(v: float) -> int:  # fraction of the width -> px
        return max(1, round(v * w))

    def field(cells: tuple[int, int]) -> np.ndarray:  # smooth random field in ~[-1, 1]
        grid = rng.uniform(-1, 1, cells).astype(np.float32)
        return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)

    horizon, x = int(h * rng.uniform(0.4, 0.5)), 0
    while x < w:  # buildings along the skyline, with windows
        bw = s(rng.uniform(0.05, 0.2))
        cv2.rectangle(inst, (x, int(h * rng.uniform(0.02, 0.3))), (x + bw, horizon), new(11), -1)
        for _ in range(int(rng.integers(0, 12))):
            wx, wy = x + int(rng.uniform(0, bw)), int(h * rng.uniform(0.1, 0.4))
            cv2.rectangle(inst, (wx, wy), (wx + s(0.008), wy + s(0.01)), new(11), -1)
        x += bw
    for _ in range(int(rng.integers(1, 4))):  # walls, fences
        x0 = s(rng.uniform(0, 0.9))
        cv2.rectangle(inst, (x0, horizon - s(rng.uniform(0.01, 0.03))), (
            x0 + s(rng.uniform(0.05, 0.2)), horizon), new(int(rng.choice([12, 13]))), -1)
    for _ in range(int(rng.integers(2, 7))):  # trees
        c = (s(rng.uniform(0, 1)), int(horizon - h * rng.uniform(0.05, 0.3)))
        axes = (s(rng.uniform(0.03, 0.1)), s(rng.uniform(0.03, 0.08)))
        cv2.ellipse(inst, c, axes, float(rng.uniform(0, 180)), 0, 360, new(21), -1)
    cv2.rectangle(inst, (0, horizon), (w, h), new(8), -1)  # sidewalk, terrain, road
    for side in (0, 1):
        x0 = 0 if side == 0 else w - s(0.15)
        cv2.rectangle(inst, (x0, horizon), (x0 + s(rng.uniform(0.05, 0.15)), horizon + s(0.03)),
                      new(22), -1)
    vx = w * rng.uniform(0.4, 0.6)
    road = np.array([[vx - w * 0.05, horizon], [vx + w * 0.05, horizon],
                     [w * rng.uniform(0.85, 1.1), h], [w * rng.uniform(-0.1, 0.15), h]], np.int32)
    cv2.fillPoly(inst, [road], new(7))
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = s(rng.uniform(0, 0.9)), int(h * rng.uniform(0.55, 0.8))
        cv2.rectangle(inst, (x0, y0), (x0 + s(0.06), y0 + s(0.02)), new(int(rng.choice([4, 9]))),
                      -1)
    for _ in range(int(rng.integers(2, 8))):  # poles with signs / lights
        x0 = s(rng.uniform(0, 1))
        top, bottom = int(h * rng.uniform(0.1, 0.35)), int(h * rng.uniform(0.5, 0.7))
        cv2.rectangle(inst, (x0, top), (x0 + s(rng.uniform(0.002, 0.006)), bottom), new(17), -1)
        if rng.random() < 0.6:
            cv2.rectangle(inst, (x0 - s(0.01), top), (x0 + s(0.012), top + s(0.02)),
                          new(int(rng.choice([19, 20]))), -1)
    for _ in range(int(rng.integers(2, 10))):  # cars, bigger when lower in the image
        y = rng.uniform(0.0, 1.0)
        size, y0, x0 = 0.03 + 0.15 * y, int(horizon + (h - horizon) * 0.6 * y), s(
            rng.uniform(-0.05, 1.0))
        cw, ch, car = s(size), s(size * 0.45), new(26)
        cv2.rectangle(inst, (x0, y0 - ch), (x0 + cw, y0), car, -1)
        cv2.ellipse(inst, (x0 + cw // 2, y0 - ch), (cw // 3, ch // 2), 0, 180, 360, car, -1)
        for wx in (x0 + cw // 5, x0 + 4 * cw // 5):  # wheels: dark, same class
            cv2.circle(inst, (wx, y0), max(1, ch // 4), new(26), -1)
    for _ in range(int(rng.integers(0, 8))):  # people, riders
        y = rng.uniform(0.0, 1.0)
        ph = s(0.02 + 0.1 * y)
        x0, y0 = s(rng.uniform(0, 1)), int(horizon + (h - horizon) * 0.5 * y)
        label = 24 if rng.random() < 0.8 else 33
        cv2.ellipse(inst, (x0, y0 - ph // 2), (max(1, ph // 6), ph // 2), 0, 0, 360, new(label),
                    -1)
        cv2.circle(inst, (x0, y0 - ph - ph // 10), max(1, ph // 10), new(label), -1)
    ego = int(h * rng.uniform(0.03, 0.08))  # ego vehicle, out-of-ROI border
    cv2.ellipse(inst, (w // 2, h + ego), (int(w * 0.7), 2 * ego), 0, 180, 360, new(1), -1)
    border, b = new(3), max(1, h // 200)
    inst[:b], inst[-b:], inst[:, :b], inst[:, -b:] = border, border, border, border

    image = np.stack(colours)[inst] * (1.0 + 0.18 * field((6, 12)) + 0.06 * field((48, 96))
                                       )[..., None]
    image = cv2.GaussianBlur(image, (3, 3), 0)  # soft object edges, like optics
    image += 3.0 * field((h // 8, w // 8))[..., None]  # fine texture
    image += rng.standard_normal(image.shape, dtype=np.float32) * 1.0  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), np.array(ids, np.uint8)[inst]


def write_tree(root: Path, num: int, size: tuple[int, int]) -> str:
    """``num`` scenes in the Cityscapes train layout under ``root``; describes the files."""
    def one(i: int) -> tuple[int, int]:
        city = ("aachen", "bochum", "bremen")[i % 3]
        paths = [root / top / "train" / city / f"{city}_{i:06d}_000019_{kind}.png"
                 for top, kind in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds"))]
        for path, array in zip(paths, make_scene(np.random.default_rng([0, i]), *size),
                               strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
        return paths[0].stat().st_size, paths[1].stat().st_size

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        image_b, mask_b = np.mean(list(pool.map(one, range(num))), axis=0)
    return (f"{num} synthetic {size[0]}x{size[1]} street scenes, PNG {image_b / 1e6:.2f} "
            f"MB/image + labelIds {mask_b / 1e3:.0f} KB/mask")


def init_worker(cv2_threads: int, worker_id: int | None = None) -> None:
    """Thread limits (after segohem's seeding in a DataLoader worker ``worker_id``)."""
    if worker_id is not None:
        seed_worker_transform(worker_id)
    torch.set_num_threads(1)
    if cv2_threads >= 0:
        cv2.setNumThreads(cv2_threads)


def loader_seconds(dataset: Any, workers: int, passes: int, cv2_threads: int) -> float:
    """Seconds from the last warm-up item of a DataLoader to its last item."""
    warmup, n = max(2, 2 * workers), len(dataset)
    indices = [i % n for i in range(warmup)] + list(range(n)) * passes
    loader = DataLoader(dataset, batch_size=1, sampler=indices, num_workers=workers,
                        worker_init_fn=partial(init_worker, cv2_threads) if workers else None)
    for k, _batch in enumerate(loader):
        if k == warmup - 1:
            start = time.perf_counter()
    return time.perf_counter() - start


def step_shares(dataset: Any) -> dict[str, float]:
    """Share of each step in ``dataset[i]`` over one pass under ``cProfile``."""
    getitem = type(dataset).__getitem__  # the decoders are the functions it calls by name
    steps = {"image decode": getitem.__globals__.get("read_image"),
             "mask decode": getitem.__globals__.get("read_mask"),
             "label mapping": getattr(type(dataset), "_decode_mask", None),
             "transform": type(dataset.transform).__call__ if dataset.transform else None}
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [dataset[i] for i in range(len(dataset))])
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, self, cumulative, _)

    def seconds(fn: Any) -> float:
        code = getattr(fn, "__code__", None)
        key = code and (code.co_filename, code.co_firstlineno, code.co_name)
        return stats[key][3] if key in stats else float("nan")

    total = seconds(getitem)
    shares = {name: seconds(fn) / total for name, fn in steps.items()}
    return shares | {"rest (checks, casts, tensors)": 1 - np.nansum(list(shares.values()))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, help="a Cityscapes tree (default: synthetic)")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"))
    parser.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"),
                        help="training crop (default: the config's; half of --size if smaller)")
    parser.add_argument("--workers", default="1,2", help="DataLoader worker counts (0: main)")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cv2-threads", type=int, default=1, help="-1: OpenCV's default")
    parser.add_argument("--markdown", type=Path, default=None, help="append the tables here")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if not workers or min(workers) < 0 or min(args.num_images, args.passes, args.rounds) < 1:
        parser.error("needs worker counts >= 0 and --num-images, --passes, --rounds >= 1")
    crop = args.crop or ([max(32, args.size[0] // 2), max(32, args.size[1] // 2)]
                         if args.size != [1024, 2048] and args.root is None else None)
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    root = args.root or tmp / "cityscapes"
    data = (f"Cityscapes tree {root}" if args.root else
            write_tree(root, args.num_images, tuple(args.size)))
    cfg = compose_config("train", ["dataset=cityscapes", f"dataset.root={root}",
                                   *([f"dataset.crop_size=[{crop[0]},{crop[1]}]"] if crop
                                     else []), *args.overrides], tmp)
    resolve_auto_geometry(cfg.dataset)
    dataset = instantiate(cfg.dataset.train_set)
    dataset.samples = dataset.samples[:args.num_images]
    init_worker(args.cv2_threads)
    setup = (f"{data}; {type(dataset).__name__} + the dataset=cityscapes train_transform "
             f"({'x'.join(map(str, cfg.dataset.crop_size))} crops); {args.rounds} interleaved "
             f"rounds of {args.passes} timed passes per measurement; cv2 threads "
             f"{cv2.getNumThreads()}, torch threads 1; {os.cpu_count()} cores")
    print(setup, flush=True)

    names = {0: "single process (dataset[i])"} | {
        w + 1: f"DataLoader, {w} worker{'s' * (w != 1)}" + (" (main process)" if w == 0 else "")
        for w in workers}  # key: workers + 1
    seconds: dict[int, list[float]] = {k: [] for k in names}
    single = Timer("for i in range(len(dataset)): dataset[i]", globals={"dataset": dataset},
                   num_threads=1)
    load = BackgroundLoad()
    for r in range(args.rounds):
        seconds[0].append(single.timeit(args.passes).raw_times[0])
        for w in workers:
            seconds[w + 1].append(loader_seconds(dataset, w, args.passes, args.cv2_threads))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{names[k]} {args.passes * len(dataset) / s[-1]:.2f}" for k, s in seconds.items())
            + " images/s", flush=True)
    shares = step_shares(dataset)
    note = load.note()

    per_image = {k: measurement(names[k], s, args.passes * len(dataset))
                 for k, s in seconds.items()}
    rate = {k: 1 / m.median / max(k - 1, 1) for k, m in per_image.items()}  # per worker
    rows = [{"pipeline": names[k], "images/s": f"{1 / m.median:.2f}",
             "images/s per worker": f"{rate[k]:.2f}", "ms/image per worker": f"{1e3 / rate[k]:.1f}",
             "IQR %": f"{iqr_pct(m):.0f}",
             f"{BAR_WORKERS} workers if cores scale": f"~{BAR_WORKERS * rate[k]:.0f} images/s"}
            for k, m in per_image.items()]
    single_ms = 1e3 * per_image[0].median
    steps = [{"step of dataset[i]": name, "ms/image": f"{share * single_ms:.1f}",
              "% of dataset[i]": f"{100 * share:.0f}%"} for name, share in shares.items()]
    steps.append({"step of dataset[i]": "total dataset[i]", "ms/image": f"{single_ms:.1f}",
                  "% of dataset[i]": "100%"})
    fits = [k for k in per_image if 1 < k <= (os.cpu_count() or 1) + 1]
    basis = max(fits) if fits else 0
    projected = BAR_WORKERS * rate[basis]
    verdict = (f"{BAR_WORKERS} workers ~ {projected:.0f} images/s if cores scale "
               f"({rate[basis]:.2f} images/s per worker, from '{names[basis]}'): "
               f"{'meets' if projected >= BAR else 'MISSES'} the bar of {BAR:.0f} images/s per "
               f"{BAR_WORKERS} workers ({BAR / BAR_WORKERS:.2f} per worker)")
    report(torch.device("cpu"), f"{setup}; step shares from cProfile; {note}",
           [table(rows), table(steps)], verdict, args.markdown)


if __name__ == "__main__":
    main()
