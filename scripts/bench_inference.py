"""Time inference at Cityscapes size: whole image vs sliding window (vs TTA).

``segohem.infer.core.predict_scores`` on one image (default 1x3x1024x2048) with the train
config's model, under ``torch.inference_mode``: ``whole``, ``slide`` (``--crop`` windows every
``--stride``; default mmsegmentation's Cityscapes 512x1024 / 341x683), ``whole + flip`` and with
``--tta`` 6 scales x flip. Time: ``torch.utils.benchmark`` in interleaved rounds; FLOPs:
``FlopCounterMode``; peak memory: CUDA's max allocated, on CPU the growth of the peak RSS over
the variant's first call (an upper bound: the allocator keeps freed memory).

    python scripts/bench_inference.py [--device cpu|cuda] [--repeats 5] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import resource
from functools import partial

import torch
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from segohem.config.compose import compose_config
from segohem.infer.core import InferenceConfig, predict_scores
from segohem.report.bench import BackgroundLoad, interleaved, iqr_pct, parse_args, report, table


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"))
    parser.add_argument("--crop", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--stride", type=int, nargs=2, default=[341, 683])
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--tta", action="store_true", help="also 6 scales x flip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides (model)")
    args = parse_args(parser, argv)
    device = args.device
    cfg = compose_config("train", [f"dataset.num_classes={args.classes}", *args.overrides])
    model = instantiate(cfg.model).eval().to(device)
    images = torch.randn(1, 3, *args.size, device=device)
    (ch, cw), (sh, sw) = args.crop, args.stride
    variants = {"whole": InferenceConfig("whole"),
                f"slide {ch}x{cw} / {sh}x{sw}": InferenceConfig(
                    "slide", crop_size=(ch, cw), stride=(sh, sw)),
                "whole + flip": InferenceConfig("whole", flip=True)}
    if args.tta:
        variants["whole, 6 scales x flip"] = InferenceConfig(
            "whole", scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75], flip=True)

    load = BackgroundLoad()
    memory, flops = {}, {}
    with torch.inference_mode():
        for name, config in variants.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            before = peak_memory_mb(device) if device.type == "cpu" else \
                torch.cuda.memory_allocated(device) / 2**20
            with FlopCounterMode(display=False) as counter:
                predict_scores(model, images, config)
            memory[name], flops[name] = peak_memory_mb(device) - before, \
                counter.get_total_flops()
        times = interleaved({name: partial(predict_scores, model, images, config)
                             for name, config in variants.items()}, args.repeats)
    rows = [{"variant": name, "s/image": f"{m.median:.3f}", "images/s": f"{1 / m.median:.2f}",
             "IQR %": f"{iqr_pct(m):.0f}", "GFLOPs": f"{flops[name] / 1e9:.3g}",
             "peak memory MB": f"{memory[name]:.0f}"} for name, m in times.items()]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    setup = (f"model {type(model).__name__} ({params:.2f} M params, {args.classes} classes), "
             f"image 1x3x{args.size[0]}x{args.size[1]}, median of {args.repeats} interleaved "
             f"rounds (torch.utils.benchmark, 1 warm-up call each); memory: "
             f"{'CUDA max allocated' if device.type == 'cuda' else 'growth of peak RSS'}; "
             f"{load.note()}")
    report(device, setup, [table(rows)], "", args.markdown)


if __name__ == "__main__":
    main()
