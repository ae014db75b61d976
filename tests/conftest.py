import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

FIXTURES = Path(__file__).parent / "fixtures"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile("ci")


@pytest.fixture
def walkthrough() -> dict:
    """The worked OhemCELoss example (thresh 0.7: 32 valid, n_min 2, 28 hard, loss 1.3311)."""
    return json.loads((FIXTURES / "ohem_walkthrough.json").read_text())

