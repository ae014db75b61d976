"""The stages of ``scripts/gpu_check.sh`` (run by it, with the throwaway environment's
interpreter): each a subprocess under its own time limit, outside the checkout so that
``segohem`` is the installed wheel; results into ``--out``: ``gpu_report.md``,
``gpu_check.json`` and ``stages.log`` (every stage's output).

Stages (GPU sizes; ``--dry-run``: CPU, tiny sizes, the same stages and report):

a. ``pytest -m gpu``: every shipped loss config sync-free in fp32 / fp16 / bf16, the metric's
   update, a ``16-mixed`` step with the skipped-step counter, deterministic mode;
b. ``bench_loss.py`` at 8 x 19 x 512 x 1024: each loss against ``F.cross_entropy``;
c. ``segohem-train`` (the quick start) with ``trainer=gpu`` and ``bf16-mixed``, ``16-mixed``,
   then ``compile=true``: wall time, steps/s, mIoU;
d. ``bench_train.py --breakdown``, DeepLabV3+ / ResNet-50, batch 8, 512 x 1024;
e. ``bench_inference.py`` at 1024 x 2048: whole image, sliding window, flip TTA.

Time on one H100: about 5 minutes expected (docs/benchmarks.md, "GPU", has the estimate per
stage); each stage's limit below caps a hang, and the limits with the install's (90 s) add
up to 8.7 minutes, under the call's 9.5 (timeout_s=570).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

GPU_TESTS = ("tests/losses/test_sync_free.py", "tests/test_metrics.py",
             "tests/train/callbacks/test_amp.py")
"""The test files with ``gpu`` tests (collected alone: the others' extras are not installed)."""


@dataclass
class Stage:
    name: str
    command: list[str]
    limit_s: int
    rc: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    markdown: str = ""
    figures: dict = field(default_factory=dict)


def stages(py: str, repo: Path, work: Path, dry: bool) -> list[Stage]:
    """The stage commands, GPU or dry-run sizes."""
    scripts = repo / "scripts"
    device = "cpu" if dry else "cuda"
    md = {name: work / f"{name}.md" for name in ("loss", "train_step", "inference")}
    loss = ["--batch", "1", "--height", "64", "--width", "128", "--rounds", "3"] if dry else \
        ["--batch", "8", "--height", "512", "--width", "1024", "--rounds", "7"]
    step = (["--batch", "2", "--height", "64", "--width", "64", "--steps", "3", "--warmup", "1",
             "--rounds", "3", "--num-batches", "2"] if dry else
            ["--batch", "8", "--height", "512", "--width", "1024", "--steps", "15",
             "--warmup", "3", "--rounds", "3", "--num-batches", "4", "--breakdown",
             "--overrides", "model=deeplabv3plus", "model.encoder_name=resnet50"])
    infer = (["--size", "128", "256", "--crop", "64", "128", "--stride", "43", "86",
              "--repeats", "1", "--tta"] if dry else ["--size", "1024", "2048", "--repeats", "3",
                                                      "--tta"])
    tiny = (["dataset.image_size=[64,64]", "dataset.train_set.num_samples=16",
             "dataset.val_set.num_samples=4", "trainer.max_epochs=1"] if dry else [])
    trainer = ["trainer=cpu"] if dry else ["trainer=gpu"]
    train = [py, "-m", "segohem.cli.train", *trainer, "trainer.enable_progress_bar=false", *tiny]
    runs = [("train_bf16", ["trainer.precision=bf16-mixed"], 60),
            ("train_fp16", ["trainer.precision=16-mixed"], 60),
            ("train_compile", ["trainer.precision=bf16-mixed", "compile=true"], 90)]
    if dry:  # the CPU: 32-true, and one compiled run of a shallow model proves the stage
        runs = [("train_fp32", [], 60),
                ("train_compile", ["compile=true", "model.encoder_name=resnet18",
                                   "model.encoder_depth=3", "model.decoder_channels=[32,16,8]"],
                 240)]  # Inductor's CPU compile: ~60 s idle, 90+ s on a loaded 2-core CI
    return [
        Stage("pytest_gpu", [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:xdist",
                             "-o", "addopts=-ra --strict-markers", "-p", "no:cacheprovider",
                             *GPU_TESTS], 70),
        Stage("bench_loss", [py, str(scripts / "bench_loss.py"), "--device", device, *loss,
                             "--markdown", str(md["loss"])], 40 if not dry else 60),
        *[Stage(name, [*train, *extra, f"hydra.run.dir={work / name}"], limit)
          for name, extra, limit in runs],
        Stage("bench_train", [py, str(scripts / "bench_train.py"), "--device", device, *step,
                              "--markdown", str(md["train_step"])], 70 if not dry else 60),
        Stage("bench_inference", [py, str(scripts / "bench_inference.py"), "--device", device,
                                  *infer, "--markdown", str(md["inference"])], 40),
    ]


def run(stage: Stage, cwd: Path, log: Path) -> None:
    """Run ``stage`` in ``cwd`` under its limit; append its output to ``log``."""
    start = time.monotonic()
    with log.open("a") as fh:
        fh.write(f"\n===== {stage.name}: {' '.join(stage.command)} (limit {stage.limit_s} s)\n")
        fh.flush()
        try:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            done = subprocess.run(stage.command, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=stage.limit_s, env=env)
            stage.rc = done.returncode
        except subprocess.TimeoutExpired:
            stage.timed_out, stage.rc = True, None
            fh.write(f"\n===== {stage.name}: TIMED OUT after {stage.limit_s} s\n")
    stage.seconds = round(time.monotonic() - start, 1)


def train_figures(run_dir: Path) -> dict:
    """Best mIoU, steps, fit seconds and steps/s of a ``segohem-train`` run directory."""
    metrics = run_dir / "metrics.json"
    status = run_dir / "status.json"
    if not metrics.is_file():
        return {}
    data = json.loads(metrics.read_text())
    out = {"mIoU_best": data.get("best", {}).get("mIoU"), "steps": data.get("last", {}).get("step")}
    if status.is_file():
        st = json.loads(status.read_text())
        if st.get("started") and st.get("ended"):
            from datetime import datetime

            secs = (datetime.fromisoformat(st["ended"]) - datetime.fromisoformat(st["started"])
                    ).total_seconds()
            out["wall_s"] = secs
            if out["steps"]:
                out["steps_per_s"] = round(out["steps"] / secs, 2) if secs else None
    return out


def report(stages_: list[Stage], out: Path, dry: bool, meta: dict) -> str:
    """``gpu_report.md``: a summary table, then each benchmark's Markdown."""
    lines = [f"# segohem GPU check{' (CPU dry run)' if dry else ''}", "",
             f"{meta['when']} | segohem from `{meta['segohem_file']}` | torch {meta['torch']} | "
             f"{meta['device']}", "",
             "| stage | rc | seconds (limit) | figures |", "|---|---:|---:|---|"]
    for s in stages_:
        status = "TIMEOUT" if s.timed_out else str(s.rc)
        figures = ", ".join(f"{k} {v}" for k, v in s.figures.items()) or "-"
        lines.append(f"| {s.name} | {status} | {s.seconds} ({s.limit_s}) | {figures} |")
    for s in stages_:
        if s.markdown:
            lines += ["", f"## {s.name}", "", s.markdown.strip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--python", required=True, help="the interpreter with the wheel")
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--install-log", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    out, work = args.out, args.work
    out.mkdir(parents=True, exist_ok=True)
    log = out / "stages.log"
    log.write_text(args.install_log.read_text() if args.install_log and
                   args.install_log.is_file() else "")
    # The tests and their configs, outside the checkout: `import segohem` finds the wheel.
    cwd = work / "checkout"
    cwd.mkdir(exist_ok=True)
    for name in ("tests", "conf", "scripts", "docs", "notebooks"):
        shutil.copytree(args.repo / name, cwd / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(args.repo / name, cwd / name)
    probe = subprocess.run([args.python, "-c", (
        "import segohem, torch, datetime; d = torch.cuda.get_device_name(0) if "
        "torch.cuda.is_available() else 'cpu'; print(segohem.__file__); print(torch.__version__);"
        " print(d); print(datetime.datetime.now().astimezone().isoformat(timespec='seconds'))")],
        cwd=cwd, capture_output=True, text=True, check=True).stdout.split("\n")
    meta = {"segohem_file": probe[0], "torch": probe[1], "device": probe[2], "when": probe[3]}
    if str(args.repo.resolve()) in str(Path(meta["segohem_file"]).resolve()):
        raise SystemExit(f"segohem imports from the checkout ({meta['segohem_file']}), "
                         "not from the installed wheel")
    plan = stages(args.python, args.repo, work, args.dry_run)
    for stage in plan:
        run(stage, cwd, log)
        md = {"bench_loss": "loss", "bench_train": "train_step",
              "bench_inference": "inference"}.get(stage.name)
        if md and (work / f"{md}.md").is_file():
            stage.markdown = (work / f"{md}.md").read_text()
        if stage.name.startswith("train_"):
            stage.figures = train_figures(work / stage.name)
        print(f"{stage.name}: rc {stage.rc}{' TIMEOUT' if stage.timed_out else ''} "
              f"in {stage.seconds} s", flush=True)
    (out / "gpu_report.md").write_text(report(plan, out, args.dry_run, meta))
    (out / "gpu_check.json").write_text(json.dumps(
        {"dry_run": args.dry_run, **meta, "stages": [asdict(s) for s in plan]}, indent=2))
    failed = [s.name for s in plan if s.rc != 0]
    print(f"report: {out / 'gpu_report.md'}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
