"""A training run's folder: what a run writes there besides its weights (``config.yaml`` is the
config's own, ``metrics.csv``, ``skipped.csv``, ``checkpoints/last_state.pt``), what ``--overwrite``
removes, and resuming from it: the state's checks and ``restore``, in one place, as torchvision's
reference script keeps its resume block."""
from __future__ import annotations

import csv
import io
import logging
import shutil
from pathlib import Path

import torch

from apt_video import holdout, models
from apt_video.models import CheckpointError
from apt_video.models.files import atomic_path, atomic_write_text

from .config import ConfigError, TrainConfig

log = logging.getLogger(__name__)
METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "clips_per_s")


def write_metrics(run: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k, "")) for k in METRIC_COLUMNS})
    atomic_write_text(run / "metrics.csv", buf.getvalue())


def save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: say which and what to do
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot resume from this file ({first}); pass another with --resume PATH "
                              f"or remove it to start afresh") from None


def write_skipped(run: Path, rows: list[tuple[str, str, str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["split", "path", "status", "reason"])
    w.writerows(sorted(set(rows)))
    atomic_write_text(run / "skipped.csv", buf.getvalue())


#: what a run writes into its folder (removed by ``overwrite``)
RUN_OUTPUTS = ("checkpoints", "tb", "config.yaml", "metrics.csv", "skipped.csv", "test_metrics.json", holdout.FOLDER)


def remove_run(run_dir: Path) -> None:
    """Remove what a run wrote (``RUN_OUTPUTS``), nothing else of the folder."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def load_backbone(model, path: str) -> models.Backbone:
    """Load ``--finetune`` into ``model``; returns the record of the backbone it now has."""
    report, backbone = models.load_any(model, path)
    if report is not None:
        log.info("%s", report.summary())
    return backbone


def restore(state: dict, cfg: TrainConfig, model, optimizer, scaler, finetune: str | None,
            pretrained: models.Backbone | None) -> tuple[list[dict], float, int, models.Backbone | None]:
    """Resume a run from its ``last_state.pt``: the same shaping config, the run's backbone (the one
    given must be it; none given: the recorded file, checked by its sha256), then the trained
    tensors, optimiser, grad scaler and RNG. Returns (history, best validation top-1, the first
    epoch to run, the backbone record)."""
    check_resumable(state, cfg)
    began = (state.get("pretrained") or {}).get("sha256")
    if pretrained is not None and began and pretrained.sha256 != began:
        raise CheckpointError(f"{finetune}: not the backbone this run was trained on (sha256 "
                              f"{pretrained.sha256[:12]}..., the run's {began[:12]}...); resume with "
                              f"that one, or start a new run")
    if not finetune and state.get("pretrained"):  # the run's backbone, as it was (the state holds only
        rec = models.Backbone(**state["pretrained"])  # what the run trained)
        if not Path(rec.path).is_file() or models.sha256_file(rec.path) != rec.sha256:
            raise CheckpointError(f"{rec.path}: the backbone this run was trained on is missing or changed "
                                  f"(sha256 {rec.sha256[:12]}...); pass it with --finetune to resume")
        load_backbone(model, rec.path)
    model.load_state_dict(state["model"], strict=False)
    try:
        optimizer.load_state_dict(state["optimizer"])
        if scaler and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"--resume: the state's optimiser does not fit this run's model ({exc}); resume "
                              f"from the run's own last_state.pt, or start a new run") from None
    torch.set_rng_state(state["rng"])
    if state.get("pretrained"):
        pretrained = models.Backbone(**state["pretrained"])
    return list(state["history"]), float(state["best_top1"]), int(state["epoch"]) + 1, pretrained


#: config keys that shape the model or its trained tensors: a run resumes only with the same values
SHAPING_KEYS = ("model", "nb_classes", "clip.num_frames", "clip.input_size", "tubelet_size", "transfer_type",
                "prompt_num_tokens", "prompt_start", "prompt_end", "prompt_reparam", "opt")


def _shaping(config: dict) -> dict:
    """The shaping keys of a config as ``TrainConfig.to_dict`` writes it (the clip keys also read
    flat, as configs wrote them before the clip was one record)."""
    clip = config.get("clip") or {}
    out = {}
    for key in SHAPING_KEYS:
        name = key.removeprefix("clip.")
        if key.startswith("clip.") and (name in clip or name in config):
            out[key] = clip.get(name, config.get(name))
        elif key in config:
            out[key] = config[key]
    return out


def check_resumable(state: dict, cfg: TrainConfig) -> None:
    saved, now = _shaping(state.get("config") or {}), _shaping(cfg.to_dict())
    changed = [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in SHAPING_KEYS if k in saved and saved[k] != now[k]]
    if changed:
        raise ConfigError(f"--resume with other settings than the run was started with ({'; '.join(changed)}); "
                          f"resume with the run's config.yaml, or start a new run")
