"""scripts/gpu_check.sh --dry-run: the GPU proof's stages on the CPU at tiny sizes, from
segohem's built wheel in a throwaway environment, so the script works when a device is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_passes_every_stage_from_the_wheel(tmp_path):
    bin_dir = str(Path(sys.executable).parent)  # python3 = this environment's interpreter
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:] + (
        (tmp_path / "stages.log").read_text()[-3000:] if (tmp_path / "stages.log").exists()
        else "")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["gpu_check.json", "gpu_report.md", "image_packages.txt", "stages.log"]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry_run"] and "site-packages/segohem" in result["segohem_file"]
    names = [s["name"] for s in result["stages"]]
    assert names == ["pytest_gpu", "bench_loss", "train_fp32", "train_compile", "bench_train",
                     "bench_inference"]
    assert all(s["rc"] == 0 and not s["timed_out"] for s in result["stages"])
    trained = {s["name"]: s["figures"] for s in result["stages"] if s["name"].startswith("train")}
    assert all(f["mIoU_best"] is not None and f["steps"] > 0 for f in trained.values())
    report = (tmp_path / "gpu_report.md").read_text()
    for part in ("## bench_loss", "## bench_train", "## bench_inference", "| train_compile | 0 |"):
        assert part in report
    assert (tmp_path / "image_packages.txt").read_text().startswith("# python 3.")
