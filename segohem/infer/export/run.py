"""A trained checkpoint as an ONNX model, a ``torch.export`` program or TorchScript, checked
against PyTorch (the work of ``segohem-export``).

::

    segohem-export ckpt_path=run/checkpoints/best.ckpt                   # -> best.onnx
    segohem-export ckpt_path=... format=export                           # -> best.pt2
    segohem-export ckpt_path=... format=torchscript output=model.pt      # -> model.pt

Which format: ``onnx`` for ONNX Runtime, TensorRT and other ONNX runtimes; ``export`` (a
``torch.export`` ExportedProgram, ``torch.export.load(f).module()``) to stay in PyTorch or
to compile ahead of time with AOTInductor; ``torchscript`` only for runtimes that load
nothing else (PyTorch deprecates it).
    segohem-export ckpt_path=... height=1024 width=2048 opset=18 atol=1e-4

The exported model maps normalised ``(N, 3, H, W)`` float32 images (RGB, normalised as in
validation: see the JSON sidecar) to ``(N, C, H, W)`` float32 logits, with dynamic N, H and W.
Like :func:`segohem.infer.core.padded_logits`, the graph zero-pads the input to a multiple of
``size_divisor`` (32), upsamples the logits bilinearly if the network outputs less, and cuts
the padding off again; so any H, W is accepted (multiples of 32 avoid the padding) and the
logits have the input's size. Take ``argmax`` over axis 1 for class ids.

After the export, PyTorch and the exported model (onnxruntime on CPU, ``torch.export.load``
or ``torch.jit.load``)
run on random inputs at the export size (batch 2), at a size 64 px larger in both dimensions
(batch 1) and at a size that is not a multiple of 32; the maximum absolute difference of the
logits must not exceed ``atol`` (else exit status 1). A sidecar ``<output>.json`` lists the
class names, palette, normalisation and input / output layout for deployments.

The command line is :mod:`segohem.cli.export`; the wrapper, the two formats and the parity
check are :mod:`segohem.infer.export.formats`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from segohem.files import write_json
from segohem.infer.export.formats import (
    FORMATS,
    INPUT_NAME,
    OUTPUT_NAME,
    TORCHSCRIPT_DEPRECATED,
    ExportError,
    check_parity,
    export_module,
    export_onnx,
    export_program,
    export_torchscript,
)
from segohem.train.checkpoint import LoadedModel, load_model, normalization_from_config

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What :func:`export` wrote and how closely it matches PyTorch."""

    path: Path
    sidecar: Path
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    """Input shape ``"NxCxHxW"`` -> max abs logit difference (empty with ``check=false``)."""


def normalization_info(normalize: Any) -> dict[str, Any]:
    """The albumentations ``Normalize`` as plain numbers, with the formula."""

    def triple(value: Any) -> list[float] | None:
        if value is None:
            return None
        values = [float(v) for v in (value if isinstance(value, (list, tuple)) else
                                     getattr(value, "tolist", lambda: [value])())]
        return values * 3 if len(values) == 1 else values

    info = {"type": str(getattr(normalize, "normalization", "standard")),
            "mean": triple(getattr(normalize, "mean", None)),
            "std": triple(getattr(normalize, "std", None)),
            "max_pixel_value": float(getattr(normalize, "max_pixel_value", 255.0) or 255.0)}
    if info["type"] == "standard":
        info["formula"] = ("x = (pixel - mean * max_pixel_value) / (std * max_pixel_value), "
                           "per RGB channel, pixel in 0..255")
    return info


def sidecar_content(loaded: LoadedModel, fmt: str, path: Path, normalize: Any,
                    cfg: DictConfig, diffs: dict[str, float]) -> dict[str, Any]:
    size = ["batch", 3, "height", "width"]
    return {
        "format": fmt,
        "model_file": path.name,
        "checkpoint": str(loaded.path),
        "architecture": OmegaConf.select(loaded.config, "model.arch"),
        "encoder": OmegaConf.select(loaded.config, "model.encoder_name"),
        "dataset": OmegaConf.select(loaded.config, "dataset.name"),
        "num_classes": loaded.num_classes,
        "class_names": list(loaded.class_names),
        "palette": [list(colour) for colour in loaded.palette],
        "ignore_index": loaded.ignore_index,
        "input": {"name": INPUT_NAME, "shape": size, "dtype": "float32", "layout": "NCHW",
                  "color_order": "RGB", "normalization": normalization_info(normalize),
                  "size_divisor": int(cfg.size_divisor),
                  "any_size": True,
                  "note": f"any height / width: the graph zero-pads the input to a multiple "
                          f"of {int(cfg.size_divisor)} and crops the logits back; sizes that "
                          f"are multiples already need no padding"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", loaded.num_classes, "height",
                                                  "width"],
                   "dtype": "float32", "content": "logits; class id = argmax over axis 1"},
        "opset": int(cfg.opset) if fmt == "onnx" else None,
        "export_size": [int(cfg.height), int(cfg.width)],
        "parity": {"atol": float(cfg.atol), "max_abs_diff": diffs} if diffs else None,
    }


