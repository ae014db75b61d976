"""Optuna sweeps under Hydra: the sweeper (sweeper.py), the shared study and its workers
(study.py, workers.py), storages, the search space, pruning."""
