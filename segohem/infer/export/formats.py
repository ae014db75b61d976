"""The export formats of ``segohem-export``: the model wrapped to take any image size,
written as ONNX, a ``torch.export`` program (``.pt2``) or TorchScript, the written file run
again, and its parity with PyTorch."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim

FORMATS = {"onnx": ".onnx", "export": ".pt2", "torchscript": ".pt"}
INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: Protobuf cannot hold more than 2 GiB: bigger ONNX models keep their weights in
#: ``<output>.data`` next to the graph.
ONNX_SINGLE_FILE_LIMIT = 1_800_000_000


class ExportError(ValueError):
    """An export that failed or does not match PyTorch; the message says what to do."""


class PaddedLogits(nn.Module):
    """``net`` on its input zero-padded to a multiple of ``divisor``, the logits upsampled to
    the padded size if ``upsample``, the padding cut off again (see :func:`export_module`)."""

    def __init__(self, net: nn.Module, divisor: int, upsample: bool) -> None:
        super().__init__()
        self.net, self.divisor, self.upsample = net, divisor, upsample

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        d = self.divisor
        pad_h, pad_w = (d - h % d) % d, (d - w % d) % d
        padded = F.pad(x, (0, pad_w, 0, pad_h))
        logits = self.net(padded)
        if self.upsample:
            logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear",
                                   align_corners=False)
        # Cropped by a negative pad, not a slice: slicing to h checks h against the padded
        # size, a branch torch.export would fix to the export size (pad 0 or not).
        return F.pad(logits, (0, -pad_w, 0, -pad_h))


def export_module(model: nn.Module, size_divisor: int = 32,
                  probe_size: tuple[int, int] = (64, 64)) -> nn.Module:
    """``model`` wrapped as :func:`segohem.infer.core.padded_logits` does it: pad to a multiple
    of ``size_divisor``, run, upsample if the model outputs less (decided once, on a probe of
    ``probe_size``, so the traced graph has no shape branch), cut the padding off."""
    ph = -(-probe_size[0] // size_divisor) * size_divisor
    pw = -(-probe_size[1] // size_divisor) * size_divisor
    model = model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, ph, pw))
    return PaddedLogits(model, size_divisor, tuple(out.shape[-2:]) != (ph, pw)).eval()


def export_onnx(module: nn.Module, sample: Tensor, path: Path, opset: int,
                dynamo: bool = True) -> None:
    """ONNX with dynamic batch, height and width (``torch.onnx.export``; ``dynamo=False`` is
    the older TorchScript-based exporter)."""
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    kwargs: dict[str, Any] = {}
    if dynamo:
        kwargs["dynamic_shapes"] = dynamic_image_shapes()
        kwargs["external_data"] = size > ONNX_SINGLE_FILE_LIMIT
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        kwargs["dynamic_axes"] = {INPUT_NAME: axes, OUTPUT_NAME: axes}
    for name in ("onnx_ir", "onnxscript"):  # one INFO line per graph rewrite otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations and tracer notes; parity is checked
        torch.onnx.export(module, (sample,), str(path), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=opset, dynamo=dynamo,
                          verbose=False, **kwargs)


def dynamic_image_shapes() -> dict[str, dict[int, Dim]]:
    """Batch, height and width of the wrapper's input ``x`` as dynamic dimensions."""
    return {"x": {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}}


def export_program(module: nn.Module, sample: Tensor, path: Path) -> None:
    """``torch.export.export`` with dynamic batch, height and width, saved as a ``.pt2``
    ExportedProgram (``torch.export.load(path).module()`` runs it; AOTInductor compiles it).

    ``Dim.AUTO``: what the network needs of the sizes (e.g. a deepest feature map larger than
    1 x 1) becomes a runtime check of the program instead of an export error; a dimension
    that export would fix to the sample's size fails the parity check at other sizes."""
    auto = {"x": {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes; parity is checked afterwards
        program = torch.export.export(module, (sample,), dynamic_shapes=auto)
    torch.export.save(program, str(path))


TORCHSCRIPT_DEPRECATED = (
    "format=torchscript: PyTorch deprecates TorchScript (torch.jit.trace / torch.jit.load "
    "warn since 2.14); keep it for runtimes that only load TorchScript and use format=export "
    "(torch.export .pt2, also for AOTInductor) or format=onnx (ONNX Runtime, TensorRT) "
    "otherwise.")


def export_torchscript(module: nn.Module, sample: Tensor, path: Path) -> None:
    """``torch.jit.trace`` (SMP models trace with the sizes symbolic; parity at other sizes
    is checked afterwards). Deprecated by PyTorch: :data:`TORCHSCRIPT_DEPRECATED`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # the deprecation, said once by export
        traced = torch.jit.trace(module, sample, check_trace=False)
    traced.save(str(path))


def exported_runner(path: Path, fmt: str) -> Any:
    """``(N, 3, H, W)`` tensor -> numpy logits from the exported file."""
    if fmt == "onnx":
        import onnxruntime as ort  # lazy: optional (the `export` extra), needed for ONNX only

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {INPUT_NAME: x.numpy()})[0]
    if fmt == "export":
        program = torch.export.load(str(path)).module()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation
            program = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: Tensor) -> Any:
        with torch.no_grad():
            return program(x).numpy()

    return run


def parity_shapes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """The export size (batch 2), 64 px larger (batch 1), and a size off the 32 grid."""
    return [(2, 3, height, width), (1, 3, height + 64, width + 64),
            (1, 3, height + 64 + 13, width + 64 + 7)]


def check_parity(module: nn.Module, path: Path, fmt: str, height: int,
                 width: int) -> dict[str, float]:
    """Max abs logit difference, PyTorch vs the exported file, per input shape."""
    run = exported_runner(path, fmt)
    generator = torch.Generator().manual_seed(0)
    diffs: dict[str, float] = {}
    for shape in parity_shapes(height, width):
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = module(x).numpy()
        got = np.asarray(run(x))
        key = "x".join(map(str, shape))
        if got.shape != expected.shape:
            raise ExportError(f"the exported model's output for a {key} input has shape "
                              f"{list(got.shape)}, PyTorch's {list(expected.shape)}.")
        diffs[key] = float(np.abs(got - expected).max())
    return diffs
