"""scripts/browse_dataset.py and scripts/bench_data.py run end to end (fast smoke tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_data
import browse_dataset

PAD = browse_dataset.PAD


def test_browse_dataset_synthetic_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sub" / "grid.png"
    assert browse_dataset.main(["--num", "3", "--out", str(out), "--no-legend"]) == out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        # 3 rows of 96x96 tiles: image | mask | overlay, PAD px between and around.
        assert im.size == (3 * 96 + 4 * PAD, 3 * 96 + 4 * PAD)
        grid = np.asarray(im)
    text = capsys.readouterr().out
    assert str(out) in text
    assert "synthetic://train/000000" in text and "synthetic://train/000002" in text
    assert "background" in text and "ignore" in text
    # The mask column holds palette colours: ignore (white) and background (black) appear.
    mask_tile = grid[PAD:PAD + 96, 2 * PAD + 96:2 * PAD + 192].reshape(-1, 3)
    colours = {tuple(int(v) for v in c) for c in np.unique(mask_tile, axis=0)}
    assert (255, 255, 255) in colours and (0, 0, 0) in colours


def test_browse_dataset_overrides_seed_split_legend(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "g.png"
    # Hydra overrides are positional and may come after the options.
    browse_dataset.main(["--split", "val", "--num", "2", "--seed", "5", "--out", str(out),
                         "dataset.image_size=[64,80]"])
    with Image.open(out) as im:
        width, height = im.size
    assert width == 3 * 80 + 4 * PAD
    assert height > 2 * 64 + 3 * PAD  # + the legend strip
    text = capsys.readouterr().out
    assert "val transform" in text and "synthetic://val/" in text and "(80x64)" in text


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
