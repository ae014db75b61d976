"""The console commands, one short entry point each (also ``python -m segohem.cli.<name>``).
The four Hydra apps compose ``conf/<name>.yaml`` -> call the library function that does the
work -> return its result (the metric, for sweepers); ``segohem-heldout`` is plain argparse.

============  ====================  ======================================
command       entry point           work
============  ====================  ======================================
segohem-train    cli/train.py       :func:`segohem.train.run.train`
segohem-eval     cli/eval.py        :func:`segohem.infer.evaluate.evaluate`
segohem-predict  cli/predict.py     :func:`segohem.infer.predict.run.predict`
segohem-export   cli/export.py      :func:`segohem.infer.export.run.export`
segohem-heldout  cli/heldout.py     :func:`segohem.data.heldout.write_sets`
============  ====================  ======================================

Only Hydra is imported at module level, so ``--help`` and bad overrides answer quickly; torch,
Lightning and SMP are imported when a run starts. A job's outcome goes to its
``status.json`` (:mod:`segohem.report.job_status`, a Hydra callback in conf/hydra/default.yaml).
Known mistakes (a bad option, file, mask or checkpoint) end every command with one line,
``<command>: error: <cause and fix>``, and exit status 1 (:func:`exit_on`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

T = TypeVar("T")


class InputError(CompactHydraException):
    """A known mistake in the user's input. Hydra prints a ``CompactHydraException``'s message
    alone, without a traceback, and exits with status 1; ``HYDRA_FULL_ERROR=1`` shows the
    traceback, and ``status.json`` and the job's log file (``train.log``, ...) keep it (with
    the original exception, chained as the cause)."""


_WORKER = re.compile(r"Original Traceback \(most recent call last\):.*\n(?:[\w.]+\.)?\w+: (.*)",
                     re.DOTALL)


def one_line(err: BaseException) -> str:
    """The message of ``err``; for an error re-raised by a DataLoader worker ("Caught X in
    DataLoader worker process 0. Original Traceback ...") the original message only."""
    text = str(err)
    if (found := _WORKER.search(text)) is not None:
        return found.group(1).strip()
    return text


def exit_on(errors: tuple[type[Exception], ...], command: str,
            work: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    """Run ``work(cfg)`` and return its result; one of ``errors`` (a known mistake: bad
    option, file, mask, checkpoint) becomes an :class:`InputError`
    ``<command>: error: <message>`` (one line on stderr, exit status 1, no traceback unless
    ``HYDRA_FULL_ERROR=1``); anything else propagates with its traceback."""
    try:
        return work(cfg)
    except errors as err:
        raise InputError(f"{command}: error: {one_line(err)}") from err
