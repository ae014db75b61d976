"""The built wheel holds every subpackage (found by setup.py, not listed by hand), the configs
as ``segohem.conf`` and the Hydra sweeper plugin: imported from the unpacked wheel alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the checkout's files (tracked and not ignored), so that no
    build/ or egg-info folder of the checkout is shared with another test building at once."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    source = out / "source"
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                           "--outdir", str(out), str(source)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = out.glob("segohem-*.whl")
    return path


def test_wheel_has_every_package_and_the_configs(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "segohem").rglob("*.py")}
    assert on_disk and on_disk <= names, sorted(on_disk - names)
    configs = {p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert {f"segohem/conf/{c}" for c in configs} <= names
    assert "hydra_plugins/segohem_sweeper/optuna_sweeper.py" in names
    assert not any(n.startswith(("tests/", "scripts/")) or "__pycache__" in n for n in names)

    # Every subpackage imports from the unpacked wheel alone (not from the checkout).
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    packages = ["segohem.cli.train", "segohem.config.compose", "segohem.train.run",
                "segohem.train.callbacks", "segohem.losses", "segohem.data.heldout",
                "segohem.infer.predict.formats", "segohem.infer.export.formats",
                "segohem.sweep.workers", "segohem.report.sweep_summary",
                "hydra_plugins.segohem_sweeper.optuna_sweeper"]
    code = ("import importlib, segohem, segohem.conf\n"
            f"for name in {packages!r}: importlib.import_module(name)\n"
            "print(segohem.__file__)\n"
            "from segohem.config.compose import compose_config\n"
            "print(compose_config('train', ['loss=ohem']).loss._target_)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    where, target = done.stdout.split()[-2:]
    assert Path(where).is_relative_to(tmp_path / "site")
    assert target == "segohem.losses.OhemCELoss"
