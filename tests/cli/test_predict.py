"""segohem-predict: every output format, Cityscapes labelIds, path safety, bad inputs. The
trained checkpoints are the session fixtures of tests/cli/conftest.py."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from segohem.data import SyntheticDataset
from segohem.infer.core import InferenceConfig, predict_scores
from segohem.infer.predict.formats import FORMATS
from segohem.infer.predict.run import PredictError, predict, safe_destination
from segohem.train.checkpoint import CheckpointError, load_model
from tests._support import data_trees
from tests._support.commands import assert_fails_on_corrupt_checkpoint
from tests._support.configs import compose_config


def compose_predict(overrides: list[str]):
    return compose_config("predict", overrides)


def run_predict(ckpt: Path, source: Path, output: Path, *extra: str):
    return predict(compose_predict([f"ckpt_path={ckpt}", f"input={source}",
                                    f"output={output}", "device=cpu", *extra]))


@functools.cache
def cached_model(ckpt: Path):
    return load_model(ckpt)


def expected_ids(ckpt: Path, image_file: Path, eval_cfg: InferenceConfig | None = None):
    """Class ids computed here: the checkpoint's own val transform, then predict_scores."""
    loaded = cached_model(ckpt)
    transform = instantiate(loaded.config.dataset.val_transform)
    rgb = np.asarray(Image.open(image_file).convert("RGB"))
    image = transform(image=rgb)["image"][None]
    h, w = rgb.shape[:2]
    scores = predict_scores(loaded.model, image, eval_cfg)[..., :h, :w]  # val pads: cut it
    return scores.argmax(1)[0].numpy()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """Three 64x64 PNGs (one 48x80, off the 32 grid) and a JPEG in a sub-folder."""
    root = tmp_path_factory.mktemp("images")
    dataset = SyntheticDataset(split="val", image_size=(64, 64))
    for i in range(3):
        Image.fromarray(dataset[i]["image"]).save(root / f"img{i}.png")
    Image.fromarray(SyntheticDataset(split="val", image_size=(48, 80))[0]["image"]).save(
        root / "wide.png")
    (root / "sub").mkdir()
    Image.fromarray(dataset[3]["image"]).save(root / "sub" / "deep.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def cityscapes_ckpt(cityscapes_run) -> tuple[Path, Path]:
    """A 19-class checkpoint trained briefly on a Cityscapes-layout tree, and the tree."""
    root, run_dir, _ = cityscapes_run
    return run_dir / "checkpoints" / "last.ckpt", root


@pytest.mark.slow
def test_color_format_is_a_palette_png_of_class_ids(tiny_checkpoint, image_dir, tmp_path):
    result = run_predict(tiny_checkpoint, image_dir, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert names == ["img0.png", "img1.png", "img2.png", "wide.png"]
    assert not (tmp_path / "out" / "sub").exists()  # not recursive
    assert len(result.written) == 4 and not result.skipped
    palette = cached_model(tiny_checkpoint).palette
    for name in names:
        image = Image.open(tmp_path / "out" / name)
        assert image.mode == "P"
        assert image.size == Image.open(image_dir / name).size
        assert image.getpalette()[:3 * len(palette)] == [c for rgb in palette for c in rgb]
        ids = np.asarray(image)
        assert ids.max() < len(palette)
        np.testing.assert_array_equal(ids, expected_ids(tiny_checkpoint, image_dir / name))


@pytest.mark.slow
@pytest.mark.parametrize("options", [[], ["eval.mode=slide", "eval.crop_size=[32,32]",
                                          "eval.stride=[16,16]", "eval.flip=true",
                                          "eval.scales=[0.75,1.0]"]])
def test_id_format_equals_argmax_of_predict_scores(tiny_checkpoint, image_dir, tmp_path,
                                                   options):
    run_predict(tiny_checkpoint, image_dir, tmp_path, "format=id", "recursive=true", *options)
    eval_cfg = InferenceConfig(**compose_predict(
        ["ckpt_path=x", "input=x", "output=x", *options]).eval)
    for source in [image_dir / "img0.png", image_dir / "wide.png", image_dir / "sub/deep.jpg"]:
        written = tmp_path / source.relative_to(image_dir).with_suffix(".png")
        image = Image.open(written)
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image),
                                      expected_ids(tiny_checkpoint, source, eval_cfg))


