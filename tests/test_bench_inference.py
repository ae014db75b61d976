"""scripts/bench_inference.py runs and reports every variant (tiny sizes)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_inference


def test_bench_inference_smoke(tmp_path, capsys):
    md = tmp_path / "bench.md"
    bench_inference.main(["--device", "cpu", "--size", "64", "128", "--crop", "32", "64",
                          "--stride", "32", "64", "--repeats", "1", "--threads", "1",
                          "--markdown", str(md)])
    out = capsys.readouterr().out
    for name in ("whole", "slide 32x64 / 32x64", "whole + flip"):
        assert name in out
    text = md.read_text()
    assert "| variant | s/image | images/s | GFLOPs | peak memory MB |" in text
