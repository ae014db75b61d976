"""The end of ``train.log``: the best validation epoch, what decided the pixel mining, and the
classes the training gave up on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from torch import nn

from segohem.report.metrics_json import summary_table
from segohem.train.abandonment import abandonment_message

log = logging.getLogger(__name__)

FALLBACK_DOMINATES = 0.5
"""Fallback rate from which the end-of-run report says the minimum-count rule dominated."""


def mining_report(summary: Mapping[str, Any], loss: nn.Module | Any) -> str | None:
    """One line on what decided the pixel selection over the run: the loss threshold or its
    minimum-count fallback (``summary``: ``SegmentationModule.mining_summary``), in the words
    of the first loss term with a ``fallback_rule`` (``OhemCELoss``, ``BinaryOhemLoss``). None
    when there is no summary or no term has such a rule (top-k keeps a fixed fraction)."""
    rate = (summary.get("run") or {}).get("fallback_rate")
    modules = loss.modules() if hasattr(loss, "modules") else ()
    rule = next((m.fallback_rule for m in modules if getattr(m, "fallback_rule", None)), None)
    if rate is None or rule is None:
        return None
    name, decided, dominated = rule
    verdict = dominated if rate >= FALLBACK_DOMINATES else decided
    return f"Mining: {name} used in {100 * rate:.0f} % of training steps ({verdict})"


class RunReport(pl.Callback):
    """At the end of a fit, rank 0 logs (``train.log``) from the ``SegmentationModule``'s
    state: the best validation epoch's per-class table (``best_val``), the mining line
    (:func:`mining_report` of ``mining_summary``) and a warning per class still abandoned
    (``mining_summary["abandoned_classes"]``, :mod:`segohem.train.abandonment`).

    Under ``ddp_fork`` / ``ddp_spawn`` this runs in rank 0's process, where the state is.
    """

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        best = getattr(pl_module, "best_val", None) or {}
        if best:
            log.info("Best validation epoch %s:\n%s", best.get("epoch"),
                     summary_table(best, pl_module.class_names))
        mining = getattr(pl_module, "mining_summary", None) or {}
        loss = getattr(pl_module, "loss", None)
        line = mining_report(mining, loss)
        if line:
            log.info(line)
        for entry in mining.get("abandoned_classes") or ():
            log.warning("Abandoned class: %s", abandonment_message(
                entry, getattr(loss, "ce_weight", None)))
