"""Compare losses over seeds: ``python scripts/compare_losses.py [--losses ce,ohem,topk]
[--seeds 0,1,2] [--rare line,dot] [--sweep-dir DIR] [--no-train] [-- hydra overrides...]``
(see :mod:`segohem.report.loss_comparison`)."""

import sys

from segohem.report.loss_comparison import main

if __name__ == "__main__":
    sys.exit(main())
