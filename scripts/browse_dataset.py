"""Write a PNG grid of a dataset as the training pipeline sees it: ``python
scripts/browse_dataset.py [hydra overrides...] [--split train|val] [--num N] [--seed S]
[--no-transform] --out grid.png`` (see :mod:`segohem.data.browser`)."""

from segohem.data.browser import main

if __name__ == "__main__":
    main()
