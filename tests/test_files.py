"""segohem.files: atomic writes (a failed write keeps the old file; stale temp files go)."""

import json

import pytest

from segohem.files import atomic_write, write_json


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
