"""Plain helpers of the test suite, imported as ``tests._support.<module>`` (fixtures live in
the conftest.py files): ``batches`` (random logits / labels), ``reference_losses`` (slow,
obviously correct losses), ``schedules`` (the former PolyLR), ``data_trees`` (tiny datasets in
their real on-disk layouts), ``configs`` (composing the packaged Hydra configs)."""
