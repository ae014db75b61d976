"""Record a failed run's exception in the run's log file (not again on the console, where
Hydra already prints it), so that a sweep's job folders say why a job failed."""

from __future__ import annotations

import logging
import sys


def log_failure_to_files(what: str, err: BaseException) -> None:
    """Emit ``<what> failed: <Type>: <message>`` with the traceback to the root logger's file
    handlers only."""
    logger = logging.getLogger("segohem")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s failed: %s: %s",
                               (what, type(err).__name__, err), sys.exc_info())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
