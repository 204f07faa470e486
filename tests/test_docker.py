"""docker/: the image's entrypoint hands apt-video's subcommands (and options, and nothing) to
apt-video and runs anything else as given (torchrun, python, a script, a shell builtin), reading the
subcommands from apt-video itself."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apt_video.cli import SUBCOMMANDS

ENTRYPOINT = Path(__file__).resolve().parent.parent / "docker" / "entrypoint.sh"


def run(*args, cwd=None):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_goes_to_apt_video(command):
    out = run(command, "--help")  # `export` is also a shell builtin: it still goes to apt-video
    assert out.returncode == 0 and f"usage: apt-video {command}" in out.stdout, out.stderr


def test_options_and_nothing_go_to_apt_video():
    assert run("--version").stdout.startswith("apt-video ")
    assert "usage: apt-video" in run().stderr  # the image's CMD is --help


def test_anything_else_runs_as_given(tmp_path):
    assert run("python", "-c", "print('as given')").stdout.strip() == "as given"
    assert run("echo", "a builtin").stdout.strip() == "a builtin"
    (tmp_path / "job.sh").write_text("#!/bin/sh\necho a script\n")
    (tmp_path / "job.sh").chmod(0o755)
    assert run("./job.sh", cwd=tmp_path).stdout.strip() == "a script"
    assert run("no-such-program").returncode == 127
