"""segohem.report.run_log: JSON-lines run logs read as jobs (set filter, tag prefixes, % or
fractions, failed runs kept and named, clear errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segohem.report.jobs import SweepError
from segohem.report.run_log import read_run_log


def write_log(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(tag: str, set_name: str | None, seed: int, overrides: list[str], miou: float,
        iou: dict[str, float], rc: int = 0) -> dict:
    r = {"tag": tag, "seed": seed, "overrides": overrides, "rc": rc, "mIoU": miou, "IoU": iou}
    if set_name:
        r["set"] = set_name
    return r


def test_runs_of_one_set_with_their_variant_overrides(tmp_path: Path) -> None:
    log = write_log(tmp_path / "runs.jsonl", [
        row("s0_a_default", "a", 0, [], 0.8, {"bg": 0.9, "x": 0.7}),
        row("s0_a_rcs", "a", 0, ["data.sampler=rare_class"], 0.6, {"bg": 0.9, "x": 0.3}),
        row("s0_b_default", "b", 0, [], 0.5, {"bg": 0.9, "y": 0.1}),
        row("s1_a_ce", "a", 1, ["loss=ce", "trainer.enable_progress_bar=false"], 0.4,
            {"bg": 0.8, "x": 0.0}, rc=1),
    ])
    runs, failed = read_run_log(log, "a")
    assert [r.name for r in runs] == ["s0_a_default", "s0_a_rcs"]
    assert runs[1].overrides == {"data.sampler": "rare_class", "seed": "0"}
    assert runs[0].result["IoU"] == {"bg": 0.9, "x": 0.7} and runs[0].result["mIoU"] == 0.8
    assert failed == [{"job": "s1_a_ce", "log": "rc 1, no mIoU"}]
    runs, _ = read_run_log(log, "a", tags="s0_a_r,nothing")
    assert [r.name for r in runs] == ["s0_a_rcs"]


def test_older_logs_in_percent_with_the_set_in_the_dataset_root(tmp_path: Path) -> None:
    old = row("cs_ce_s1", None, 0, ["dataset=folder", "dataset.root=/work/heldout/cracks_soft",
                                  "loss=ce", "seed=1"], 81.4, {"bg": 97.4, "crack": 72.8})
    del old["seed"]  # the older logs keep the seed among the overrides only
    log = write_log(tmp_path / "old.jsonl", [old])
    (run,), failed = read_run_log(log)
    assert failed == [] and run.overrides == {"loss": "ce", "seed": "1"}
    assert run.result["mIoU"] == pytest.approx(0.814)
    assert run.result["IoU"]["crack"] == pytest.approx(0.728)
    assert read_run_log(log, "cracks_soft")[0][0].name == "cs_ce_s1"


def test_clear_errors(tmp_path: Path) -> None:
    log = write_log(tmp_path / "runs.jsonl", [
        row("x", "a", 0, [], 0.8, {"bg": 0.9}), row("y", "b", 0, [], 0.8, {"bg": 0.9})])
    with pytest.raises(SweepError, match=r"several sets \['a', 'b'\]; choose one with --set"):
        read_run_log(log)
    with pytest.raises(SweepError, match="no run on set 'c'"):
        read_run_log(log, "c")
    with pytest.raises(SweepError, match="no such run log"):
        read_run_log(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"tag": "x"}\n{oops\n')
    with pytest.raises(SweepError, match=r"bad.jsonl:2: not a JSON line"):
        read_run_log(tmp_path / "bad.jsonl")


def test_several_logs_are_read_together(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a.jsonl", [row("x_final_s0", "s", 0, [], 0.8, {"bg": 0.9})])
    b = write_log(tmp_path / "b.jsonl", [row("s0_x_rcs", "s", 0, ["data.sampler=rare_class"],
                                             0.7, {"bg": 0.9}),
                                         row("other", "t", 0, [], 0.5, {"bg": 0.9})])
    runs, _ = read_run_log([a, b], "s")
    assert [r.name for r in runs] == ["x_final_s0", "s0_x_rcs"]
    with pytest.raises(SweepError, match=r"a.jsonl, .*b.jsonl: no run on set 'u'"):
        read_run_log([a, b], "u")
