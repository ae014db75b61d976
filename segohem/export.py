"""``python -m segohem.export``: the same as ``segohem-export`` (:mod:`segohem.cli.export`)."""

from segohem.cli.export import main

if __name__ == "__main__":
    main()
