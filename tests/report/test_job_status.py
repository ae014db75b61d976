"""segohem.report.job_status: reading the status.json of a killed, foreign or broken job."""

import json

from segohem.report.job_status import describe, read_job_status


def test_status_of_a_killed_or_foreign_job(tmp_path):
    assert read_job_status(tmp_path) is None and describe(None) == "no status.json"
    (tmp_path / "status.json").write_text(json.dumps(
        {"task": "train", "status": "RUNNING", "started": "2026-01-01T00:00:00+00:00"}))
    assert describe(read_job_status(tmp_path)).startswith("still running or killed")
    (tmp_path / "status.json").write_text("{not json")
    assert read_job_status(tmp_path)["status"] == "FAILED"
