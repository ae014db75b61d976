"""``metrics.json``, the report of a run: its schema, the one writer, the one reader and
its printed table (:func:`summary_table`).

``segohem-train`` writes :class:`TrainingReport` into the run directory (rank 0, after every
validation and at the end: :class:`~segohem.train.callbacks.MetricsWriter`); ``segohem-eval``
writes :class:`EvaluationReport` into its own output directory. Values are JSON numbers;
metrics that are undefined (NaN: e.g. the IoU of a class absent from both prediction and
ground truth) are ``null``. Metrics are fractions in [0, 1], not percentages.

Only the standard library is imported, so scripts can read reports without torch.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from segohem.files import write_json

METRICS_FILE = "metrics.json"
"""The report's file name inside a run (or evaluation) directory."""


class Metrics(TypedDict):
    """Dataset-level metrics of one validation / evaluation pass (fractions; None = NaN)."""

    mIoU: float | None
    mAcc: float | None
    aAcc: float | None
    IoU: dict[str, float | None]
    """Class name -> IoU."""
    Acc: dict[str, float | None]
    """Class name -> pixel accuracy of the class (recall)."""


class ValidationSummary(Metrics):
    """One validation epoch of a training run."""

    epoch: int
    step: int
    """Optimizer steps done (``trainer.global_step``)."""


class ClassShare(TypedDict):
    """One class in one split of the data (:func:`split_section`)."""

    pixels: int
    """Labelled pixels of the class."""
    pixel_share: float
    """Its share of the split's labelled pixels (0 when the split has none)."""
    images: int
    """Images that hold at least one pixel of the class."""
    image_share: float
    """Their share of the split's images."""


class SplitSection(TypedDict):
    """The class statistics of one split: its image count and :class:`ClassShare` by class."""

    images: int
    classes: dict[str, ClassShare]


class TrainingReport(TypedDict, total=False):
    """``metrics.json`` of ``segohem-train``.

    ``last`` / ``best`` are the last validation epoch and the one with the highest mIoU
    (``{}`` before the first validation); ``mining`` is present for losses that report mining
    statistics (``SegmentationModule.mining_summary``: the fallback rate and the per-class
    kept ratios of the last epoch and of the whole run); ``data`` holds the class statistics
    of the data as computed at start-up (:class:`SplitSection` under ``"train"`` / ``"val"``;
    the data module's ``train_stats`` / ``val_stats``) and may hold a ``"sampler"`` entry
    (the training sampler's settings)."""

    last: ValidationSummary | dict[str, Any]
    best: ValidationSummary | dict[str, Any]
    mining: dict[str, Any]
    data: dict[str, Any]


class EvaluationReport(Metrics, total=False):
    """``metrics.json`` of ``segohem-eval``: the metrics plus what was evaluated."""

    checkpoint: str
    dataset: str | None
    split: str
    samples: int
    eval: dict[str, Any]
    """The inference settings (``InferenceConfig`` fields)."""


def metrics_summary(results: Mapping[str, Any], class_names: Sequence[str]) -> Metrics:
    """``SegmentationMetrics.compute()`` output (scalar tensors ``mIoU``, ``mAcc``, ``aAcc``
    and ``(C,)`` tensors ``IoU``, ``Acc``) -> :class:`Metrics` (per-class values by name,
    NaN -> None)."""

    def number(value: Any) -> float | None:
        value = float(value)
        return None if math.isnan(value) else value

    return {
        "mIoU": number(results["mIoU"]),
        "mAcc": number(results["mAcc"]),
        "aAcc": number(results["aAcc"]),
        "IoU": {n: number(v) for n, v in zip(class_names, results["IoU"], strict=True)},
        "Acc": {n: number(v) for n, v in zip(class_names, results["Acc"], strict=True)},
    }


def summary_table(summary: Mapping[str, Any], class_names: Sequence[str]) -> str:
    """Plain-text per-class table of a :class:`Metrics` summary: one row per class (name,
    IoU %, Acc %), then mIoU / mAcc / aAcc in %; None or NaN (an absent class) is ``"-"``."""

    def percent(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{100.0 * value:.2f}"

    width = max([len("class"), *(len(str(name)) for name in class_names)])
    header = f"{'class':<{width}} | {'IoU (%)':>7} | {'Acc (%)':>7}"
    lines = [header, "-" * len(header)]
    lines += [f"{name!s:<{width}} | {percent(summary['IoU'][name]):>7} | "
              f"{percent(summary['Acc'][name]):>7}" for name in class_names]
    lines.append("-" * len(header))
    lines.append(" | ".join(f"{key} {percent(summary[key])}" for key in ("mIoU", "mAcc", "aAcc")))
    return "\n".join(lines)


def split_section(class_names: Sequence[str], pixels: Sequence[int], images: Sequence[int],
                  num_images: int) -> SplitSection:
    """A :class:`SplitSection` from ``(C,)`` labelled pixels and ``(C,)`` images per class of a
    split of ``num_images`` images."""
    total = sum(int(p) for p in pixels)
    return {"images": int(num_images), "classes": {
        str(name): {"pixels": int(p), "pixel_share": int(p) / total if total else 0.0,
                    "images": int(n), "image_share": int(n) / num_images if num_images else 0.0}
        for name, p, n in zip(class_names, pixels, images, strict=True)}}


def training_report(last: Mapping[str, Any], best: Mapping[str, Any],
                    mining: Mapping[str, Any] | None = None,
                    data: Mapping[str, Any] | None = None) -> TrainingReport:
    """The :class:`TrainingReport` of a run (``mining`` and ``data`` left out when empty)."""
    report: TrainingReport = {"last": dict(last), "best": dict(best)}
    if mining:
        report["mining"] = dict(mining)
    if data:
        report["data"] = dict(data)
    return report


def report_path(path: str | os.PathLike) -> Path:
    """``path`` itself if it names a ``.json`` file, else ``path / metrics.json``."""
    path = Path(path)
    return path if path.suffix == ".json" else path / METRICS_FILE


def write_report(path: str | os.PathLike, report: Mapping[str, Any]) -> Path:
    """Write ``report`` to ``path`` (a run directory or the file; see :func:`report_path`)
    atomically (:func:`segohem.files.write_json`). Returns the file."""
    return write_json(report_path(path), dict(report))


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    """The report at ``path`` (a run directory or the file), or ``{}`` when there is none
    (a job that crashed before validating, a still running one) or it is not a JSON object."""
    try:
        data = json.loads(report_path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def validated_epoch(report: Mapping[str, Any], which: str = "best") -> dict[str, Any] | None:
    """``report[which]`` (``"best"`` or ``"last"``) of a :class:`TrainingReport` if it is a
    validated epoch (it has an mIoU value), else None."""
    entry = report.get(which)
    if not isinstance(entry, dict) or entry.get("mIoU") is None:
        return None
    return entry


def class_mean_iou(entry: Mapping[str, Any], classes: Sequence[str]) -> float:
    """Mean IoU of ``classes`` in a :class:`Metrics` entry (``entry["IoU"]`` by class name);
    a class whose IoU is undefined (None: absent from prediction and ground truth) counts 0.
    ``KeyError`` naming the class and the known ones when a class is unknown."""
    iou = entry["IoU"]
    unknown = [name for name in classes if name not in iou]
    if unknown:
        raise KeyError(f"{unknown}: not classes of this run (classes: {list(iou)})")
    return sum(iou[name] or 0.0 for name in classes) / len(classes)
