"""``apt-video train``: prompt-tune VideoMAE from a preset, a config file and ``--set`` overrides."""
from __future__ import annotations

import argparse

from apt_video.config import PRESETS, load_config
from apt_video.errors import UserError
from apt_video.holdout import folder_config

from .argtypes import add_layout_arguments, add_progress_argument, layout_sets, share, show_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from apt_video.train import train  # the job: PyTorch and DALI

    if (args.data is None) == (args.data_root is None):
        raise UserError("give --data FOLDER (class folders of one's own videos) or --data-root (list files or "
                        "an official layout), one of the two")
    sets = folder_config(args.data is not None, args.val_split, args.test_split) + args.set + layout_sets(args)
    cfg = load_config(args.preset, args.config, sets)
    try:
        result = train(cfg, args.data or args.data_root, args.output, args.finetune, args.resume,
                       progress=show_progress(args), overwrite=args.overwrite)
    except FloatingPointError as exc:  # a non-finite loss: the run stops, its best checkpoint kept
        raise UserError(str(exc)) from None
    if test := result.get("test"):
        print(f"test: top-1 {test['top1']:.2f}  top-5 {test['top5']:.2f}  ({test['videos']} videos, "
              f"{test['views']} views)")
    return 0
