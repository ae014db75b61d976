"""Fixtures of the loss tests."""

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def walkthrough() -> dict:
    """The worked OhemCELoss example (thresh 0.7: 32 valid, n_min 2, 28 hard, loss 1.3311);
    notebooks/01_ohem_explained reads the same file."""
    return json.loads((FIXTURES / "ohem_walkthrough.json").read_text())
