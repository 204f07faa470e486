"""``apt-video doctor``: the environment, then every check PASS, FAIL or SKIP with its reason and
figures (``apt_video.tools.doctor``); exit status 1 only when a check that could run failed."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller models and fewer videos (a minute or two)")
    p.add_argument("--json", help="write the environment and every result here")
    p.add_argument("--work", help="folder for the generated videos and graphs (default: a temporary one)")


def run(args: argparse.Namespace) -> int:
    from apt_video.tools.doctor import run_doctor

    return run_doctor(quick=args.quick, json_path=args.json, work=args.work).exit_code
