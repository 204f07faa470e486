"""``export_run``: a training run (or a weights file) to a verified export package, with real clips
of the run's own validation data to verify on (``export/`` itself never reads video)."""
from __future__ import annotations

from pathlib import Path

import torch

from apt_video import models
from apt_video.export import Package, export_package
from apt_video.export.quantize import PRECISIONS as QUANTIZED
from apt_video.export.trt import trt_missing
from apt_video.pipeline.data import DataError
from apt_video.pipeline.datasets import HELD_OUT, RunData
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import load_manifest

#: calibration clips of an int8/fp8 export: with 32 the demo model's held-out videos read 0.26 relative
#: logit error (top-1 unchanged), with 48 0.16; TensorRT's guide calibrates on about 500 images
CALIB_CLIPS = 64


def _run_sources(card: models.ModelCard) -> list[tuple[Path, dict, Path]]:
    """Where the run's validation and test videos are: ``(source, open_dataset keywords, root)``."""
    data = card.data or {}
    run = RunData(Path(data.get("root", "")), {part: data.get(f"{part}_list") or "" for part in HELD_OUT},
                  data.get("split"), data.get("splits"))
    return [(*run.source(part), run.root) for part in HELD_OUT if run.split or run.lists[part]]


def real_clips(card: models.ModelCard, n: int, mode: str = "eval", source: str | Path | None = None,
               data_root: str | Path | None = None) -> tuple[torch.Tensor | None, str | None]:
    """Up to ``n`` real clips and where they came from: validation clips (``eval``) or scoring's
    test views (``test``: up to ``n`` videos spread over the list, each giving an equal share of its
    views spread over its segments and crops, video after video), of ``source`` (a list, manifest or folder)
    or else of the run's own validation (then test) data. ``(None, None)`` when none is at hand."""
    sources = [(Path(source), {}, Path(data_root) if data_root else None)] if source else _run_sources(card)
    for src, kw, root in sources:
        if not n or not src.exists():
            continue
        try:
            ds, _ = load_manifest(src, root, card.clip.num_frames, **kw)
        except (DataError, OSError):
            continue
        usable = ds.usable()
        if mode == "test":  # videos spread over the whole list, a few of each one's views
            videos = min(n, len(usable))
            usable = [usable[i * len(usable) // videos] for i in range(videos)] if videos else []
        else:
            usable = usable[:n]
        if usable:
            loader = VideoLoader(usable, card.clip, mode=mode, batch_size=min(len(usable), 4), num_workers=1)
            if mode == "test":
                v = card.clip.num_views
                per = min(v, -(-n // len(usable)))
                pick = [k * v // per + v // (2 * per) for k in range(per)]  # spread over segments and crops
                clips = [b.video[:, pick].flatten(0, 1) for b in loader.epoch(0)]
            else:
                clips = [b.video for b in loader.epoch(0)]
            if clips:
                return torch.cat(clips)[:n], f"{src}" + (f" ({kw['part']} of split {kw['split']})" if kw else "")
    return None, None


def export_run(source: str | Path, out: str | Path, *, pretrained: str | None = None, verify_clips: int = 4,
               calib: str | Path | None = None, calib_clips: int | None = None, fill: models.CardFill | None = None,
               **options) -> tuple[Package, Path]:
    """Export the weights of ``source`` (a run folder: its best weights; a weights file; or a VideoMAE
    classifier as downloaded, ``fill`` giving what its files do not say) into the package folder
    ``out``; ``options`` are ``export.export_package``'s (precision, opset, attention, prompts_as_input,
    batch, tensorrt, workspace_gb, timing_cache). ``int8`` and ``fp8`` calibrate on ``calib_clips``
    test-view clips of ``calib`` (default: the run's validation list), through the same pipeline as
    scoring. Returns the package and where it went (``<out>.rejected`` when a check failed)."""
    if calib is not None and not Path(calib).exists():
        raise DataError(f"--calib {calib}: no such file or folder (a list file, manifest or folder of videos)")
    opened = models.open_model(source, pretrained, fill)
    if opened is None:
        raise models.CheckpointError(f"{source}: neither an apt-video weights file, a run folder with "
                                     f"{' or '.join(models.artifact.RUN_WEIGHTS)}, nor a downloaded VideoMAE "
                                     f"classifier (a folder with config.json, a model id, or a .pth checkpoint)")
    model, card, weights = opened
    noise = torch.Generator().manual_seed(0)  # the same clips on every export of the same weights
    clips = {"random": torch.randn(3, 3, model.num_frames, model.img_size, model.img_size, generator=noise)}
    real, _ = real_clips(card, verify_clips)
    if real is not None:
        clips["real"] = real

    if options.get("precision") in QUANTIZED:
        calibration, where = real_clips(card, calib_clips or CALIB_CLIPS, mode="test", source=calib)
        options.update(calibration=calibration, calibration_source=where)
    return export_package(model, card, out, clips, checkpoint=weights, **options)


def export_summary(package: Package, where: Path, out: str | Path, tensorrt: bool = True) -> list[str]:
    """What ``apt-video export`` prints: each verification set, the op check's findings, the
    engine's verification (or why none was built), and where the package went."""
    v = package.verification
    lines = [f"verify {name:6s} ({s['clips']} clips, {', '.join(v['providers'])}): max abs {s['max_abs_error']:.2e}, "
             f"max rel {s['max_rel_error']:.2e}, top-1 agreement {100 * s['top1_agreement']:.0f}% -> "
             f"{'ok' if s['passed'] else 'FAILED'}" for name, s in v["sets"].items()]
    lines += [f"op check: {problem}" for problem in package.op_check["tensorrt_unsupported"]]
    if package.tensorrt:
        ok = package.tensorrt["verification"]["passed"]
        lines.append(f"TensorRT {package.tensorrt['version']} engine: verification {'ok' if ok else 'FAILED'}")
    elif tensorrt and package.passed:
        lines.append(f"TensorRT engine not built: {trt_missing()}")
    if not package.passed:
        lines.append(f"FAILED: the package is in {where} for inspection; {out} is unchanged")
    else:
        lines.append(f"wrote {where}: {', '.join(package.files.values())} and model.json")
    return lines
