"""segohem.data.heldout and its command ``segohem-heldout``: the sets load through
FolderDataset, their masks hold the intended ids, rare classes are present and under 1 % at the
default settings, the soft classes cover 2-8 % with edges that fade over several pixels, the
soft variants keep their base scenes' classes, the image-rare classes of ``defects`` /
``objects`` sit in 3-8 % of the training images and in >= 2 validation images, and the output
depends only on the seed (and each sample only on its index); the first five sets write what
they wrote before the image-rare sets came; the street scene of the data benchmark is
Cityscapes-like."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segohem.cli.heldout import main
from segohem.data import FolderDataset
from segohem.data.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID
from segohem.data.heldout import SET_NAMES, SETS, make_scene
from segohem.data.heldout.rare import placed
from segohem.data.heldout.sets import IMAGE_RARE, MIN_VAL_IMAGES
from segohem.data.heldout.soft import SOFT_BLUR, soft_blobs
from segohem.data.heldout.write import write_sets

TINY = ["--size", "64", "--train", "6", "--val", "2"]


def _masks(root: Path, split: str) -> np.ndarray:
    stems = (root / "splits" / f"{split}.txt").read_text().split()
    return np.stack([np.asarray(Image.open(root / "masks" / f"{s}.png")) for s in stems])


@pytest.mark.parametrize("name", list(SETS))
def test_tiny_set_reads_as_folder_dataset(tmp_path: Path, name: str) -> None:
    assert main(["--out", str(tmp_path), "--sets", name, *TINY]) == 0
    root, classes = tmp_path / name, SETS[name].classes
    train = FolderDataset(str(root), "train", classes=classes)
    val = FolderDataset(str(root), "val", classes=classes)
    assert (len(train), len(val)) == (6, 2)
    item = train[0]
    assert item["image"].shape == (64, 64, 3) and item["image"].dtype == np.uint8
    assert item["mask"].shape == (64, 64)
    masks = np.concatenate([_masks(root, "train"), _masks(root, "val")])
    values = set(np.unique(masks).tolist())
    assert values <= {*range(len(classes)), 255}
    image_rare = {classes.index(c) for c in SETS[name].image_rare}  # in 3-8 %: see below
    assert values >= set(range(len(classes))) - image_rare, f"a class is missing from {name}"
    assert (255 in values) == name.startswith("voclike")  # only voclike has void bands
    overrides = (root / "overrides.txt").read_text().split()
    assert overrides == ["dataset=folder", f"dataset.root={root.resolve()}",
                         f"dataset.num_classes={len(classes)}",
                         f"dataset.class_names=[{','.join(classes)}]"]
    assert f"'dataset.class_names=[{','.join(classes)}]'" in (root / "README.txt").read_text()


def test_default_sets_have_rare_classes_under_one_percent(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path), "--check"]) == 0  # 96 x 96, 200 train / 60 val
    printed = capsys.readouterr().out
    for name, spec in SETS.items():
        root = tmp_path / name
        masks = _masks(root, "train")
        assert masks.shape == (200, 96, 96) and _masks(root, "val").shape == (60, 96, 96)
        counts = np.bincount(masks.ravel(), minlength=256)
        shares = counts[:len(spec.classes)] / counts[:len(spec.classes)].sum()
        assert counts[len(spec.classes):255].sum() == 0
        assert len(spec.rare) >= 2
        for cls, (lo, hi) in spec.rare.items():
            share = shares[spec.classes.index(cls)]
            assert lo <= share <= hi and share < 0.01, (name, cls, share)
            assert f"{cls:<12}{100 * share:7.3f} %" in printed
            held = ((masks == spec.classes.index(cls)).any(axis=(1, 2))).sum()
            if cls in spec.image_rare:  # a few images, placed by the schedule
                assert IMAGE_RARE[0] <= held / 200 <= IMAGE_RARE[1], (name, cls, held)
            else:  # rare pixels are spread over many images, not a few
                assert held >= 50, (name, cls, held)
        assert shares[0] > 0.85  # background dominates


def test_check_fails_outside_the_intended_range(tmp_path: Path, monkeypatch, capsys) -> None:
    spec = SETS["cracks"]
    monkeypatch.setitem(SETS, "cracks", dataclasses.replace(spec, rare={"crack": (0.2, 0.5)}))
    assert main(["--out", str(tmp_path), "--sets", "cracks", *TINY, "--check"]) == 1
    assert "cracks/crack" in capsys.readouterr().err


def test_deterministic_per_seed_and_sample(tmp_path: Path) -> None:
    def files(out: Path, *extra: str) -> dict[str, bytes]:
        main(["--out", str(out), *TINY, *extra])
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}

    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a == b and len(a) == len(SETS) * 2 * 8
    c = files(tmp_path / "c", "--seed", "1")
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a if "images" in k)
    d = files(tmp_path / "d", "--train", "3")  # fewer samples: the first ones unchanged
    assert all(a[k] == v for k, v in d.items()) and len(d) == len(SETS) * 2 * 5


@pytest.mark.parametrize("name", [n for n, spec in SETS.items() if spec.soft])
def test_soft_class_is_medium_sized_low_contrast_and_fades(name: str) -> None:
    """The soft class: 2-8 % of the pixels, the last id, over the base scene's classes; its
    veil is faint (a few % of the brightness) and its opacity ramps over >= 4 px."""
    spec = SETS[name]
    (soft, (lo, hi)), = spec.soft.items()
    assert spec.classes[-1] == soft and lo >= 0.02 and hi <= 0.08
    base = SETS[name.removesuffix("_soft")]
    assert spec.classes[:-1] == base.classes and spec.rare == base.rare
    rng = np.random.default_rng(0)
    alphas = [soft_blobs(rng, 96, 96, p_present=1.0) for _ in range(20)]
    for alpha in alphas:
        ramp = (alpha > 0.1) & (alpha < 0.9)  # the 10-90 % fade
        core = alpha >= 0.9
        assert ramp.sum() > 0.5 * core.sum()  # a wide band around the core, not a hard edge
    # the 10-90 % fade of a straight edge blurred with the smallest sigma spans >= 4 px
    assert 2.56 * SOFT_BLUR[0] >= 4


def test_console_command_help_and_a_tiny_set(tmp_path: Path) -> None:
    """``segohem-heldout`` (the installed entry point) and ``python -m segohem.cli.heldout``."""
    command = (shutil.which("segohem-heldout", path=str(Path(sys.executable).parent))
               or shutil.which("segohem-heldout"))
    assert command, "segohem-heldout not installed: pip install -e ."
    helped = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert helped.returncode == 0, helped.stderr
    assert all(f"--{opt}" in helped.stdout
               for opt in ("out", "sets", "seed", "size", "train", "val", "check"))
    light = subprocess.run([sys.executable, "-c", "import sys, segohem.cli.heldout; "
                            "print('torch' in sys.modules)"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert light.stdout.split() == ["False"], light.stderr  # --help answers without torch
    done = subprocess.run([sys.executable, "-m", "segohem.cli.heldout", "--out", str(tmp_path),
                           "--sets", "shapes", "--size", "32", "--train", "2", "--val", "1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "shapes: " in done.stdout and "train with: segohem-train dataset=folder" in done.stdout
    assert sorted(p.name for p in (tmp_path / "shapes" / "images").iterdir()) == [
        "train_0000.png", "train_0001.png", "val_0000.png"]
    assert (tmp_path / "shapes" / "splits" / "val.txt").read_text() == "val_0000\n"


@pytest.mark.parametrize("args, message", [
    (["--sets", "cracks,nope"], "unknown sets ['nope']"),
    (["--size", "16"], "need --size >= 32"),
    (["--val", "0"], "need --size >= 32, --train >= 1, --val >= 1"),
])
def test_bad_options_name_the_option(tmp_path: Path, capsys, args: list[str],
                                     message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


IMAGE_RARE_SETS = [n for n, spec in SETS.items() if spec.image_rare]


@pytest.mark.parametrize("name", IMAGE_RARE_SETS)
def test_image_rare_classes_sit_in_few_images_with_many_pixels(tmp_path: Path, capsys,
                                                               name: str) -> None:
    """At 64 px, 100 train / 40 val: each image-rare class is in 3-8 % of the train images and
    in >= 2 val images, with >= 40 px where present; the pixel-rare classes are in many images;
    README.txt and the printout give both shares; ``--check`` passes."""
    assert main(["--out", str(tmp_path), "--sets", name, "--size", "64", "--train", "100",
                 "--val", "40", "--check"]) == 0
    spec, root = SETS[name], tmp_path / name
    assert len(spec.image_rare) >= 2 and set(spec.image_rare) <= set(spec.rare)
    assert set(spec.rare) - set(spec.image_rare), "no pixel-rare class beside the image-rare"
    train, val = _masks(root, "train"), _masks(root, "val")
    readme, printed = (root / "README.txt").read_text(), capsys.readouterr().out
    for cls in spec.rare:
        k = spec.classes.index(cls)
        pixels = (train == k).sum(axis=(1, 2))
        held, held_val = int((pixels > 0).sum()), int((val == k).any(axis=(1, 2)).sum())
        if cls in spec.image_rare:
            assert 3 <= held <= 8 and held_val >= MIN_VAL_IMAGES, (cls, held, held_val)
            assert pixels[pixels > 0].min() >= 40, (cls, pixels[pixels > 0])
            line = f"{held / 100:6.1%} ({held}/100) / {held_val / 40:6.1%} ({held_val}/40)"
            assert f"{cls:<12}" in readme and line.replace("%", " %") in readme
        else:
            assert held >= 25, (cls, held)  # poles: count ~ area, 40 % of 64 px images
        assert f"{cls:<12}{100 * (train == k).sum() / train.size:7.3f} %" in printed


def test_image_rare_schedule_spreads_evenly_and_depends_on_the_key() -> None:
    """Any first n samples hold floor or ceil of n x rate; the phase comes from the key."""
    rates, key = [0.04, 0.06], (0, 5, 0)
    hits = np.array([placed(rates, key, i) for i in range(500)])
    for k, rate in enumerate(rates):
        prefix = np.cumsum(hits[:, k])
        n = np.arange(1, 501)
        assert np.all((prefix >= np.floor(n * rate)) & (prefix <= np.ceil(n * rate)))
    assert placed(rates, key, 7) == placed(rates, key, 7)
    other = np.array([placed(rates, (1, 5, 0), i) for i in range(500)])
    assert not np.array_equal(hits, other)  # another seed, other images
    assert math.isclose(hits[:, 0].mean(), 0.04, abs_tol=0.002)


def test_check_names_too_few_images_for_the_image_rare_classes(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path), "--sets", "defects", "--size", "48", "--train", "10",
                 "--val", "1", "--check"]) == 1
    err = capsys.readouterr().err
    assert "defects/dent: in " in err and "(use more --train images)" in err
    assert "val images, fewer than 2 (raise --val)" in err


OLD_FIVE_SHA256 = "db59d8c9fcd7372102d2b92e60952074f051a3bb63f533170112676fea09038e"
"""The five first sets at seed 3, 48 px, 4 train / 2 val (decoded pixels, split files,
overrides.txt and README.txt with the output folder as OUT), as written before ``defects`` and
``objects`` were added (commit be8105b)."""


def test_first_five_sets_write_what_they_wrote_before(tmp_path: Path) -> None:
    assert SET_NAMES[:5] == ("cracks", "shapes", "voclike", "cracks_soft", "voclike_soft")
    write_sets(tmp_path, SET_NAMES[:5], 3, 48, 4, 2)
    digest = hashlib.sha256()
    for path in sorted(tmp_path.rglob("*.*")):
        digest.update(str(path.relative_to(tmp_path)).encode())
        digest.update(np.asarray(Image.open(path)).tobytes() if path.suffix == ".png" else
                      path.read_text().replace(str(tmp_path.resolve()), "OUT").encode())
    assert digest.hexdigest() == OLD_FIVE_SHA256


def test_street_scene_is_cityscapes_like() -> None:
    image, labels = make_scene(np.random.default_rng(0), 96, 192)
    assert image.shape == (96, 192, 3) and image.dtype == np.uint8
    assert labels.shape == (96, 192) and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= set(LABEL_ID_TO_TRAIN_ID)
    assert {7, 23, 26} <= set(np.unique(labels).tolist())  # road, sky, car
    assert image.std() > 10  # not a flat image
