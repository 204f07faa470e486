"""``apt-video demo``: the whole job on built-in synthetic data, CPU only (``apt_video.demo``)."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", default="demo-work", help="folder for everything the demo creates")
    p.add_argument("--quick", action="store_true", help="a reduced run (fewer videos and epochs) for tests")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from apt_video.demo import run_demo

    run_demo(args.work, quick=args.quick, progress=not args.no_progress)
    return 0