@pytest.mark.slow
def test_overlay_format(tiny_checkpoint, image_dir, tmp_path):
    run_predict(tiny_checkpoint, image_dir, tmp_path / "jpg", "format=overlay", "recursive=true")
    assert sorted(p.relative_to(tmp_path / "jpg").as_posix()
                  for p in (tmp_path / "jpg").rglob("*") if p.is_file()) == [
        "img0.jpg", "img1.jpg", "img2.jpg", "sub/deep.jpg", "wide.jpg"]
    assert Image.open(tmp_path / "jpg" / "img0.jpg").mode == "RGB"
    # alpha=1 as PNG: exactly the colour mask; alpha=0: exactly the image.
    run_predict(tiny_checkpoint, image_dir, tmp_path / "a1", "format=overlay", "overlay_ext=png",
                "overlay_alpha=1.0")
    palette = np.asarray(cached_model(tiny_checkpoint).palette, np.uint8)
    ids = expected_ids(tiny_checkpoint, image_dir / "img1.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a1" / "img1.png")),
                                  palette[ids])
    run_predict(tiny_checkpoint, image_dir / "img1.png", tmp_path / "a0", "format=overlay",
                "overlay_ext=png", "overlay_alpha=0")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a0" / "img1.png")),
                                  np.asarray(Image.open(image_dir / "img1.png")))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["color", "overlay"])
def test_legend_under_color_and_overlay_pictures(tiny_checkpoint, image_dir, tmp_path, fmt):
    run_predict(tiny_checkpoint, image_dir / "img1.png", tmp_path, f"format={fmt}",
                "overlay_ext=png", "overlay_alpha=1.0", "legend=true")
    picture = np.asarray(Image.open(tmp_path / "img1.png").convert("RGB"))
    height, width = np.asarray(Image.open(image_dir / "img1.png")).shape[:2]
    loaded = cached_model(tiny_checkpoint)
    palette = np.asarray(loaded.palette, np.uint8)
    assert picture.shape[1] == width and picture.shape[0] > height  # the key below
    np.testing.assert_array_equal(picture[:height], palette[expected_ids(
        tiny_checkpoint, image_dir / "img1.png")])
    key = picture[height:].reshape(-1, 3)
    for colour in [*palette.tolist(), [255, 255, 255]]:  # every class (6) and ignore
        assert (key == colour).all(1).sum() >= 16, colour  # a swatch, not a stray pixel


def test_legend_needs_a_colour_format(tmp_path):
    with pytest.raises(PredictError, match=r"legend=true .* format=id writes ids"):
        run_predict(tmp_path / "x.ckpt", tmp_path, tmp_path / "out", "format=id",
                    "legend=true")


@pytest.mark.slow
def test_cityscapes_format_writes_official_label_ids(cityscapes_ckpt, tmp_path):
    ckpt, root = cityscapes_ckpt
    source = root / "leftImg8bit" / "val"
    out = tmp_path / "results"
    run_predict(ckpt, source, out, "format=cityscapes")  # city sub-folders: found without
    # recursive=true, as docs/inference.md's example runs it
    inputs = sorted(source.rglob("*_leftImg8bit.png"))
    written = sorted(out.rglob("*.png"))
    assert [p.relative_to(out) for p in written] == [p.relative_to(source) for p in inputs]
    # the official table (tests/_support/data_trees, independent of segohem): trainId -> labelId
    to_label = {t: lab for lab, t in data_trees.CITYSCAPES_LABEL_TO_TRAIN.items() if t != 255}
    assert sorted(to_label) == list(range(19))
    for image_file, result in zip(inputs, written, strict=True):
        stored = np.asarray(Image.open(result))
        assert Image.open(result).mode == "L" and stored.shape == (64, 128)
        train_ids = expected_ids(ckpt, image_file)
        expected = np.vectorize(to_label.get)(train_ids)
        np.testing.assert_array_equal(stored, expected)
        assert set(np.unique(stored)) <= set(to_label.values())


@pytest.mark.slow
def test_cityscapes_format_needs_a_19_class_checkpoint_and_cityscapes_names(
        tiny_checkpoint, cityscapes_ckpt, image_dir, tmp_path):
    ckpt, root = cityscapes_ckpt
    with pytest.raises(CheckpointError, match=r"19 Cityscapes classes.*trained for 6 classes"):
        run_predict(tiny_checkpoint, root / "leftImg8bit" / "val", tmp_path / "a",
                    "format=cityscapes", "recursive=true")
    with pytest.raises(PredictError, match=r"img0\.png: format=cityscapes needs Cityscapes "
                                           r"file names"):
        run_predict(ckpt, image_dir, tmp_path / "b", "format=cityscapes")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_symlinked_output_subfolder_pointing_outside_is_refused(tiny_checkpoint, image_dir,
                                                                tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "sub")
    with pytest.raises(PredictError, match=r"outside the output folder"):
        run_predict(tiny_checkpoint, image_dir, out, "recursive=true")
    assert not any(outside.iterdir())
    assert not (out / "img0.png").exists()  # checked before anything is written


