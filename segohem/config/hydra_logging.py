"""Logging under Hydra: one handler set (Hydra's), so Lightning's lines print once."""

from __future__ import annotations

import logging

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric",
                     "pytorch_lightning")


def use_hydra_logging() -> None:
    """Drop the console handlers Lightning attaches to its loggers at import: its records
    also propagate to Hydra's root handlers, so every line would print twice."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
