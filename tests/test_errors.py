"""apt_video.errors: the library's bad-input errors, named without being imported, each end as one
line and exit status 2 from any command."""
import importlib
import subprocess
import sys

import pytest

from apt_video.cli import main
from apt_video.errors import BAD_INPUT, UserError, is_bad_input


@pytest.mark.parametrize("module,name", BAD_INPUT)
def test_each_named_error_exists_and_counts_as_bad_input(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, Exception) and is_bad_input(cls("x"))


def test_other_errors_are_not_bad_input():
    assert is_bad_input(UserError("x"))
    assert not any(is_bad_input(e) for e in (ValueError("x"), KeyError("x"), RuntimeError("x"), OSError("x")))


def test_a_library_error_raised_under_a_command_is_one_line(tmp_path, capsys):
    """A folder of one's own videos whose class folder is empty: pipeline.data's DataError, which the
    train command does not catch itself, ends as one line naming the folder, exit 2."""
    (tmp_path / "videos" / "a").mkdir(parents=True)
    code = main(["train", "--preset", "demo", "--data", str(tmp_path / "videos"), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"apt-video train: error: {tmp_path / 'videos'}: no video files found")
    assert not (tmp_path / "run").exists()


def test_verbose_adds_where_the_error_was_raised(tmp_path):
    """-v: the same line, and before it the traceback (an error in the library's own inputs is then
    findable, not only reported)."""
    (tmp_path / "videos" / "a").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-m", "apt_video.cli", "-v", "train", "--preset", "demo", "--data",
                          str(tmp_path / "videos"), "-o", str(tmp_path / "run")], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" in out.stderr and "DataError" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("apt-video train: error: ")
