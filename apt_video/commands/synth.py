"""``apt-video synth OUT``: a synthetic motion-direction dataset with VideoMAE list files."""
from __future__ import annotations

import argparse

from apt_video.errors import UserError
from apt_video.pipeline.video import CODECS
from apt_video.tools.synth import SPLIT, make_motion_dataset, split_counts

from .argtypes import positive_int


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 128x96") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"--size {text!r}: width and height must be even and >= 16")
    return w, h


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder to write (videos/, train.csv, val.csv, test.csv, classes.txt)")
    p.add_argument("--classes", type=positive_int, default=4, help="motion directions (default 4)")
    p.add_argument("--per-class", type=positive_int, default=20, help="videos per class (default 20)")
    p.add_argument("--frames", type=positive_int, default=32, help="frames per video (default 32)")
    p.add_argument("--size", type=_size, default=(128, 96), help="WIDTHxHEIGHT (default 128x96)")
    p.add_argument("--codec", choices=sorted(CODECS), default="vp9", help="video codec (default vp9)")
    p.add_argument("--offset-deg", type=float, default=0.0,
                   help="direction of class 0 in degrees (45 gives the diagonals for 4 classes)")
    p.add_argument("--reverse", action="store_true",
                   help="every motion turns back half way: opposite directions differ only in their order")
    p.add_argument("--distractor", action="store_true",
                   help="the top half's direction is the class; the bottom half slides a random one of the same "
                        "directions")
    p.add_argument("--axis", action="store_true",
                   help="the class is the line of motion, either way along it (--classes lines over 180 degrees)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.axis and (args.reverse or args.distractor):
        raise UserError("--axis: the class is a line of motion, either way along it; it does not combine with "
                        "--reverse or --distractor")

    counts = split_counts(args.per_class, SPLIT)
    if min(counts) < 1:
        raise UserError(f"--per-class {args.per_class}: gives {counts[0]} train, {counts[1]} val and {counts[2]} test "
                        f"videos per class ({', '.join(f'{x:.0%}' for x in SPLIT)}); every part needs one: use "
                        f"--per-class 4 or more")
    paths = make_motion_dataset(args.out, args.classes, args.per_class, args.frames, args.size, args.codec,
                                args.offset_deg, seed=args.seed, reverse=args.reverse,
                                distractor=args.distractor, axis=args.axis)
    print(f"wrote {args.classes * args.per_class} videos to {args.out}: " + ", ".join(
        f"{k} {v.name}" for k, v in paths.items()))
    return 0
