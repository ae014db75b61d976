"""``python -m segohem.predict``: the same as ``segohem-predict`` (:mod:`segohem.cli.predict`)."""

from segohem.cli.predict import main

if __name__ == "__main__":
    main()
