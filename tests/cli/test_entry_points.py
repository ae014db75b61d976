"""The commands: thin entry points in segohem/cli/, importable without torch, run as
``segohem-<cmd>`` or ``python -m segohem.cli.<cmd>`` (no alias modules elsewhere), and every
job's outcome in its ``status.json``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from segohem.report.job_status import describe, read_job_status

COMMANDS = ("train", "eval", "predict", "export", "heldout")


@pytest.mark.parametrize("command", COMMANDS)
def test_entry_point_is_thin_and_light(command):
    code = (f"import sys, segohem.cli.{command}; "
            "print('torch' in sys.modules, 'lightning' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr
    source = importlib.util.find_spec(f"segohem.cli.{command}").origin
    assert len(Path(source).read_text().splitlines()) <= 45
    help_ = subprocess.run([sys.executable, "-m", f"segohem.cli.{command}", "--help"],
                           capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and help_.stdout.strip(), help_.stderr


def test_no_alias_modules_outside_cli():
    """``python -m segohem.<cmd>`` forms live in cli/ only: no 6-line modules that re-export
    an entry point (segohem.train is the training package now, not an alias)."""
    package = Path(importlib.util.find_spec("segohem").origin).parent
    for path in package.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        text = path.read_text()
        assert "from segohem.cli" not in text or len(text.splitlines()) > 15, path
    for command in ("eval", "predict", "export"):
        assert importlib.util.find_spec(f"segohem.{command}") is None
    assert importlib.util.find_spec("segohem.train").submodule_search_locations


def test_a_failed_job_records_its_error_in_status_json(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "segohem.cli.eval", f"ckpt_path={tmp_path / 'missing.ckpt'}",
         f"hydra.run.dir={run_dir}"], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    status = read_job_status(run_dir)
    assert status["task"] == "eval" and status["status"] == "FAILED"
    assert status["ended"] and status["return_value"] is None
    assert "missing.ckpt" in status["error"]["message"]
    assert "Traceback" in status["error"]["traceback"]
    assert describe(status).startswith(status["error"]["type"] + ": ")
    assert f"ckpt_path={tmp_path / 'missing.ckpt'}" in status["overrides"]
    # the traceback also lands in the job's log file, once
    log = (run_dir / "eval.log").read_text()
    assert log.count("eval failed: " + status["error"]["type"]) == 1
