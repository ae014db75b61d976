"""Running a segohem command in a subprocess, as a user would, in the command tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def assert_fails_on_corrupt_checkpoint(args: list[str], bad: Path, command: str) -> None:
    """``args`` (``[python, -m, segohem.cli.<cmd>, ckpt_path=..., ...]``) rerun with ``bad`` as
    the checkpoint end with one error line naming the file, exit 1 and no traceback."""
    done = subprocess.run([*args[:3], f"ckpt_path={bad}", *args[4:]], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert any(line.startswith(f"{command}: error: {bad}: not a readable PyTorch checkpoint")
               for line in done.stderr.splitlines()), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
