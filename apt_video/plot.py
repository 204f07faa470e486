"""Training curves of one or more runs: top-1, top-5 and validation loss against epoch."""
from __future__ import annotations

import csv
from pathlib import Path

import yaml

PANELS = (("val_top1", "top-1 (%)"), ("val_top5", "top-5 (%)"), ("val_loss", "validation loss"))


def read_run(run: Path) -> tuple[dict, list[dict]]:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run}: no metrics.csv (is it a training run folder?)")
    with open(metrics, newline="") as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    return config or {}, rows


def run_labels(configs: list[dict], names: list[str]) -> list[str]:
    """Label each run by the config keys whose values differ between the runs (else its folder)."""
    keys = sorted({k for c in configs for k in c})
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    if not differ or len(configs) == 1 or len(differ) > 3:
        return names
    return [", ".join(f"{k}={c.get(k)}" for k in differ) for c in configs]


def plot_runs(runs: list[str | Path], out: str | Path, title: str | None = None):
    """Write a three-panel figure (one line per run) to ``out``; returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [read_run(Path(r)) for r in runs]
    labels = run_labels([c for c, _ in loaded], [Path(r).name for r in runs])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (_, rows), label in zip(loaded, labels):
        for ax, (key, _) in zip(axes, PANELS):
            pts = [(r["epoch"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=label)
    for ax, (_, name) in zip(axes, PANELS):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return fig
