"""Time the Cityscapes train data pipeline: images/s per DataLoader worker.

``dataset[i]`` of the ``dataset=cityscapes`` train set (PNG decode, labelId -> trainId, checks,
the train transform) in this process (``torch.utils.benchmark``, 2 warm-up passes) and through
``DataLoader(batch_size=1, num_workers=N)`` with segohem's worker seeding (from the last of
``max(2, 2N)`` warm-up items to the last item), alternating in ``--rounds`` rounds; OpenCV
``--cv2-threads`` and torch 1 thread per process, so "per worker" means "per core". The steps of
``dataset[i]`` are their shares of a pass under ``cProfile``. The verdict extrapolates the most
workers that fit the cores to 8, against 25 images/s. Data: ``--num-images`` street-like
1024x2048 scenes in the Cityscapes layout (PNG ~2.4 MB/image, real labelIds;
``segohem.data.heldout.street``), or ``--root``.

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
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.benchmark import Timer
from torch.utils.data import DataLoader

from segohem.config.compose import compose_config
from segohem.data.datamodule import seed_worker_transform
from segohem.data.geometry import resolve_auto_geometry
from segohem.data.heldout.street import write_cityscapes_tree
from segohem.report.bench import BackgroundLoad, iqr_pct, measurement, report, table

BAR, BAR_WORKERS = 25.0, 8  # images/s with 8 workers


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
            write_cityscapes_tree(root, args.num_images, tuple(args.size)))
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
