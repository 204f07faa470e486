"""``sweep``: one training run per combination of the varied keys, then one plot of them all and a
summary across runs (the paper's ablations: ``prompt_dropout``, ``aa``, ``weight_decay``,
``prompt_num_tokens``): ``summary.csv``, one row per run with the varied values, the final test
top-1, top-5 and loss and the best validation epoch, and ``summary.png``, test top-1 against the
varied value."""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Callable

from apt_video.config import ConfigError, load_config
from apt_video.models.files import atomic_write_text
from apt_video.train import train

from .figures import plt, save_figure
from .plot import plot_runs, read_run

#: summary.csv's columns after the varied keys
SUMMARY = ("test_top1", "test_top5", "test_loss", "test_videos", "test_views", "best_val_epoch", "best_val_top1",
           "run")


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
    runs already there), plot them and summarise them (``summarize``); returns the plot's path."""
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
    summarize(runs, combos, out)
    return fig


def summary_row(run: Path, combo: tuple[tuple[str, str], ...]) -> dict:
    """One run's row: the varied values as given, the final test's top-1, top-5 and loss (empty
    when the run made no final test), and the epoch of its best validation top-1."""
    _, rows = read_run(run)
    row = {k: v for k, v in combo}
    test = run / "test_metrics.json"
    report = json.loads(test.read_text()) if test.is_file() else {}
    row.update(test_top1=report.get("top1", ""), test_top5=report.get("top5", ""), test_loss=report.get("loss", ""),
               test_videos=report.get("videos", ""), test_views=report.get("views", ""))
    validated = [r for r in rows if "val_top1" in r]
    best = max(validated, key=lambda r: r["val_top1"]) if validated else None  # the first epoch of the best
    row.update(best_val_epoch=int(best["epoch"]) if best else "", best_val_top1=best["val_top1"] if best else "",
               run=run.name)
    return row


def summarize(runs: list[Path], combos: list[tuple[tuple[str, str], ...]], out: Path) -> tuple[Path, Path]:
    """``out/summary.csv`` (one row per run, in the sweep's order) and ``out/summary.png`` (test
    top-1 against the varied value, or the combination when several keys vary; validation top-1
    at the best epoch when the runs made no final test)."""
    keys = [k for k, _ in combos[0]]
    rows = [summary_row(run, combo) for run, combo in zip(runs, combos)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*keys, *SUMMARY], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", text.getvalue())
    _plot_summary(rows, keys, out / "summary.png")
    return out / "summary.csv", out / "summary.png"


def _plot_summary(rows: list[dict], keys: list[str], path: Path) -> None:
    tested = all(r["test_top1"] != "" for r in rows)
    column, name = ("test_top1", "test top-1 (%)") if tested else ("best_val_top1", "best validation top-1 (%)")
    labels = [", ".join(str(r[k]) for k in keys) for r in rows]
    values = [float(r[column]) if r[column] != "" else float("nan") for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(rows)), 4))
    ax.plot(range(len(rows)), values, marker="o")
    for x, y in enumerate(values):
        ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(range(len(rows)), labels, rotation=20 if max(map(len, labels)) > 8 else 0, fontsize=8)
    ax.set_xlabel(", ".join(keys))
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
