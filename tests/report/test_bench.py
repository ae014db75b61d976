"""segohem.report.bench, the benchmarks' shared timing and report code (the scripts themselves
run in tests/test_bench_scripts.py): interleaved timing, caller-timed rounds, the background
load note, Markdown tables and the appended report."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import torch

from segohem.report.bench import (
    BackgroundLoad,
    interleaved,
    iqr_pct,
    measurement,
    parse_args,
    report,
    table,
)


def test_interleaved_times_every_call_in_every_round() -> None:
    calls = {"a": 0, "b": 0}

    def bump(name: str) -> None:
        calls[name] += 1

    results = interleaved({"a": lambda: bump("a"), "b": lambda: bump("b")}, rounds=3)
    assert list(results) == ["a", "b"]
    assert all(m.median > 0 and m.task_spec.description == name for name, m in results.items())
    assert calls["a"] >= 6 and calls["b"] >= 6  # per round: a warm-up call and a timed block


def test_measurement_of_caller_timed_rounds() -> None:
    m = measurement("step", [2.0, 4.0, 6.0, 8.0], per_round=2)  # 2 units per round
    assert m.median == pytest.approx(2.5)  # the median round, per unit
    assert iqr_pct(m) == pytest.approx(100 * m.iqr / m.median)


def test_background_load_note() -> None:
    note = BackgroundLoad().note()
    assert re.fullmatch(r"background CPU load during the run: \d+% of \d+ CPUs; loadavg "
                        r"[\d.]+ [\d.]+ [\d.]+( -- WARNING: .*)?", note), note


def test_table_is_markdown_with_the_first_column_left_aligned() -> None:
    lines = table([{"name": "x", "ms": "1.50"}, {"name": "longer", "ms": "10.00"}]).splitlines()
    assert lines[0].split("|")[1:3] == [" name   ", "    ms "]
    assert lines[1].startswith("|:-") and lines[1].endswith("-:|")
    assert lines[2:] == ["| x      |  1.50 |", "| longer | 10.00 |"]


def test_parse_args_and_report_append_to_the_markdown_file(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    args = parse_args(parser, ["--device", "cpu", "--markdown", str(tmp_path / "r.md")])
    assert args.device == torch.device("cpu") and args.threads is None
    with pytest.raises(SystemExit):
        parse_args(argparse.ArgumentParser(), ["--device", "tpu"])
    for _ in range(2):
        report(args.device, "setup", [table([{"a": "1"}])], "verdict", args.markdown)
    text = args.markdown.read_text()
    assert text.count("| torch ") == 2 and text.count("\n\nsetup.\n\n| a   |\n") == 2
    assert text.endswith("\n\nverdict.\n") and "cpu: " in text
    assert f"appended Markdown to {args.markdown}" in capsys.readouterr().out
