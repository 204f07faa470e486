"""apt_video.cli: one entry point whose subcommands are listed once; what it says when its output
goes away or a file cannot be written."""
import subprocess
import sys

from apt_video.cli import SUBCOMMANDS, main


def test_the_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "apt_video.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and all(f"    {name}" in out.stdout for name in SUBCOMMANDS)


def test_a_closed_pipe_ends_quietly():
    """``apt-video models | head -1``: the reader goes away; no traceback, as any Unix tool."""
    out = subprocess.run(f"'{sys.executable}' -m apt_video.cli models | head -1", shell=True, capture_output=True,
                         text=True)
    assert out.stdout.startswith("model") and "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_a_file_that_cannot_be_written_is_one_line(tmp_path, capsys):
    """An output folder under a plain file (the OS refuses it): one line naming it, exit 2."""
    (tmp_path / "file.txt").write_text("a file, not a folder")
    code = main(["synth", str(tmp_path / "file.txt" / "data"), "--per-class", "4", "--frames", "4",
                 "--size", "16x16"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("apt-video synth: error: "), err
    assert "file.txt" in err
