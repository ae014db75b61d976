"""``python -m segohem.eval``: the same as ``segohem-eval`` (:mod:`segohem.cli.eval`)."""

from segohem.cli.eval import main

if __name__ == "__main__":
    main()
