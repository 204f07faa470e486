"""Training curves of one or more runs against epoch: top-1, validation loss, and top-5 where some
run has more than 5 classes (else the training loss: top-5 of 5 classes or fewer is a flat 100%)."""
from __future__ import annotations

import csv
from pathlib import Path

import yaml

from apt_video.models.artifact import read_card
from apt_video.models.checkpoint import CheckpointError

from .figures import plt, save_figure

TOP1, TOP5, VAL_LOSS, TRAIN_LOSS, LR = (("val_top1", "top-1 (%)"), ("val_top5", "top-5 (%)"),
                                       ("val_loss", "validation loss"), ("train_loss", "training loss"),
                                       ("lr", "learning rate"))


def read_run(run: Path) -> tuple[dict, list[dict]]:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run}: no metrics.csv (is it a training run folder?)")
    with open(metrics, newline="") as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    return config or {}, rows


def run_classes(run: Path) -> int | None:
    """How many classes the run's model has (from its weights' card), or None if it has no weights."""
    weights = run / "checkpoints" / "last.safetensors"
    try:
        return len(read_card(weights).classes) if weights.is_file() else None
    except CheckpointError:
        return None


def choose_panels(classes: list[int | None], rows: list[list[dict]]) -> list[tuple[str, str]]:
    """Up to three panels worth drawing for these runs, from each run's class count (None: unknown)
    and metric rows: top-1, top-5 only where some run has more than 5 classes (or an unknown count),
    validation loss; a panel no row has gives way to the training loss, then the learning rate."""
    wide = any(c is None or c > 5 for c in classes)
    wanted = [TOP1, TOP5, VAL_LOSS, TRAIN_LOSS, LR] if wide else [TOP1, TRAIN_LOSS, VAL_LOSS, LR]
    present = [p for p in wanted if any(p[0] in r for run in rows for r in run)]
    return present[:3]


def run_labels(configs: list[dict], names: list[str]) -> list[str]:
    """Label each run by the config keys whose values differ between the runs (else its folder)."""
    keys = sorted({k for c in configs for k in c})
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    if not differ or len(configs) == 1 or len(differ) > 3:
        return names
    return [", ".join(f"{k}={c.get(k)}" for k in differ) for c in configs]


def plot_runs(runs: list[str | Path], out: str | Path, title: str | None = None, labels: list[str] | None = None):
    """Write a figure of up to three panels (``choose_panels``; one line per run, labelled ``labels``
    or else by what differs between the runs) to ``out``; returns the matplotlib figure."""
    loaded = [read_run(Path(r)) for r in runs]
    labels = labels or run_labels([c for c, _ in loaded], [Path(r).name for r in runs])
    panels = choose_panels([run_classes(Path(r)) for r in runs], [rows for _, rows in loaded]) or [TOP1]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    axes = list(axes[0])
    for (_, rows), label in zip(loaded, labels):
        for ax, (key, _) in zip(axes, panels):
            pts = [(r["epoch"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=label)
    for ax, (key, name) in zip(axes, panels):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    return fig
