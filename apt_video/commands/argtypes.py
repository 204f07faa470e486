"""Argument types with range checks (a bad number is refused by argparse, naming the option), and the
groups of arguments that commands share or that read as one idea (score's Ray options, export's
graph and engine options)."""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from apt_video import models
from apt_video.config import PRESETS, load_config
from apt_video.pipeline.datasets import PARTS


def _number(kind, low: float, inclusive: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < low or (value == low and not inclusive) or value != value:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, True, "at least 1")
nonneg_int = _number(int, 0, True, "0 or more")
positive_float = _number(float, 0.0, False, "greater than 0")
nonneg_float = _number(float, 0.0, True, "0 or more")


def batch_profile(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch {text!r}: expected MIN:OPT:MAX, e.g. 1:30:60") from None
    if not 1 <= lo <= opt <= hi:
        raise argparse.ArgumentTypeError(f"--batch {text!r}: need 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


def opset(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or not 18 <= int(text) <= 23:
        raise argparse.ArgumentTypeError(f"{text!r}: choose 18 to 23 (PyTorch's exporter writes opset 18 or newer)")
    return int(text)


def comma_list(module: str, name: str):
    """An argument type: comma-separated values, each one of ``module.name`` (imported when the
    option is parsed, so that ``--help`` stays light); returns them comma-joined, spaces dropped."""
    def parse(text: str) -> str:
        allowed = tuple(getattr(importlib.import_module(module), name))
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{(bad or [text])[0]!r}: choose from {', '.join(allowed)} "
                                             f"(comma-separated)")
        return ",".join(values)
    parse.__name__ = "list"
    return parse


def add_layout_arguments(p: argparse.ArgumentParser, part: str | None = None) -> None:
    """``--split N`` and ``--splits DIR`` (an official dataset layout: UCF101, HMDB51, Kinetics),
    and ``--part`` where a command reads one part of it."""
    p.add_argument("--split", type=positive_int, help="read DATA as an official dataset layout (UCF101, HMDB51, "
                   "Kinetics), split N (Kinetics: 1)")
    p.add_argument("--splits", metavar="DIR", help="folder of the official split files (default: found inside or "
                   "beside the dataset folder)")
    if part:
        p.add_argument("--part", choices=PARTS, default=part,
                       help=f"with --split: which part (default {part}; val is UCF101's and HMDB51's test list)")


def layout_of(args: argparse.Namespace) -> dict | None:
    """The ``layout`` keywords of ``open_dataset`` from ``add_layout_arguments``' options."""
    if not args.split:
        return None
    return {"split": args.split, "part": getattr(args, "part", "train"), "splits": args.splits}


def layout_sets(args: argparse.Namespace) -> list[str]:
    """``--set`` items for the config keys ``split`` and ``splits`` of ``add_layout_arguments``."""
    return ([f"split={args.split}"] if args.split else []) + ([f"splits={args.splits}"] if args.splits else [])


def views(text: str) -> tuple[int, int]:
    try:
        s, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--views {text!r}: expected SEGMENTSxCROPS, e.g. 10x3") from None
    if s < 1 or c < 1:
        raise argparse.ArgumentTypeError(f"--views {text!r}: both numbers must be >= 1")
    return s, c


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (there are none either when stderr is not a terminal: a log file, a pipe)")


def show_progress(args: argparse.Namespace) -> bool:
    """Bars only for a person watching: not asked away, and stderr a terminal (a redirected log
    would fill with carriage-return frames)."""
    return not args.no_progress and sys.stderr.isatty()


def share(text: str) -> float:
    """A share in [0, 1): ``0.1``, ``1e-1``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a share such as 0.1)") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1)")
    return value


def add_downloaded_arguments(p: argparse.ArgumentParser) -> None:
    """``--preset`` and ``--classes``: what a downloaded model's files do not say (``card_fill``)."""
    p.add_argument("--preset", choices=PRESETS,
                   help="a downloaded model (Hugging Face or VideoMAE .pth): sample and view its clips as this "
                        "preset does (sampling rate, sampler, test views); default: VideoMAE's dense 16x4, 10x3")
    p.add_argument("--classes", metavar="FILE",
                   help="a downloaded model's class names: one per line, or 'INDEX NAME' lines as in classInd.txt "
                        "(default: Hugging Face's id2label; a .pth has none: class_0, class_1, ...)")


def card_fill(args: argparse.Namespace):
    """The ``models.CardFill`` of ``--preset`` and ``--classes`` (None when neither is given); an
    error naming the file or preset when one cannot be read."""
    if args.preset is None and args.classes is None:
        return None
    clip = load_config(preset=args.preset).clip if args.preset else None
    classes = tuple(models.read_class_names(args.classes)) if args.classes else None
    return models.CardFill(clip, classes)


def add_pretrained_argument(p: argparse.ArgumentParser) -> None:
    """``--pretrained`` (``--finetune``, train's name for it) of export and score."""
    p.add_argument("--pretrained", "--finetune", dest="pretrained", metavar="WEIGHTS",
                   help="the backbone of weights that hold only trained tensors (default: the one their card "
                        "names; --finetune: the same option, train's name)")


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    """score's Ray Data options (``ray_options``)."""
    ray = p.add_argument_group("Ray Data (--engine ray; install apt-video[ray])")
    ray.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="local: this process (or each torchrun rank); ray: a Ray cluster (default local)")
    ray.add_argument("--address", help="cluster to join: auto (the one `ray start` runs here) or ray://HOST:10001 "
                                       "(default: a local cluster for this run)")
    ray.add_argument("--actors", type=positive_int, default=1, help="scoring actors, each holding the engine")
    ray.add_argument("--gpus-per-actor", type=nonneg_float,
                     help="GPUs per scoring actor (default: 1 where the cluster has GPUs, else 0)")
    ray.add_argument("--decode-cpus", type=positive_int, default=1,
                     help="decoding actors of one CPU each (CPU actors; GPU actors decode on their GPU)")


def ray_options(args: argparse.Namespace):
    from apt_video.scoring import RayOptions

    return RayOptions(args.address, args.actors, args.gpus_per_actor, args.decode_cpus)


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    """export's options for the graph and the engine: precision and calibration, the batch profile,
    opset and attention form, TensorRT's workspace and timing cache."""
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8", "fp8"], default="fp32",
                   help="int8: a graph with quantize/dequantize (Q/DQ) nodes, calibrated on real clips (ONNX "
                        "Runtime CPU, TensorRT); fp8: float8 Q/DQ graph for TensorRT on sm 8.9+ (Ada, Hopper, "
                        "Blackwell)")
    p.add_argument("--calib", help="int8/fp8: list file, manifest or folder of calibration videos (default: the "
                   "run's validation list)")
    p.add_argument("--calib-clips", type=positive_int,
                   help="int8/fp8: calibration clips (default: apt_video.exporting.CALIB_CLIPS; a quarter is held "
                        "out for verification)")
    p.add_argument("--batch-profile", "--batch", dest="batch", type=batch_profile, default=(1, 30, 60),
                   metavar="MIN:OPT:MAX",
                   help="the engine's batch sizes in clips (TensorRT optimisation profile; default 1:30:60, one or "
                        "two videos of 10x3 views). Not score's --batch, the clips of one call; --batch is the "
                        "older name of this option")
    p.add_argument("--opset", type=opset, default=23,
                   help="ONNX opset, 18 to 23 (23: the fused Attention op; default 23)")
    p.add_argument("--attention", choices=["fused", "matmul"],
                   help="attention form (default: fused at opset >= 23 when the installed TensorRT, if any, "
                        "is 10.14 or newer; else matmul)")
    p.add_argument("--workspace", dest="workspace_gb", type=positive_float, default=4.0,
                   help="TensorRT workspace in GB")
    p.add_argument("--timing-cache", help="TensorRT timing cache file, read and updated")
