"""``python -m segohem.train``: the same as ``segohem-train`` (:mod:`segohem.cli.train`)."""

from segohem.cli.train import main

if __name__ == "__main__":
    main()
