"""``segohem-eval`` / ``python -m segohem.eval``: the Hydra entry point (see conf/eval.yaml).

Only Hydra is imported here so ``--help`` answers quickly; the work is in
:mod:`segohem.evaluation`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from segohem._failure_log import log_failure_to_files


@hydra.main(version_base="1.3", config_path="pkg://segohem.conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    """Evaluate ``cfg.ckpt_path``; returns the mIoU."""
    from segohem.evaluation import evaluate

    try:
        return evaluate(cfg)
    except BaseException as err:  # into the run's log file too (sweeps summarise it)
        if not isinstance(err, KeyboardInterrupt):
            log_failure_to_files("eval", err)
        raise


if __name__ == "__main__":
    main()
