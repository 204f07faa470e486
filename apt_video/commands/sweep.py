"""``apt-video sweep``: one training run per value of the varied keys, then the plot (the paper's
ablations: ``--vary prompt_dropout=0,0.1,0.2``, ``--vary aa=...``, ``--vary weight_decay=...``)."""
from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from apt_video.config import PRESETS

    p.add_argument("--preset", choices=PRESETS)
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed overrides")
    p.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="values to sweep (repeatable: the runs are the cartesian product)")
    p.add_argument("--data-root", required=True)
    p.add_argument("--output", "-o", required=True, help="sweep folder: one run folder per combination")
    p.add_argument("--finetune", help="pretrained weights for every run")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from apt_video.errors import UserError
    from apt_video.config import ConfigError, load_config
    from apt_video.plot import plot_runs
    from apt_video.train import train

    axes = []
    for item in args.vary:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise UserError(f"--vary {item!r}: expected key=v1,v2,...")
        axes.append([(key.strip(), v) for v in values.split(",")])
    combos = list(itertools.product(*axes))
    configs = []
    try:  # validate every combination before the first run starts
        for combo in combos:
            configs.append(load_config(args.preset, args.config, args.set + [f"{k}={v}" for k, v in combo]))
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    out, runs = Path(args.output), []
    for combo, cfg in zip(combos, configs):
        name = "_".join(f"{k}={re.sub(r'[^A-Za-z0-9.+-]', '-', v)}" for k, v in combo)
        print(f"sweep: {name}")
        train(cfg, args.data_root, out / name, args.finetune, resume="auto", progress=not args.no_progress)
        runs.append(out / name)
    fig = out / "sweep.png"
    plot_runs(runs, fig, title=", ".join(k for k, _ in combos[0]))
    print(f"wrote {fig}")
    return 0
