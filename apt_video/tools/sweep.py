"""``sweep``: one training run per combination of the varied keys, then one plot of them all (the
paper's ablations: ``prompt_dropout``, ``aa``, ``weight_decay``, ``prompt_num_tokens``)."""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Callable

from apt_video.config import ConfigError, load_config
from apt_video.train import train

from .plot import plot_runs


def parse_vary(items: list[str]) -> list[list[tuple[str, str]]]:
    """``["key=v1,v2", ...]`` -> one list of ``(key, value)`` per key."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ConfigError(f"--vary {item!r}: expected key=v1,v2,...")
        axes.append([(key.strip(), v) for v in values.split(",")])
    return axes


def sweep(vary: list[str], data_root: str | Path, output: str | Path, *, preset: str | None = None,
          config: str | None = None, sets: list[str] | None = None, finetune: str | None = None,
          progress: bool = True, say: Callable[[str], None] = print) -> Path:
    """Validate every combination first, then train each into ``output/<key=value_...>`` (resuming
    runs already there) and plot them; returns the plot's path."""
    combos = list(itertools.product(*parse_vary(vary)))
    configs = [load_config(preset, config, sets, [f"{k}={v}" for k, v in combo]) for combo in combos]
    out, runs = Path(output), []
    for combo, cfg in zip(combos, configs):
        name = "_".join(f"{k}={re.sub(r'[^A-Za-z0-9.+-]', '-', v)}" for k, v in combo)
        say(f"sweep: {name}")
        train(cfg, data_root, out / name, finetune, resume="auto", progress=progress)
        runs.append(out / name)
    fig = out / "sweep.png"
    plot_runs(runs, fig, title=", ".join(k for k, _ in combos[0]))
    return fig
