"""Benchmark inference at Cityscapes size: whole image vs sliding window (vs TTA).

What is measured
    Images/s, peak memory and FLOPs of :func:`segohem.inference.predict_scores` for one
    ``(1, 3, H, W)`` image (default 1024x2048) with the model of the train config (default:
    Unet / mobilenet_v2, 19 classes; any ``--overrides``), in eval mode under
    ``torch.inference_mode``:

    ``whole``          one forward pass over the (padded) image;
    ``slide``          windows of ``--crop`` every ``--stride`` (default 512x1024, stride
                       341x683: 3 x 3 windows, mmsegmentation's Cityscapes setting);
    ``whole+flip``     whole image and its mirror (2 passes), probabilities averaged;
    optional ``--tta`` the 6-scale x flip TTA (12 passes), slow on a CPU.

    Time: ``--warmup`` untimed calls, then ``--repeats`` timed calls per variant, variants
    interleaved round by round; median seconds per image (CUDA: synchronised). Peak memory:
    ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the growth of the process's peak RSS
    (``ru_maxrss``) over the variant's first call -- a coarse upper bound, since the
    allocator keeps freed memory. FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one
    call (multiply-adds count 2).

How to run
    python scripts/bench_inference.py                          # cuda if available, else cpu
    python scripts/bench_inference.py --device cpu --threads 2 --markdown docs/benchmarks.md
    python scripts/bench_inference.py --size 512 1024 --repeats 3   # quicker
"""

from __future__ import annotations

import argparse
import datetime
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bench_common import LoadMonitor, command_line, device_name, load_note

from segohem.inference import InferenceConfig, predict_scores

Variant = tuple[str, InferenceConfig]


def build_model(overrides: list[str], num_classes: int) -> torch.nn.Module:
    """The train config's model (Hydra compose API) with ``num_classes`` outputs."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module(version_base="1.3", config_module="segohem.conf"):
        cfg = compose("train", overrides=[f"dataset.num_classes={num_classes}", *overrides])
    return instantiate(cfg.model).eval()


def variants(args: argparse.Namespace) -> list[Variant]:
    crop, stride = tuple(args.crop), tuple(args.stride)
    out = [("whole", InferenceConfig("whole")),
           (f"slide {crop[0]}x{crop[1]} / {stride[0]}x{stride[1]}",
            InferenceConfig("slide", crop_size=crop, stride=stride)),
           ("whole + flip", InferenceConfig("whole", flip=True))]
    if args.tta:
        out.append(("whole, 6 scales x flip",
                    InferenceConfig("whole", scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75],
                                    flip=True)))
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(call: Callable[[], torch.Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def flops_of(call: Callable[[], torch.Tensor]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"))
    parser.add_argument("--crop", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--stride", type=int, nargs=2, default=[341, 683])
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--tta", action="store_true", help="also the 12-pass TTA")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides (model)")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build_model(args.overrides, args.classes).to(device)
    images = torch.randn(1, 3, *args.size, device=device)
    runs = variants(args)
    monitor = LoadMonitor()

    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    memory: dict[str, float] = {}
    flops: dict[str, float] = {}
    with torch.inference_mode():
        for name, cfg in runs:
            def call(cfg: InferenceConfig = cfg) -> torch.Tensor:
                return predict_scores(model, images, cfg)

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            else:
                base = peak_rss_mb()
            for _ in range(args.warmup):
                measure(call, device)
            memory[name] = ((torch.cuda.max_memory_allocated(device) - base) / 2**20
                            if device.type == "cuda" else peak_rss_mb() - base)
            flops[name] = flops_of(call)
        for _ in range(args.repeats):
            for name, cfg in runs:
                times[name].append(measure(lambda cfg=cfg: predict_scores(model, images, cfg),
                                           device))
    load = load_note(monitor.other_load_pct())

    header = ("variant", "s/image", "images/s", "GFLOPs", "peak memory MB")
    rows = []
    for name, _ in runs:
        sec = statistics.median(times[name])
        rows.append((name, f"{sec:.3f}", f"{1 / sec:.2f}", f"{flops[name] / 1e9:.0f}",
                     f"{memory[name]:.0f}"))
    n_params = sum(p.numel() for p in model.parameters())
    setup = (f"model {type(model).__name__} ({n_params / 1e6:.2f} M params, {args.classes} "
             f"classes), image 1x3x{args.size[0]}x{args.size[1]}, median of {args.repeats} "
             f"interleaved calls after {args.warmup} warm-up; memory: "
             f"{'CUDA max allocated' if device.type == 'cuda' else 'growth of peak RSS'}")
    title = (f"torch {torch.__version__} | {args.device}: {device_name(device)} | threads: "
             f"{torch.get_num_threads()}")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(title)
    print(setup)
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print(load)
    if args.markdown is not None:
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        lines = ["", f"`{command_line()}` | {now} | {title}", "", f"{setup}; {load}.", "",
                 "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        print(f"appended Markdown to {args.markdown}")


if __name__ == "__main__":
    main()
