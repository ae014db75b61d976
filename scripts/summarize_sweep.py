"""Summarise a segohem-train multirun: ``python scripts/summarize_sweep.py <sweep dir>
[--out DIR] [--rare CLASS ...] [--metric best|last]`` (see :mod:`segohem.report.sweep_summary`)."""

from segohem.report.sweep_summary import main

if __name__ == "__main__":
    raise SystemExit(main())
