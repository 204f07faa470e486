"""``apt-video bench startup``: how long the command line takes to answer ``--help`` and a wrong
argument, against the bare interpreter and ``import torch`` (what the lazy imports keep off that
path) in the same run. Each command is a fresh process, timed whole; the median of ``runs``."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

#: (label, arguments of ``python``): the baselines first, then the command line's answers
COMMANDS = (
    ("python (bare interpreter)", ["-c", "pass"]),
    ("python -c 'import torch'", ["-c", "import torch"]),
    ("apt-video --help", ["-m", "apt_video.cli", "--help"]),
    ("apt-video score --help", ["-m", "apt_video.cli", "score", "--help"]),
    ("apt-video train --help", ["-m", "apt_video.cli", "train", "--help"]),
    ("apt-video synth --help", ["-m", "apt_video.cli", "synth", "--help"]),
    ("apt-video score (argument error)", ["-m", "apt_video.cli", "score"]),
)


def _seconds(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_startup(work, runs: int = 5) -> dict:
    """Median wall seconds of each of ``COMMANDS`` over ``runs`` fresh processes (one untimed run
    first, so the files are in the page cache); the ratio is the worst command-line answer over
    ``import torch``."""
    res: dict = {"runs": runs, "commands": {}}
    for label, args in COMMANDS:
        _seconds(args)
        res["commands"][label] = float(np.median([_seconds(args) for _ in range(runs)]))
    answers = {k: v for k, v in res["commands"].items() if k.startswith("apt-video")}
    worst = max(answers, key=answers.get)
    res.update(slowest=worst, baseline="python -c 'import torch'",
               ratio=answers[worst] / res["commands"]["python -c 'import torch'"])
    for label, secs in res["commands"].items():
        print(f"startup {label:34s} {secs:6.2f} s")
    print(f"startup: the slowest answer ({worst}) takes {res['ratio']:.2f}x the time of importing torch")
    return res
