"""Fixtures shared by every folder of the suite; folder-specific ones live in the folder's own
conftest.py (tests/losses/, tests/cli/). Plain helpers (data builders, reference losses, config
composition) are the modules of tests/_support, imported as ``tests._support.<module>``."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile("ci")
