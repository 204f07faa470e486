"""``apt-video train``: prompt-tune VideoMAE from a preset, a config file and ``--set`` overrides."""
from __future__ import annotations

import argparse

from .argtypes import add_layout_arguments, add_progress_argument, layout_sets, share, show_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    from apt_video.config import PRESETS

    p.add_argument("--preset", choices=PRESETS, help="the paper's settings (configs/<preset>.yaml)")
    p.add_argument("--config", help="YAML file of config keys, applied after the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key (repeatable), e.g. --set prompt_num_tokens=100")
    add_layout_arguments(p)
    p.add_argument("--data-root", help="folder holding the list files and the videos")
    p.add_argument("--data", metavar="FOLDER",
                   help="a folder of one's own videos in class folders (FOLDER/<class>/*.mp4): the classes are its "
                        "folders, and validation and test videos are held out of it (--val-split, --test-split)")
    p.add_argument("--val-split", type=share, metavar="SHARE",
                   help="share of each class's videos held out for validation, seeded (default 0.1 with --data)")
    p.add_argument("--test-split", type=share, metavar="SHARE",
                   help="share held out for the final test (default 0.1 with --data); the split is kept in "
                        "RUN/holdout/, so --resume keeps it")
    p.add_argument("--output", "-o", required=True, help="run folder (config, metrics, checkpoints)")
    p.add_argument("--pretrained", "--finetune", dest="finetune", metavar="WEIGHTS",
                   help="the backbone to tune: VideoMAE, APT, Hugging Face or an apt-video run's weights "
                        "(--finetune is VideoMAE's name for it; both work in every command)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="'auto' (default when given without a value): continue RUN_DIR's last complete "
                        "epoch if there is one; or a state file")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a folder that holds a run (its checkpoints and metrics are removed)")
    add_progress_argument(p)


def data_sets(args: argparse.Namespace) -> list[str]:
    """The config keys ``--data``, ``--val-split`` and ``--test-split`` stand for (before ``--set``,
    which may still change them): the folder is the training part, its class folders the classes."""
    sets = [f"{key}={value}" for key, value in (("val_split", args.val_split), ("test_split", args.test_split))
            if value is not None]
    if args.data is None:
        return sets
    shares = [f"val_split={0.1 if args.val_split is None else args.val_split}",
              f"test_split={0.1 if args.test_split is None else args.test_split}"]
    return ["nb_classes=0", "train_list=.", "val_list=''", "test_list=''", *shares]


def run(args: argparse.Namespace) -> int:
    from apt_video import models
    from apt_video.config import ConfigError, load_config
    from apt_video.errors import UserError
    from apt_video.pipeline.data import DataError
    from apt_video.train import train

    if (args.data is None) == (args.data_root is None):
        raise UserError("give --data FOLDER (class folders of one's own videos) or --data-root (list files or "
                        "an official layout), one of the two")
    try:
        cfg = load_config(args.preset, args.config, data_sets(args) + args.set + layout_sets(args))
        result = train(cfg, args.data or args.data_root, args.output, args.finetune, args.resume,
                       progress=show_progress(args), overwrite=args.overwrite)
    except (ConfigError, DataError, models.CheckpointError, FloatingPointError) as exc:
        raise UserError(str(exc)) from None
    test = result.get("test")
    if test:
        print(f"test: top-1 {test['top1']:.2f}  top-5 {test['top5']:.2f}  ({test['videos']} videos, "
              f"{test['views']} views)")
    return 0
