"""docker/: the image's entrypoint hands apt-video's subcommands to apt-video and runs programs as
given (torchrun, python, ray), without a list of subcommands of its own to keep in step."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apt_video.cli import SUBCOMMANDS

ENTRYPOINT = Path(__file__).resolve().parent.parent / "docker" / "entrypoint.sh"


def run(*args):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_goes_to_apt_video(command):
    out = run(command, "--help")  # `export` is also a shell builtin: it still goes to apt-video
    assert out.returncode == 0 and f"usage: apt-video {command}" in out.stdout, out.stderr


def test_programs_options_and_nothing():
    assert run("python", "-c", "print('as given')").stdout.strip() == "as given"
    assert run("--version").stdout.startswith("apt-video ")
    assert "usage: apt-video" in run().stderr  # the image's CMD is --help
    typo = run("scroe")
    assert typo.returncode == 2 and "invalid choice: 'scroe'" in typo.stderr
