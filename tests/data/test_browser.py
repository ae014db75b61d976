"""segohem.data.browser (scripts/browse_dataset.py): the grid's layout, colours, legend and
printout on the embedded synthetic data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segohem.data.browser import BACKGROUND, PAD, main


def test_synthetic_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sub" / "grid.png"
    assert main(["--num", "3", "--out", str(out), "--no-legend"]) == out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        # 3 rows of 96x96 tiles: image | mask | overlay, PAD px between and around.
        assert im.size == (3 * 96 + 4 * PAD, 3 * 96 + 4 * PAD)
        grid = np.asarray(im)
    text = capsys.readouterr().out
    assert str(out) in text
    assert "synthetic://train/000000" in text and "synthetic://train/000002" in text
    assert "background" in text and "ignore" in text
    assert (grid[:PAD] == BACKGROUND).all() and (grid[:, :PAD] == BACKGROUND).all()
    # The mask column holds palette colours: ignore (white) and background (black) appear.
    mask_tile = grid[PAD:PAD + 96, 2 * PAD + 96:2 * PAD + 192].reshape(-1, 3)
    colours = {tuple(int(v) for v in c) for c in np.unique(mask_tile, axis=0)}
    assert (255, 255, 255) in colours and (0, 0, 0) in colours
    # The overlay is the image where the mask is ignored (white in the mask column).
    image = grid[PAD:PAD + 96, PAD:PAD + 96]
    over = grid[PAD:PAD + 96, 3 * PAD + 192:3 * PAD + 288]
    ignored = (grid[PAD:PAD + 96, 2 * PAD + 96:2 * PAD + 192] == 255).all(axis=-1)
    assert ignored.any() and (over[ignored] == image[ignored]).all()
    assert (over[~ignored] != image[~ignored]).any()


def test_overrides_seed_split_legend(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "g.png"
    # Hydra overrides are positional and may come after the options.
    main(["--split", "val", "--num", "2", "--seed", "5", "--out", str(out),
          "dataset.image_size=[64,80]"])
    with Image.open(out) as im:
        width, height = im.size
    assert width == 3 * 80 + 4 * PAD
    assert height > 2 * 64 + 3 * PAD  # + the legend strip
    text = capsys.readouterr().out
    assert "val transform" in text and "synthetic://val/" in text and "(80x64)" in text


def test_script_runs_the_module(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "browse_dataset.py"
    out = tmp_path / "grid.png"
    done = subprocess.run([sys.executable, str(script), "--num", "1", "--no-transform",
                           "--max-side", "48", "--out", str(out)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "raw files" in done.stdout
    with Image.open(out) as im:  # a 96 px tile scaled down to 48 px
        assert im.size[0] == 3 * 48 + 4 * PAD


def test_the_class_statistics_table_comes_first(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    from tests.data.test_class_stats import make_tree

    root = make_tree(tmp_path / "data", extra_ground=8)  # speck: 1 of 12 training images
    main(["--num", "1", "--no-transform", "--out", str(tmp_path / "g.png"), "dataset=folder",
          f"dataset.root={root}", "dataset.num_classes=3",
          "dataset.class_names=[ground,part,speck]"])
    text = capsys.readouterr().out
    assert text.index("train images (12) | val pixels | val images (2)") < text.index("[0] ")
    assert "WARNING: rare across images: speck in 1 of 12 training images (8.3 %)" in text
    assert "WARNING: speck has no pixel in the validation split" in text
    main(["--num", "1", "--no-stats", "--out", str(tmp_path / "g.png")])
    assert "Class statistics" not in capsys.readouterr().out
