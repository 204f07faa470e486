"""models/files: a file is replaced whole or not at all, and an output path is checked before work."""
import os

import pytest

from apt_video.models.files import atomic_path, atomic_write_text, unwritable


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["f.txt"]
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and oct(target.stat().st_mode & 0o777) == "0o644"


def test_unwritable_names_why(tmp_path):
    assert unwritable(tmp_path / "x.json") is None
    assert unwritable(tmp_path) == f"{tmp_path}: is a folder; name a file"
    assert "does not exist; create it first" in unwritable(tmp_path / "no" / "x.json")