def check_options(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path in (None, ""):
        raise ExportError("ckpt_path=... is required, e.g. segohem-export "
                          "ckpt_path=run/checkpoints/best.ckpt format=onnx")
    if cfg.format not in FORMATS:
        raise ExportError(f"format={cfg.format!r}: choose onnx, export (torch.export .pt2) "
                          f"or torchscript.")
    for key in ("height", "width", "size_divisor"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ExportError(f"{key}={cfg[key]!r} must be an integer >= 1.")
    if not float(cfg.atol) >= 0:
        raise ExportError(f"atol={cfg.atol!r} must be >= 0.")


def output_path(cfg: DictConfig) -> Path:
    """``cfg.output``, or ``<checkpoint folder>/<checkpoint stem>.onnx|.pt2|.pt``; never the
    checkpoint itself."""
    ckpt = Path(cfg.ckpt_path)
    path = Path(cfg.output) if cfg.get("output") else ckpt.with_suffix(FORMATS[cfg.format])
    if path.is_dir():
        raise ExportError(f"output={str(path)!r} is a folder; give a file name.")
    if path.resolve() == ckpt.resolve():
        raise ExportError(f"output={str(path)!r} is the checkpoint itself; choose another "
                          f"file name.")
    return path


def export(cfg: DictConfig) -> ExportResult:
    """Export ``cfg.ckpt_path`` (see the module docstring); raises :class:`ExportError` or
    :class:`~segohem.train.checkpoint.CheckpointError`."""
    check_options(cfg)
    fmt = str(cfg.format)
    if fmt == "onnx":
        try:  # lazy: optional dependencies (the `export` extra), checked before any work
            import onnx  # noqa: F401  (the exporter needs it)
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as err:
            raise ExportError(f"format=onnx needs onnx, onnxscript and onnxruntime ({err}): "
                              f"pip install 'segohem[export]'.") from None
    path = output_path(cfg)
    loaded = load_model(cfg.ckpt_path, map_location="cpu", trust=bool(cfg.trust_checkpoint))
    normalize = normalization_from_config(loaded.config, loaded.path)
    height, width = int(cfg.height), int(cfg.width)
    module = export_module(loaded.model, int(cfg.size_divisor), (height, width))
    sample = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("Exporting %s (%d classes) to %s (%s) at %dx%d", loaded.path, loaded.num_classes,
             path, fmt, height, width)
    try:
        if fmt == "onnx":
            export_onnx(module, sample, path, int(cfg.opset), bool(cfg.dynamo))
        elif fmt == "export":
            export_program(module, sample, path)
        else:
            log.warning(TORCHSCRIPT_DEPRECATED)
            export_torchscript(module, sample, path)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        hint = {"onnx": " Try the TorchScript-based ONNX exporter with dynamo=false, or "
                        "format=torchscript." if cfg.dynamo else "",
                "export": " Try format=onnx dynamo=false or format=torchscript (tracing "
                          "exporters that accept more Python)."}.get(fmt, "")
        raise ExportError(f"{fmt} export of {loaded.path} failed: {type(err).__name__}: "
                          f"{first}.{hint}") from err

    diffs = check_parity(module, path, fmt, height, width) if cfg.check else {}
    sidecar = write_json(path.with_name(path.name + ".json"),
                         sidecar_content(loaded, fmt, path, normalize, cfg, diffs))
    result = ExportResult(path=path, sidecar=sidecar, max_abs_diff=diffs)
    for shape, diff in diffs.items():
        log.info("parity %s: max abs diff %.3g (atol %.3g)", shape, diff, float(cfg.atol))
    worst = max(diffs.values(), default=0.0)
    if worst > float(cfg.atol):
        raise ExportError(f"{path} differs from PyTorch by up to {worst:.3g} "
                          f"(max abs logit difference > atol={float(cfg.atol):g}; per input "
                          f"shape: {diffs}). The file was written; do not deploy it unchecked.")
    log.info("Wrote %s and %s", path.resolve(), sidecar.name)
    return result
