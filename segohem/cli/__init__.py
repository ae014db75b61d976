"""The four commands, one short Hydra entry point each: compose ``conf/<name>.yaml`` ->
call the library function that does the work -> return its result (the metric, for sweepers).

============  ====================  ======================================
command       entry point           work
============  ====================  ======================================
segohem-train    cli/train.py       :func:`segohem.training.train`
segohem-eval     cli/eval.py        :func:`segohem.evaluation.evaluate`
segohem-predict  cli/predict.py     :func:`segohem.prediction.predict`
segohem-export   cli/export.py      :func:`segohem.model_export.export`
============  ====================  ======================================

Only Hydra is imported at module level, so ``--help`` and bad overrides answer quickly; torch,
Lightning and SMP are imported when a run starts. A job's outcome goes to its
``status.json`` (:mod:`segohem.job_status`, a Hydra callback in conf/hydra/default.yaml).
``segohem-predict`` and ``segohem-export`` end known mistakes with their message and exit
status 1 (:func:`exit_on`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from omegaconf import DictConfig


def exit_on(errors: tuple[type[Exception], ...], command: str,
            work: Callable[[DictConfig], object], cfg: DictConfig) -> None:
    """Run ``work(cfg)``; one of ``errors`` (a known mistake: bad option, file, checkpoint)
    ends the process with ``<command>: error: <message>`` on stderr and exit status 1,
    anything else propagates with its traceback."""
    try:
        work(cfg)
    except errors as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        sys.exit(1)
