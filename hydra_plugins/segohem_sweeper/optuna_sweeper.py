"""``hydra/sweeper=optuna_study`` (conf/hydra/sweeper/optuna_study.yaml).

Hydra imports every module of the ``hydra_plugins`` namespace when any command starts, so this
one stays cheap: Optuna and the sweep logic (:mod:`segohem.sweep.sweeper`) are imported when a
sweep actually runs.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaStudySweeper(Sweeper):
    """Hydra's side of :class:`segohem.sweep.sweeper.StudySweep` (same options)."""

    def __init__(self, **options: Any) -> None:
        from segohem.sweep.sweeper import StudySweep  # lazy: see the module docstring

        self.work = StudySweep(**options)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.work.setup(hydra_context=hydra_context, task_function=task_function,
                        config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.work.sweep(arguments)
