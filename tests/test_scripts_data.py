"""scripts/bench_data.py runs end to end (fast smoke test)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_data


def test_bench_data_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    md = tmp_path / "bench.md"
    bench_data.main(["--size", "128", "256", "--num-images", "2", "--workers", "0",
                     "--rounds", "2", "--markdown", str(md)])
    text = capsys.readouterr().out
    assert "round 2/2: single process" in text and "images/s" in text
    assert "single process (dataset[i])" in text
    assert "DataLoader, 0 workers" in text
    for part in (*bench_data.PARTS, "total dataset[i]"):
        assert part in text
    assert "the bar of 25 images/s" in text
    report = md.read_text()
    assert "| pipeline | images/s |" in report and "| image decode |" in report


def test_make_scene_is_cityscapes_like() -> None:
    from segohem.data.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID

    image, labels = bench_data.make_scene(np.random.default_rng(0), 96, 192)
    assert image.shape == (96, 192, 3) and image.dtype == np.uint8
    assert labels.shape == (96, 192) and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= set(LABEL_ID_TO_TRAIN_ID)
    assert {7, 23, 26} <= set(np.unique(labels).tolist())  # road, sky, car
    assert image.std() > 10  # not a flat image
