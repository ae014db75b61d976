"""segohem.report (metrics.json schema, writer, reader) and segohem.files (atomic writes)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from segohem.files import atomic_write, write_json
from segohem.report import (
    METRICS_FILE,
    metrics_summary,
    read_report,
    training_report,
    validated_epoch,
    write_report,
)


def test_write_json_is_atomic_and_cleans_stale_temp_files(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"x": 1})
    stale = target.with_name(".a.json.999.tmp")
    stale.write_text("left by a killed writer")
    write_json(target, {"x": 2})
    assert target.read_text() == '{\n  "x": 2\n}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = write_json(tmp_path / "a.json", {"x": 1})

    def broken(fh):
        fh.write(b"{partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_report_round_trip_by_directory_or_file(tmp_path):
    last = {"epoch": 1, "step": 8, "mIoU": 0.5}
    report = training_report(last, last, mining={})
    assert report == {"last": last, "best": last}  # no empty "mining"
    assert write_report(tmp_path, report) == tmp_path / METRICS_FILE
    assert read_report(tmp_path) == read_report(tmp_path / METRICS_FILE) == report
    mining = {"run": {"fallback_rate": 0.25}}
    assert training_report({}, {}, mining)["mining"] == mining


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2]"])
def test_read_report_of_a_missing_or_broken_file_is_empty(tmp_path, content):
    if content is not None:
        (tmp_path / METRICS_FILE).write_text(content)
    assert read_report(tmp_path) == {}


def test_validated_epoch_needs_an_miou():
    report = {"best": {"epoch": 0, "mIoU": 0.4}, "last": {"epoch": 1, "mIoU": None}}
    assert validated_epoch(report) == {"epoch": 0, "mIoU": 0.4}
    assert validated_epoch(report, "last") is None
    assert validated_epoch({"best": {}}) is None
    assert validated_epoch({}) is None


def test_metrics_summary_names_classes_and_turns_nan_into_null():
    nan = float("nan")
    results = {"mIoU": torch.tensor(0.5), "mAcc": torch.tensor(0.75), "aAcc": torch.tensor(0.9),
               "IoU": torch.tensor([1.0, nan]), "Acc": torch.tensor([0.5, nan])}
    summary = metrics_summary(results, ["a", "b"])
    assert summary == {"mIoU": 0.5, "mAcc": 0.75, "aAcc": pytest.approx(0.9),
                       "IoU": {"a": 1.0, "b": None}, "Acc": {"a": 0.5, "b": None}}
    assert not any(isinstance(v, float) and math.isnan(v) for v in summary["IoU"].values())
