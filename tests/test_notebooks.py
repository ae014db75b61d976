"""The teaching notebooks in notebooks/: each ``NN_name.py`` (jupytext percent format) is the
source of the paired ``NN_name.ipynb``, which holds the same cells and is stored without
outputs; and each notebook runs top to bottom.

After editing a ``.py`` source: ``jupytext --sync notebooks/*.py`` rewrites the ``.ipynb``.

The slow tests execute every notebook with nbclient in the ``python3`` kernel (ipykernel of
the interpreter running pytest; jupyter_client replaces the kernelspec's ``python`` with
``sys.executable``) with the notebook's folder as working directory, as Jupyter would.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
SOURCE_FILES = sorted(NOTEBOOKS.glob("*.py"))
EXPECTED = ("01_ohem_explained.ipynb", "02_train_and_inspect.ipynb", "03_sweep_analysis.ipynb")
# A hang detector, not a speed check: the sweep cell of 03 takes ~3 min on a 2-core CI machine,
# more while other xdist workers start subprocesses (timed out at 300 s on a loaded machine).
CELL_TIMEOUT_S = 600


def test_expected_notebooks_exist():
    assert {p.name for p in NOTEBOOK_FILES} >= set(EXPECTED)
    assert {p.name for p in SOURCE_FILES} >= {Path(n).with_suffix(".py").name for n in EXPECTED}


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    """No outputs, no execution counts, no widget state: diffs stay readable and small."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: widget state in metadata"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            assert "outputs" not in cell and "execution_count" not in cell, (path.name, i)
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs"
        assert cell.get("execution_count") is None, f"{path.name} cell {i} has a count"
        assert "widgets" not in cell.get("metadata", {}), (path.name, i)


def test_every_notebook_has_its_source_and_vice_versa():
    assert {p.stem for p in SOURCE_FILES} == {p.stem for p in NOTEBOOK_FILES}


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.name)
def test_notebook_matches_its_source(source):
    """The stored .ipynb holds the cells of its jupytext source: same types, same text, same
    order, and the pairing is declared in the source's header."""
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")

    text = jupytext.read(source)
    assert text.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{source.name}: header lacks `formats: ipynb,py:percent`")
    assert text.metadata.get("kernelspec", {}).get("name") == "python3", source.name
    stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert stored.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{source.with_suffix('.ipynb').name}: no python3 kernelspec")
    expected = [(c.cell_type, c.source) for c in text.cells]
    actual = [(c.cell_type, c.source) for c in stored.cells]
    assert actual == expected, (
        f"{source.with_suffix('.ipynb').name} differs from {source.name}: "
        "run `jupytext --sync notebooks/*.py` after editing the .py source")


def kernel_env(tmp_dir: Path) -> dict[str, str]:
    """The kernel's environment: one intra-op thread unless OMP_NUM_THREADS is set, and
    ``TMPDIR`` in pytest's temporary folder, so the run directories the notebooks create with
    ``tempfile`` (checkpoints, a whole sweep: ~150 MB) are cleaned up like any ``tmp_path``.

    On a 2-core runner shared with other processes, torch's OpenMP workers spin-wait for
    each other and a 2-thread training step was ~7x slower than a 1-thread one (measured);
    on an idle machine 1 thread costs ~1.5x. One thread keeps the run time predictable.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TMPDIR"] = str(tmp_dir)
    return env


@pytest.mark.slow
@pytest.mark.timeout(3 * CELL_TIMEOUT_S)
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute(env=kernel_env(tmp_path))
    elapsed = time.perf_counter() - start
    print(f"{name}: {elapsed:.0f} s")
    errors = [o for cell in nb.cells if cell.cell_type == "code"
              for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    images = sum("image/png" in o.get("data", {}) for cell in nb.cells
                 if cell.cell_type == "code" for o in cell.outputs)
    assert images >= 3, f"{name}: only {images} figures"
