"""segohem.report.metrics_json: the metrics.json schema, its writer and reader."""

from __future__ import annotations

import math

import pytest
import torch

from segohem.report.metrics_json import (
    METRICS_FILE,
    metrics_summary,
    read_report,
    split_section,
    training_report,
    validated_epoch,
    write_report,
)


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


def test_the_data_section_names_each_class_share_of_pixels_and_images(tmp_path):
    section = split_section(["ground", "speck"], [997, 3], [10, 1], num_images=10)
    assert section == {"images": 10, "classes": {
        "ground": {"pixels": 997, "pixel_share": 0.997, "images": 10, "image_share": 1.0},
        "speck": {"pixels": 3, "pixel_share": 0.003, "images": 1, "image_share": 0.1}}}
    empty = split_section(["ground"], [0], [0], num_images=0)  # no labelled pixel, no image
    assert empty["classes"]["ground"] == {"pixels": 0, "pixel_share": 0.0, "images": 0,
                                          "image_share": 0.0}
    report = training_report({"mIoU": 0.5}, {"mIoU": 0.5}, data={"train": section})
    write_report(tmp_path, report)
    assert read_report(tmp_path)["data"]["train"] == section
    assert "data" not in training_report({}, {}, data={})
