"""The per-epoch training statistics of :class:`~segohem.train.module.SegmentationModule`: step
values summed on the device (no host sync per step), their epoch means, and the per-class
mining ratios of each epoch and of the whole run (``SegmentationModule.mining_summary``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

OHEM_STATS = ("kept_fraction", "fallback", "threshold")
"""Mining statistics logged under ``train/ohem/`` (step values) and ``..._epoch`` (means)."""
RECTIFICATION_STATS = ("minority_classes", "rectification", "active_triplets", "alpha")
"""Statistics of ``MinorityRectificationLoss`` (``last_rectification``), logged as epoch means
under ``train/crl/<name>_epoch``."""
MINING_PREFIX = "train/mining"
"""Per-class mining ratios of each epoch: ``<prefix>/kept_of_class/<class>`` and
``<prefix>/share_of_kept/<class>``."""


def _plus(total: Tensor | None, value: Tensor) -> Tensor:
    return value if total is None else total + value


class EpochSums:
    """The training steps of one epoch, summed on the device: the loss with the loss's mining
    statistics (:data:`OHEM_STATS`), the pixels per class it saw and kept, and the
    rectification statistics (:data:`RECTIFICATION_STATS`)."""

    def __init__(self) -> None:
        self.values: Tensor | None = None  # (loss, *OHEM_STATS) summed over the epoch
        self.per_class: Tensor | None = None  # (2, C) float64 valid, kept pixels per class
        self.rectification: Tensor | None = None  # RECTIFICATION_STATS summed over the epoch
        self.steps = 0

    def add(self, loss: Tensor, stats: Any = None, rectification: Any = None) -> Tensor | None:
        """Add one step: the loss value, the loss's ``last_stats``
        (:class:`~segohem.losses.MiningStats` or None) and ``last_rectification`` (or None).
        Returns the step's :data:`OHEM_STATS` values (stacked) for per-step logging, or None
        when the loss does not mine."""
        values = None
        step_values = loss.detach().float().reshape(1)
        if stats is not None:
            values = torch.stack([getattr(stats, name) for name in OHEM_STATS])
            step_values = torch.cat([step_values, values])
            if stats.class_valid is not None and stats.class_kept is not None:
                self.per_class = _plus(self.per_class, torch.stack(
                    [stats.class_valid, stats.class_kept]).to(torch.float64))
        self.values = _plus(self.values, step_values)
        if rectification is not None:
            self.rectification = _plus(self.rectification, torch.stack(
                [getattr(rectification, name) for name in RECTIFICATION_STATS]))
        self.steps += 1
        return values

    @property
    def mines(self) -> bool:
        """Whether the loss reported mining statistics this epoch."""
        return self.values is not None and len(self.values) > 1

    def loss_means(self) -> dict[str, Tensor]:
        """``train/loss_epoch`` and, for a mining loss, ``train/ohem/<name>_epoch``."""
        if self.values is None or not self.steps:
            return {}
        names = ["train/loss_epoch"] + [f"train/ohem/{n}_epoch" for n in OHEM_STATS]
        return dict(zip(names, self.values / self.steps, strict=False))

    def rectification_means(self) -> dict[str, Tensor]:
        """``train/crl/<name>_epoch`` (empty without a rectification loss)."""
        if self.rectification is None or not self.steps:
            return {}
        return {f"train/crl/{name}_epoch": value for name, value in
                zip(RECTIFICATION_STATS, self.rectification / self.steps, strict=True)}

    def mining_totals(self, reduce_sum: Callable[[Tensor], Tensor],
                      world_size: int) -> dict[str, Any]:
        """The epoch's mining totals over all ranks (``reduce_sum``: one collective sum):
        ``steps``, ``fallback_steps`` (the fallback rate averaged over the ranks, times the
        steps) and, if the loss counts pixels per class, ``class_valid`` / ``class_kept``.
        Only for an epoch of a mining loss (:attr:`mines`)."""
        fallback = self.values[1 + OHEM_STATS.index("fallback")] / self.steps
        packed = fallback.detach().to(torch.float64).reshape(1) / world_size
        if self.per_class is not None:
            packed = torch.cat([packed, self.per_class.reshape(-1)])
        values = reduce_sum(packed).tolist()
        totals: dict[str, Any] = {"steps": self.steps, "fallback_steps": values[0] * self.steps}
        if self.per_class is not None:
            n = self.per_class.shape[1]
            totals |= {"class_valid": values[1:1 + n], "class_kept": values[1 + n:]}
        return totals


def add_totals(run: dict[str, Any], epoch: dict[str, Any]) -> dict[str, Any]:
    """The run's mining totals with ``epoch`` added (a new run when ``run`` is empty or counts
    another number of classes, e.g. after loading a checkpoint of another class count)."""
    if run and len(run.get("class_valid", ())) == len(epoch.get("class_valid", ())):
        return {key: ([a + b for a, b in zip(run[key], value, strict=True)]
                      if isinstance(value, list) else run[key] + value)
                for key, value in epoch.items()}
    return dict(epoch)


def class_names_for(class_names: Sequence[str], n: int) -> list[str]:
    """The names of ``n`` per-class counts: ``class_names``, or ``class_<i>`` when the loss
    counts another number of classes than the module (e.g. a binary loss's two sides)."""
    return list(class_names) if n == len(class_names) else [f"class_{i}" for i in range(n)]


def mining_section(totals: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Ratios of summed mining statistics (JSON-friendly; None where undefined).

    ``totals``: ``steps``, ``fallback_steps`` (sum over steps of the fallback value) and
    optionally ``class_valid`` / ``class_kept`` (pixels per class, summed). Returns
    ``steps``, ``fallback_rate`` (mean fallback per step) and, with per-class counts,
    ``kept_fraction`` (all kept / all valid pixels), ``kept_of_class`` (class name -> kept
    / valid pixels of the class) and ``share_of_kept`` (class name -> the class's kept
    pixels / all kept pixels)."""
    steps = totals["steps"]
    section: dict[str, Any] = {
        "steps": steps,
        "fallback_rate": totals["fallback_steps"] / steps if steps else None}
    if "class_valid" in totals:
        valid, kept = totals["class_valid"], totals["class_kept"]
        all_valid, all_kept = sum(valid), sum(kept)
        section["kept_fraction"] = all_kept / all_valid if all_valid > 0 else None
        section["kept_of_class"] = {n: k / v if v > 0 else None
                                    for n, v, k in zip(names, valid, kept, strict=True)}
        section["share_of_kept"] = {n: k / all_kept if all_kept > 0 else None
                                    for n, k in zip(names, kept, strict=True)}
    return section
