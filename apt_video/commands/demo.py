"""``apt-video demo``: the whole job on built-in synthetic data, CPU only (``apt_video.tools.demo``)."""
from __future__ import annotations

import argparse

from .argtypes import add_progress_argument, show_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", default="demo-work", help="folder for everything the demo creates")
    p.add_argument("--quick", action="store_true", help="a reduced run for tests (fewer held-out videos)")
    p.add_argument("--seed", type=int, default=0, help="seed of task B's videos and trainings (default 0)")
    p.add_argument("--ablation", action="store_true",
                   help="also sweep prompt dropout 0, 0.1, 0.2 on task B and plot it (ablation/sweep.png)")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    from apt_video.tools.demo import run_demo  # the job: PyTorch, DALI, ONNX Runtime

    run_demo(args.work, quick=args.quick, progress=show_progress(args), seed=args.seed, ablation=args.ablation)
    return 0
