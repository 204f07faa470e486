"""``export_run``: a training run (or a weights file) to a verified export package, with real clips
of the run's own validation data to verify on (``export/`` itself never reads video)."""
from __future__ import annotations

from pathlib import Path

import torch

import models
from export import Package, export_package
from pipeline.data import DataError


def verification_clips(card: models.ModelCard, n: int) -> torch.Tensor | None:
    """Up to ``n`` validation clips of the run's own data (the validation clip geometry), or None
    when the run's data is not at hand."""
    from pipeline.loader import VideoLoader
    from pipeline.probe import load_manifest

    data = card.data or {}
    root = Path(data.get("root", ""))
    if data.get("split"):  # an official dataset layout
        sources = [(root, {"split": data["split"], "part": part, "splits": data.get("splits") or None})
                   for part in ("val", "test")]
    else:
        sources = [(root / name, {}) for name in (data.get("val_list"), data.get("test_list")) if name]
    for src, kw in sources:
        if not n or not src.exists():
            continue
        try:
            ds, _ = load_manifest(src, root, card.clip.num_frames, **kw)
        except (DataError, OSError):
            return None
        usable = ds.usable()[:n]
        if usable:
            loader = VideoLoader(usable, card.clip, mode="eval", batch_size=len(usable), num_workers=1)
            clips = [b.video for b in loader.epoch(0)]
            return torch.cat(clips) if clips else None
    return None


def export_run(source: str | Path, out: str | Path, *, pretrained: str | None = None, verify_clips: int = 4,
               **options) -> tuple[Package, Path]:
    """Export the weights of ``source`` (a run folder: its best weights; or a weights file) into
    the package folder ``out``; ``options`` are ``export.export_package``'s (precision, opset,
    attention, prompts_as_input, batch, tensorrt, workspace_gb, timing_cache). Returns the
    package and where it went (``<out>.rejected`` when a check failed)."""
    weights = models.find_weights(source)
    if weights is None:
        raise models.CheckpointError(f"{source}: neither an apt-video weights file nor a run folder with "
                                     f"{' or '.join(models.artifact.RUN_WEIGHTS)}")
    model, card = models.build_from_trained(weights, pretrained)
    clips = {"random": torch.randn(3, 3, model.num_frames, model.img_size, model.img_size)}
    real = verification_clips(card, verify_clips)
    if real is not None:
        clips["real"] = real
    return export_package(model, card, out, clips, checkpoint=weights, **options)
