"""segohem-export: ONNX and TorchScript exports with dynamic sizes, parity, the sidecar. The
trained checkpoint is the session fixture ``tiny_checkpoint`` of tests/cli/conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from segohem.data import SyntheticDataset
from segohem.infer.core import padded_logits
from segohem.infer.export.run import ExportError, export
from segohem.train.checkpoint import CheckpointError, load_model
from tests._support.commands import assert_fails_on_corrupt_checkpoint
from tests._support.configs import compose_config


def compose_export(overrides: list[str]):
    return compose_config("export", overrides)


def reference_logits(ckpt: Path, x: torch.Tensor) -> np.ndarray:
    model = load_model(ckpt).model  # not under no_grad: its encoder pruning probe needs autograd
    with torch.no_grad():
        return padded_logits(model, x).numpy()


@pytest.fixture(scope="module")
def onnx_export(tiny_checkpoint):
    """The default export (ONNX, dynamo exporter, next to the checkpoint) at 64x96."""
    return export(compose_export([f"ckpt_path={tiny_checkpoint}", "height=64", "width=96"]))


@pytest.mark.slow
def test_onnx_export_has_dynamic_sizes_and_matches_pytorch(tiny_checkpoint, onnx_export):
    import onnx
    import onnxruntime as ort

    assert onnx_export.path == tiny_checkpoint.with_suffix(".onnx") and onnx_export.path.is_file()
    diffs = onnx_export.max_abs_diff
    assert list(diffs) == ["2x3x64x96", "1x3x128x160", "1x3x141x167"]  # export, +64, odd
    assert max(diffs.values()) <= 1e-4, diffs
    print("onnx parity:", diffs)

    onnx.checker.check_model(str(onnx_export.path))
    session = ort.InferenceSession(str(onnx_export.path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("image", "logits")
    assert inp.shape[1] == 3 and out.shape[1] == 6
    assert inp.shape == ["batch", 3, "height", "width"], inp.shape  # dynamic sizes
    assert out.shape == ["batch", 6, "height", "width"], out.shape
    x = torch.randn(3, 3, 50, 70)  # another batch, off the 32 grid
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == (3, 6, 50, 70)
    np.testing.assert_allclose(got, reference_logits(tiny_checkpoint, x), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_sidecar_describes_the_model(tiny_checkpoint, onnx_export):
    import onnx

    assert onnx_export.sidecar == tiny_checkpoint.with_name("last.onnx.json")
    info = json.loads(onnx_export.sidecar.read_text())
    loaded = load_model(tiny_checkpoint)
    cfg = compose_export([f"ckpt_path={tiny_checkpoint}", "height=64", "width=96"])
    classes = list(SyntheticDataset.classes)  # what the checkpoint was trained on
    assert info["format"] == "onnx" and info["model_file"] == "last.onnx"
    assert info["class_names"] == classes and info["num_classes"] == len(classes)
    assert [tuple(c) for c in info["palette"]] == loaded.palette
    # The normalisation it states turns an image into what validation fed the model.
    norm = info["input"]["normalization"]
    assert norm["type"] == "standard"
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    validation = instantiate(loaded.config.dataset.val_transform)
    fed = validation(image=rgb, mask=np.zeros((64, 96), np.uint8))["image"].numpy()
    stated = (rgb / norm["max_pixel_value"] - np.asarray(norm["mean"])) / np.asarray(norm["std"])
    np.testing.assert_allclose(stated.transpose(2, 0, 1), fed, rtol=1e-5, atol=1e-5)
    assert info["input"]["size_divisor"] == cfg.size_divisor
    assert info["input"]["shape"] == ["batch", 3, "height", "width"]
    assert info["input"]["name"] == "image" and info["output"]["name"] == "logits"
    assert info["output"]["shape"] == ["batch", len(classes), "height", "width"]
    model = onnx.load(str(onnx_export.path))
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert info["opset"] == opsets.get("", opsets.get("ai.onnx")) == cfg.opset
    assert info["export_size"] == [64, 96]
    assert info["parity"]["max_abs_diff"] == onnx_export.max_abs_diff


@pytest.mark.slow
def test_torch_export_program_has_dynamic_sizes_and_matches_pytorch(tiny_checkpoint, tmp_path):
    result = export(compose_export([f"ckpt_path={tiny_checkpoint}", "format=export",
                                    "height=64", "width=64"]))
    assert result.path == tiny_checkpoint.with_suffix(".pt2")
    assert max(result.max_abs_diff.values()) <= 1e-4, result.max_abs_diff
    assert json.loads(result.sidecar.read_text())["format"] == "export"
    program = torch.export.load(str(result.path))
    assert isinstance(program, torch.export.ExportedProgram)
    for shape in [(3, 3, 96, 40), (1, 3, 33, 130)]:  # other batch sizes and sizes off the grid
        x = torch.randn(*shape)
        with torch.no_grad():
            got = program.module()(x).numpy()
        assert got.shape == (shape[0], 6, *shape[2:])
        np.testing.assert_allclose(got, reference_logits(tiny_checkpoint, x), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_torchscript_export_matches_pytorch_at_other_sizes(tiny_checkpoint, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="segohem.infer.export.run"):
        result = export(compose_export([f"ckpt_path={tiny_checkpoint}", "format=torchscript",
                                        "height=64", "width=64",
                                        f"output={tmp_path / 'model.pt'}"]))
    assert "PyTorch deprecates TorchScript" in caplog.text and "format=export" in caplog.text
    assert result.path == tmp_path / "model.pt"
    assert max(result.max_abs_diff.values()) <= 1e-4, result.max_abs_diff
    print("torchscript parity:", result.max_abs_diff)
    info = json.loads((tmp_path / "model.pt.json").read_text())
    assert info["format"] == "torchscript" and info["opset"] is None
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    x = torch.randn(2, 3, 96, 40)
    with torch.no_grad():
        got = scripted(x).numpy()
    assert got.shape == (2, 6, 96, 40)
    np.testing.assert_allclose(got, reference_logits(tiny_checkpoint, x), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_parity_above_atol_fails(tiny_checkpoint, tmp_path):
    """(also the TorchScript-based ONNX exporter, dynamo=false)"""
    cfg = compose_export([f"ckpt_path={tiny_checkpoint}", "dynamo=false", "height=64", "width=64",
                          f"output={tmp_path / 'm.onnx'}", "atol=0"])
    with pytest.raises(ExportError, match=r"m\.onnx differs from PyTorch by up to .* > "
                                          r"atol=0"):
        export(cfg)
    diffs = json.loads((tmp_path / "m.onnx.json").read_text())["parity"]["max_abs_diff"]
    assert 0 < max(diffs.values()) <= 1e-4, diffs


@pytest.mark.parametrize("content", [os.urandom(4096), b"PK\x03\x04" + os.urandom(300)])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"bad\.ckpt: not a readable PyTorch checkpoint"):
        export(compose_export([f"ckpt_path={bad}", "format=torchscript"]))
    assert not (tmp_path / "bad.pt").exists()


def test_output_may_not_be_the_checkpoint(tmp_path):
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"")
    with pytest.raises(ExportError, match="is the checkpoint itself"):
        export(compose_export([f"ckpt_path={ckpt}", f"output={ckpt}"]))


@pytest.mark.slow
def test_cli(tiny_checkpoint, tmp_path):
    out = tmp_path / "cli.pt"
    args = [sys.executable, "-m", "segohem.cli.export", f"ckpt_path={tiny_checkpoint}",
            "format=torchscript", "height=32", "width=64", f"output={out}",
            f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_file() and (tmp_path / "cli.pt.json").is_file()
    assert "parity 1x3x96x128: max abs diff" in done.stdout + done.stderr

    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(b"\x00" * 100)
    assert_fails_on_corrupt_checkpoint(args, bad, "segohem-export")


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow), "export",
                                 "torchscript"])
def test_graph_upsamples_the_logits_of_a_downsampling_model(tmp_path, fmt):
    """SMP models answer at the input size; others get the bilinear upsampling of
    padded_logits inside the exported graph."""
    from torch import nn

    from segohem.infer.export.formats import (
        check_parity,
        export_module,
        export_onnx,
        export_program,
        export_torchscript,
    )

    torch.manual_seed(0)
    net = nn.Conv2d(3, 4, 3, stride=4, padding=1).eval()
    module = export_module(net, 32, (64, 64))
    assert module.upsample
    sample, path = torch.randn(2, 3, 64, 64), tmp_path / f"down.{fmt}"
    if fmt == "onnx":
        export_onnx(module, sample, path, opset=18)
    elif fmt == "export":
        export_program(module, sample, path)
    else:
        export_torchscript(module, sample, path)
    diffs = check_parity(module, path, fmt, 64, 64)
    assert max(diffs.values()) <= 1e-5, diffs
    x = torch.randn(1, 3, 70, 50)
    with torch.no_grad():
        torch.testing.assert_close(module(x), padded_logits(net, x), rtol=0, atol=0)
