"""Print the class statistics of a dataset's train and val splits and write a PNG grid of it as
the training pipeline sees it: ``python scripts/browse_dataset.py [hydra overrides...]
[--split train|val] [--num N] [--seed S] [--no-transform] [--no-stats] --out grid.png`` (see
:mod:`segohem.data.browser`)."""

from segohem.data.browser import main

if __name__ == "__main__":
    main()