def test_destinations_cannot_leave_the_output_folder(tmp_path):
    for bad in ["../evil.png", "a/../../evil.png", "/etc/evil.png"]:
        with pytest.raises(PredictError, match="would leave the output folder"):
            safe_destination(tmp_path, Path(bad))
    os.symlink("/tmp", tmp_path / "link.png")
    with pytest.raises(PredictError, match="outside the output folder"):
        safe_destination(tmp_path, Path("link.png"))
    assert safe_destination(tmp_path, Path("a/b.png")) == tmp_path / "a" / "b.png"


@pytest.mark.slow
def test_input_files_are_never_overwritten(tiny_checkpoint, image_dir, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for name in ("img0.png", "img1.png"):
        (source / name).write_bytes((image_dir / name).read_bytes())
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    with pytest.raises(PredictError, match=r"would overwrite the input file"):
        run_predict(tiny_checkpoint, source, source, "format=id")
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before
    # an output folder inside the input: its files are not taken as inputs on a rerun
    for _ in range(2):
        result = run_predict(tiny_checkpoint, source, source / "pred", "recursive=true")
        assert len(result.written) == 2


@pytest.mark.slow
def test_unreadable_image_is_named_or_skipped(tiny_checkpoint, image_dir, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.png").write_bytes((image_dir / "img0.png").read_bytes())
    (source / "broken.png").write_bytes((image_dir / "img1.png").read_bytes()[:200])
    (source / "notes.txt").write_text("not an image, not listed")
    with pytest.raises(PredictError, match=r"broken\.png: unreadable or truncated.*skip_bad"):
        run_predict(tiny_checkpoint, source, tmp_path / "a")
    result = run_predict(tiny_checkpoint, source, tmp_path / "b", "skip_bad=true")
    assert [p.name for p in result.written] == ["good.png"]
    assert [p.name for p, _ in result.skipped] == ["broken.png"]


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(PredictError, match="no such file or folder"):
        run_predict(tmp_path / "x.ckpt", tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "empty" / "deeper" / "a.png")
    with pytest.raises(PredictError, match=r"no image files found.*recursive=true"):
        run_predict(tmp_path / "x.ckpt", tmp_path / "empty", tmp_path / "out")


@pytest.mark.parametrize("content", [os.urandom(4096), b""])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    ckpt = tmp_path / "bad.ckpt"
    ckpt.write_bytes(content)
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    with pytest.raises(CheckpointError, match=r"bad\.ckpt: not a readable PyTorch checkpoint"):
        run_predict(ckpt, tmp_path / "a.png", tmp_path / "out")


@pytest.mark.slow
def test_truncated_checkpoint_is_a_clear_error(tiny_checkpoint, image_dir, tmp_path):
    ckpt = tmp_path / "truncated.ckpt"
    ckpt.write_bytes(tiny_checkpoint.read_bytes()[:50_000])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt: not a readable"):
        run_predict(ckpt, image_dir, tmp_path / "out")


@pytest.mark.slow
def test_cli(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "pred"
    args = [sys.executable, "-m", "segohem.cli.predict", f"ckpt_path={tiny_checkpoint}",
            f"input={image_dir}", f"output={out}", "format=id", "recursive=true",
            f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Wrote 5 id prediction(s)" in done.stdout + done.stderr
    assert (out / "sub" / "deep.png").is_file()
    assert not list((tmp_path / "hydra").glob("*.png"))  # predictions only in `output`
    np.testing.assert_array_equal(np.asarray(Image.open(out / "img2.png")),
                                  expected_ids(tiny_checkpoint, image_dir / "img2.png"))

    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(os.urandom(1000))
    assert_fails_on_corrupt_checkpoint(args, bad, "segohem-predict")


def test_help_is_fast_and_names_the_formats():
    done = subprocess.run([sys.executable, "-m", "segohem.cli.predict", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert f"format={'|'.join(FORMATS)}" in done.stdout  # every format predict accepts
    code = "import sys, segohem.cli.predict; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"



@pytest.mark.slow
def test_split_val_predicts_the_checkpoints_held_out_images(tmp_path):
    from tests.data.test_split import fit_folder, tree_content, write_folder

    root = write_folder(tmp_path / "data", tree_content())
    fit_folder(root, tmp_path / "run")
    write_folder(tmp_path / "data", {"zz_new": {2}})  # added since: not in the lists
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    result = predict(compose_predict([f"ckpt_path={ckpt}", "split=val",
                                      f"output={tmp_path / 'pred'}", "device=cpu"]))
    val = (tmp_path / "run" / "splits" / "val.txt").read_text().split()
    assert sorted(p.stem for p in result.written) == val and len(val) == 3
    with pytest.raises(PredictError, match="give one"):
        predict(compose_predict([f"ckpt_path={ckpt}", "split=val", f"input={root}",
                                 f"output={tmp_path / 'x'}"]))
