"""``apt-video sweep``: one training run per value of the varied keys, then the plot (the paper's
ablations: ``--vary prompt_dropout=0,0.1,0.2``, ``--vary aa=...``, ``--vary weight_decay=...``)."""
from __future__ import annotations

import argparse

from apt_video.config import PRESETS
from apt_video.errors import UserError

from .argtypes import add_layout_arguments, add_progress_argument, layout_sets, show_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=PRESETS)
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed overrides")
    p.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="values to sweep (repeatable: the runs are the cartesian product)")
    add_layout_arguments(p)
    p.add_argument("--data-root", required=True)
    p.add_argument("--output", "-o", required=True, help="sweep folder: one run folder per combination")
    p.add_argument("--pretrained", "--finetune", dest="finetune", metavar="WEIGHTS",
                   help="the backbone every run tunes (--finetune: the same option, VideoMAE's name)")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    from apt_video.tools.sweep import sweep  # the job: PyTorch and DALI

    try:
        fig = sweep(args.vary, args.data_root, args.output, preset=args.preset, config=args.config,
                    sets=args.set + layout_sets(args),
                    finetune=args.finetune, progress=show_progress(args))
    except FloatingPointError as exc:  # a run's non-finite loss
        raise UserError(str(exc)) from None
    print(f"wrote {fig}, {fig.parent / 'summary.csv'} and {fig.parent / 'summary.png'}")
    return 0
