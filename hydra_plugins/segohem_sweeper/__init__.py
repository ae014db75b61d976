"""segohem's Hydra sweeper plugin: an Optuna study driven by ask-and-tell
(:class:`~hydra_plugins.segohem_sweeper.optuna_sweeper.OptunaStudySweeper`). Hydra finds
plugins only in the ``hydra_plugins`` namespace package, hence this package's place."""
