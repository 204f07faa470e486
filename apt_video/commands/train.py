"""``apt-video train``: prompt-tune VideoMAE from a preset, a config file and ``--set`` overrides."""
from __future__ import annotations

import argparse

from .argtypes import add_layout_arguments, layout_sets


def add_arguments(p: argparse.ArgumentParser) -> None:
    from apt_video.config import PRESETS

    p.add_argument("--preset", choices=PRESETS, help="the paper's settings (configs/<preset>.yaml)")
    p.add_argument("--config", help="YAML file of config keys, applied after the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key (repeatable), e.g. --set prompt_num_tokens=100")
    add_layout_arguments(p)
    p.add_argument("--data-root", required=True, help="folder holding the list files and the videos")
    p.add_argument("--output", "-o", required=True, help="run folder (config, metrics, checkpoints)")
    p.add_argument("--finetune", help="pretrained weights: VideoMAE, APT, Hugging Face or an apt-video run's")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="'auto' (default when given without a value): continue RUN_DIR's last complete "
                        "epoch if there is one; or a state file")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a folder that holds a run (its checkpoints and metrics are removed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from apt_video import models
    from apt_video.config import ConfigError, load_config
    from apt_video.errors import UserError
    from apt_video.pipeline.data import DataError
    from apt_video.train import train

    try:
        cfg = load_config(args.preset, args.config, args.set + layout_sets(args))
        result = train(cfg, args.data_root, args.output, args.finetune, args.resume,
                       progress=not args.no_progress, overwrite=args.overwrite)
    except (ConfigError, DataError, models.CheckpointError, FloatingPointError) as exc:
        raise UserError(str(exc)) from None
    test = result.get("test")
    if test:
        print(f"test: top-1 {test['top1']:.2f}  top-5 {test['top5']:.2f}  ({test['videos']} videos, "
              f"{test['views']} views)")
    return 0
