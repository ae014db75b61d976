"""The training run (run.py), the LightningModule (module.py), optimizers and schedules,
epoch statistics, checkpoints and the callbacks."""
