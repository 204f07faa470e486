"""``apt-video plot RUN_DIR... --out fig.png``: top-1 and losses (top-5 past 5 classes) per epoch."""
from __future__ import annotations

import argparse

from apt_video.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="training run folders (each with metrics.csv)")
    p.add_argument("--out", "-o", required=True, help="image file to write (.png, .pdf, .svg)")
    p.add_argument("--title", help="figure title")


def run(args: argparse.Namespace) -> int:
    from apt_video.tools.plot import plot_runs  # matplotlib

    try:
        plot_runs(args.runs, args.out, args.title)
    except (FileNotFoundError, ValueError) as exc:  # no such run; a figure format matplotlib lacks
        raise UserError(str(exc)) from None
    print(f"wrote {args.out}")
    return 0
