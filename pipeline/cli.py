"""The ``apt-video`` command line: one entry point, one subcommand per job.

Each subcommand lives in the module that owns the job; this file only wires arguments to them and
imports the heavy modules lazily, so ``apt-video --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

# DALI's own auto_aug module still calls operators by their deprecated experimental names
warnings.filterwarnings("ignore", message=".*is now deprecated", category=DeprecationWarning)

# subcommand -> (module, help); each module defines add_arguments(parser) and run(args) -> int
SUBCOMMANDS = {
    "models": ("pipeline.commands.models_cmd", "list the registered architectures with parameter counts"),
    "probe": ("pipeline.commands.probe_cmd", "probe a dataset into a manifest (bad files named), or transcode it"),
    "synth": ("pipeline.commands.synth_cmd", "write a synthetic motion-direction dataset"),
    "train": ("pipeline.commands.train_cmd", "prompt-tune VideoMAE (presets, resume, torchrun)"),
    "sweep": ("pipeline.commands.sweep_cmd", "one training run per value of the varied keys, then the plot"),
    "export": ("pipeline.commands.export_cmd", "fold prompts into a verified ONNX graph and a TensorRT engine"),
    "score": ("pipeline.commands.score_cmd", "score folders of videos with an exported engine, rows to CSV/JSONL"),
    "demo": ("pipeline.commands.demo_cmd", "the whole job on synthetic data: train, prompt-tune, export, score"),
    "bench": ("pipeline.commands.bench_cmd", "benchmarks against named baselines (loader, infer, train, score)"),
    "plot": ("pipeline.commands.plot_cmd", "plot top-1, top-5 and validation loss of runs against epoch"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apt-video",
        description="Attention Prompt Tuning of VideoMAE: DALI training, ONNX/TensorRT export, scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UserError as exc:
        print(f"apt-video {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"apt-video {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""


if __name__ == "__main__":
    sys.exit(main())
