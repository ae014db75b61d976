"""``segohem-heldout``: write the held-out sets (:mod:`segohem.data.heldout`) as
``dataset=folder`` trees and print their class shares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Exit status 0; with ``--check``, 1 if a share is off its range or a class misses val."""
    ap = argparse.ArgumentParser(prog="segohem-heldout", description="Write the held-out sets "
                                 "(cracks, shapes, voclike, cracks_soft, voclike_soft, "
                                 "defects, objects).")
    ap.add_argument("--out", type=Path, required=True, help="a folder per set goes here")
    ap.add_argument("--sets", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=96, help="image side in px (>= 32)")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--val", type=int, default=60)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a rare class's train share (of the pixels, or of the images "
                    "for an image-rare class) is outside its intended range, or a class is in "
                    "fewer than 2 val images")
    args = ap.parse_args(argv)
    # Lazy: segohem.data imports torch; --help answers without it.
    from segohem.data.heldout import SET_NAMES, write_sets
    from segohem.data.heldout.write import check_options

    names = [s for s in args.sets.split(",") if s] if args.sets is not None else SET_NAMES
    try:
        check_options(names, args.size, args.train, args.val)
    except ValueError as err:
        ap.error(str(err))
    bad = write_sets(args.out, names, args.seed, args.size, args.train, args.val)
    if args.check and bad:
        print("check failed:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
