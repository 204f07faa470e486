"""The ``apt-video`` command line: one entry point, one subcommand per job.

Each subcommand is a module of ``apt_video.commands`` (``add_arguments`` and ``run``); this file only
wires them up. The commands import the jobs inside ``run``, after the arguments are parsed: the jobs
load PyTorch, DALI and ONNX, which ``--help`` and an argument error should not wait for. Bad input
ends as one line and exit status 2, whichever layer names it (``errors``).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version

from .errors import is_bad_input

# DALI's own auto_aug module still calls operators by their deprecated experimental names
warnings.filterwarnings("ignore", message=".*is now deprecated", category=DeprecationWarning)

OUR_PACKAGES = ("apt_video",)  # its models, pipeline and export log under it
# subcommand -> (module, help); each module defines add_arguments(parser) and run(args) -> int
SUBCOMMANDS = {
    "models": ("apt_video.commands.models", "list the registered architectures with parameter counts"),
    "probe": ("apt_video.commands.probe", "probe a dataset into a manifest (bad files named), or transcode it"),
    "synth": ("apt_video.commands.synth", "write a synthetic motion-direction dataset"),
    "train": ("apt_video.commands.train", "prompt-tune VideoMAE (presets, resume, torchrun)"),
    "sweep": ("apt_video.commands.sweep", "one training run per value of the varied keys, then the plot"),
    "export": ("apt_video.commands.export", "fold prompts into a verified ONNX graph and a TensorRT engine"),
    "score": ("apt_video.commands.score", "score folders of videos with an exported engine, rows to CSV/JSONL"),
    "demo": ("apt_video.commands.demo", "the whole job on synthetic data: train, prompt-tune, export, score"),
    "bench": ("apt_video.commands.bench", "benchmarks against named baselines (loader, infer, train, score), "
                                          "and every GPU figure in one run (gpu)"),
    "plot": ("apt_video.commands.plot", "plot top-1, losses (top-5 past 5 classes) of runs against epoch"),
    "doctor": ("apt_video.commands.doctor", "what works on this host (GPU, NVDEC, DALI, ORT, TensorRT), how fast"),
}

#: what a command interrupted by Ctrl-C says about going on
RESUME_HINT = {"train": "the same command with --resume continues after the last complete epoch",
               "score": "the same command with --resume continues after the rows written",
               "sweep": "the same command continues (finished runs are kept, the interrupted one resumes)",
               "demo": "the same command continues with what its work folder holds"}


def _version() -> str:
    try:
        return version("apt-video")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apt-video",
        description="Attention Prompt Tuning of VideoMAE: DALI training, ONNX/TensorRT export, scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"apt-video {_version()}")
    # -v also after the command (apt-video score -v ...); SUPPRESS: absent there, the top level's value stays
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[verbose])
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # apt-video's own progress at INFO; other libraries' INFO chatter (the ONNX optimiser's
    # "Replaced initializer ..." lines) only with -v
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: what was written is whole (atomic writes); say how to go on
        hint = RESUME_HINT.get(args.command, "nothing was left half-written")
        print(f"apt-video {args.command}: interrupted; {hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `apt-video models | head`: the reader has gone, as for any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"apt-video {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # bad input the library names (errors.BAD_INPUT): one line; -v adds where
        if not is_bad_input(exc):
            raise
        logging.getLogger(__name__).debug("where the error was raised", exc_info=True)
        print(f"apt-video {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
