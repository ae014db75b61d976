"""The benchmark scripts (scripts/bench_*.py, on segohem.report.bench) run as their commands
on tiny sizes: every table row is there and the numbers hold together (baselines at 1.00, parts
inside the step, shares adding up, flip = 2 x the FLOPs of one pass), and the Markdown is
appended to the file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run(script: str, *args: str, markdown: Path) -> list[list[dict[str, str]]]:
    """Run ``scripts/<script>.py`` with ``args``; the Markdown tables it appended, as rows of
    ``{column: cell}``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPTS / f"{script}.py"), *args, "--markdown",
                           str(markdown)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"appended Markdown to {markdown}" in done.stdout
    tables, rows = [], []
    for line in [*markdown.read_text().splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        elif rows:
            tables.append([dict(zip(rows[0], row, strict=True)) for row in rows[2:]])
            rows = []
    assert markdown.read_text().startswith(f"\n`{sys.executable} ")  # the command line
    return tables


def test_bench_loss(tmp_path: Path) -> None:
    multi, binary = run("bench_loss", "--device", "cpu", "--height", "16", "--width", "32",
                        "--rounds", "3", "--threads", "1", markdown=tmp_path / "b.md")
    by_loss = {row["loss"].strip("`"): row for row in multi}
    assert list(by_loss)[:3] == ["ce", "CrossEntropyLoss()", "OhemCELoss(0.7)"]
    assert {"bisenet-style (re-impl.)", "mmseg-style (re-impl.)",
            "MinorityRectificationLoss(OHEM) [loss=ohem_crl]"} <= set(by_loss)
    assert by_loss["ce"]["x ce"] == by_loss["CrossEntropyLoss()"]["x CrossEntropyLoss()"] == "1.00"
    for row in multi:  # both ratios come from the same medians
        ratio = float(row["median ms"]) / float(by_loss["ce"]["median ms"])
        assert float(row["x ce"]) == pytest.approx(ratio, rel=0.05, abs=0.02)
        assert row["peak extra MiB"] == "n/a"  # CUDA only
    assert (binary[0]["loss"], binary[0]["x bce"]) == ("`bce`", "1.00")


@pytest.mark.slow
@pytest.mark.parametrize("breakdown", [False, True], ids=["overhead", "breakdown"])
def test_bench_train(tmp_path: Path, breakdown: bool) -> None:
    (table,) = run("bench_train", "--device", "cpu", "--image-size", "32", "--batch", "2",
                   "--num-batches", "2", "--steps", "3", "--warmup", "1", "--rounds", "3",
                   "--threads", "1", *(["--breakdown"] if breakdown else []),
                   markdown=tmp_path / "t.md")
    rows = {row["variant"]: row for row in table}
    assert list(rows) == ["hand-written", "segohem (TensorBoard)", "segohem (logger=False)"]
    assert all(float(row["median ms/step"]) > 0 for row in table)
    if not breakdown:
        assert rows["hand-written"]["overhead %"] == "-"
        base = float(rows["hand-written"]["median ms/step"])
        tb = rows["segohem (TensorBoard)"]
        assert float(tb["overhead %"]) == pytest.approx(
            100 * (float(tb["median ms/step"]) / base - 1), abs=0.1)
        return
    for row in table:  # every part measured, and together inside the step (the closure's
        parts = [float(row[f"{p} ms"]) for p in ("forward", "loss", "backward", "optimizer")]
        assert min(parts) > 0, row  # time in Lightning's closure is not optimizer time)
        host = float(row["host outside compute ms"])
        assert host > 0 and sum(parts) + host == pytest.approx(
            float(row["median ms/step"]), rel=0.5), row
    assert rows["hand-written"]["added host ms"] == "-"
    base_host = float(rows["hand-written"]["host outside compute ms"])
    for name in ("segohem (TensorBoard)", "segohem (logger=False)"):
        added = float(rows[name]["added host ms"])
        assert added == pytest.approx(float(rows[name]["host outside compute ms"]) - base_host,
                                      abs=0.02)


def test_bench_data(tmp_path: Path) -> None:
    loaders, steps = run("bench_data", "--size", "64", "128", "--num-images", "2",
                         "--workers", "0", "--rounds", "2", "--passes", "1",
                         markdown=tmp_path / "d.md")
    assert [row["pipeline"] for row in loaders] == [
        "single process (dataset[i])", "DataLoader, 0 workers (main process)"]
    for row in loaders:
        rate = float(row["images/s per worker"])
        # both cells are rounded (ms to 0.1, images/s to 0.01): under 1 ms/image the 0.05 ms
        # of the rounding alone exceeds 5 %
        assert float(row["ms/image per worker"]) == pytest.approx(1e3 / rate, rel=0.05,
                                                                   abs=0.051)
    shares = {row["step of dataset[i]"]: float(row["% of dataset[i]"].rstrip("%"))
              for row in steps}
    assert list(shares)[:4] == ["image decode", "mask decode", "label mapping", "transform"]
    assert min(list(shares.values())[:4]) > 0  # each step found in the profile
    assert sum(list(shares.values())[:5]) == pytest.approx(100, abs=3)
    assert shares["total dataset[i]"] == 100
    # The verdict: the per-worker rate of a table row, times the workers, against the bar.
    verdict = re.search(r"(\d+) workers ~ (\d+) images/s if cores scale \(([\d.]+) images/s "
                        r"per worker, from '([^']+)'\): (meets|MISSES) the bar of ([\d.]+) "
                        r"images/s", (tmp_path / "d.md").read_text())
    assert verdict, (tmp_path / "d.md").read_text()
    workers, projected, rate = int(verdict[1]), int(verdict[2]), float(verdict[3])
    source, meets, bar = verdict[4], verdict[5] == "meets", float(verdict[6])
    rows = {row["pipeline"]: row for row in loaders}
    assert float(rows[source]["images/s per worker"]) == pytest.approx(rate, abs=0.011)
    assert projected == pytest.approx(workers * rate, abs=1)
    if abs(workers * rate - bar) > 1:  # clear of the rounding
        assert meets == (workers * rate >= bar)


def test_bench_inference(tmp_path: Path) -> None:
    (table,) = run("bench_inference", "--device", "cpu", "--size", "128", "256", "--crop",
                   "64", "128", "--stride", "64", "128", "--repeats", "2", "--threads", "1",
                   markdown=tmp_path / "i.md")
    rows = {row["variant"]: row for row in table}
    assert list(rows) == ["whole", "slide 64x128 / 64x128", "whole + flip"]
    whole = float(rows["whole"]["GFLOPs"])
    assert whole > 0 and float(rows["whole + flip"]["GFLOPs"]) == pytest.approx(2 * whole,
                                                                             rel=0.01)
    assert float(rows["slide 64x128 / 64x128"]["GFLOPs"]) == pytest.approx(whole, rel=0.05)
    for row in table:
        assert float(row["images/s"]) == pytest.approx(1 / float(row["s/image"]), rel=0.05)
