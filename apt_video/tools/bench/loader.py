"""``apt-video bench loader``: the training loader against VideoMAE's decord + PIL loader."""
from __future__ import annotations

from pathlib import Path

from apt_video import models
from apt_video.pipeline.graphs import AugmentSpec
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.randaug import VIDEOMAE_RAND_AUGMENT, parse_rand_augment
from apt_video.tools.baselines import decord_loader

from .common import bench_videos, cycle, loader_rate, rss_mb, timed


def bench_loader(work: Path, batches: int = 30, videos: int = 16, workers: int = 2,
                 rand_augment: str = VIDEOMAE_RAND_AUGMENT, codecs: str = "vp9,h264", num_sample: int = 2,
                 interps: str = "bilinear,nearest", executors: str = "dynamic", regions: str = "frame") -> dict:
    """Training clips/s of apt-video's loader (once per RandAugment interpolation in ``interps``, DALI
    executor in ``executors`` and augmentation order in ``regions``; figures named by the
    interpolation, plus ``_pipelined`` for that executor and ``_crop`` for RandAugment on the crop)
    against VideoMAE's (decord + PIL RandAugment on the whole frame, then the crop), both making
    ``num_sample`` augmentations of each decode, batches of 8 videos; plus decord's decode-only rate
    in clips/s (decodes x num_sample)."""
    spec = models.default_clip("vit_base_patch16_224")  # the presets' clip
    res = {"clip": f"16 frames, rate 4, 224 px, 8 videos x num_sample {num_sample} per batch, " + rand_augment,
           "videos": "320x240, 96 frames", "num_sample": num_sample}
    variants = [(i, e, a, i + ("" if e == "dynamic" else f"_{e}") + ("" if a == "frame" else f"_{a}"))
                for a in regions.split(",") for e in executors.split(",") for i in interps.split(",")]
    names = [v[3] for v in variants]
    for codec in codecs.split(","):
        entries = bench_videos(work, codec, videos)
        paths = [e.path for e in entries]
        route = "DALI decoder" if codec in ("vp9", "vp8", "mjpeg") else "PyAV in DALI source workers"
        r = res[codec] = {"route": route}
        for interp, executor, region, name in variants:
            # configured as training uses it (apt_video/train.py): one reused batch buffer
            ours = VideoLoader(entries, spec, batch_size=8, num_workers=workers, num_sample=num_sample, reuse=True,
                               executor=executor, augment=AugmentSpec(
                                   rand_augment=parse_rand_augment(rand_augment, interp), aa_region=region))
            rss = {}  # batch number -> PSS in MB: at 10, every 50, and at the end
            secs, clips = timed(cycle(ours.epoch), 2, batches,
                                lambda i: rss.__setitem__(i + 1, round(rss_mb(), 1))
                                if i + 1 == 10 or (i + 1) % 50 == 0 or i + 1 == batches else None)
            ours.close()
            r[f"ours_{name}_clips_per_s"], r[f"pss_mb_by_batch_{name}"] = clips / secs, rss
            r[f"peak_pss_mb_{name}"] = max(rss.values())  # of the samples taken
        r["baseline_clips_per_s"] = base_rate = loader_rate(
            decord_loader(paths, spec, rand_augment, workers=workers, num_sample=num_sample), 2, batches)
        r["decode_only_clips_per_s"] = ceil_rate = num_sample * loader_rate(
            decord_loader(paths, spec, None, workers=workers, decode_only=True), 1, max(5, batches // 3))
        for name in names:
            rate = r[f"ours_{name}_clips_per_s"]
            r[f"ratio_{name}"], r[f"fraction_of_decode_{name}"] = rate / base_rate, rate / ceil_rate
        r["ratio"] = r[f"ratio_{names[0]}"]
        print(f"loader {codec}: baseline (decord + PIL RandAugment, {workers} workers) {base_rate:.1f} clips/s; "
              f"decode-only {ceil_rate:.1f} clips/s")
        for interp, executor, region, name in variants:
            rate = r[f"ours_{name}_clips_per_s"]
            print(f"  ours, RandAugment on the {region}, {interp} geometric ops, {executor} executor: "
                  f"{rate:.1f} clips/s, "
                  f"ratio {rate / base_rate:.2f}, {100 * rate / ceil_rate:.0f}% of decode-only; "
                  f"peak PSS {r[f'peak_pss_mb_{name}']:.0f} MB; memory (PSS, MB by batch) "
                  + ", ".join(f"{k}: {v:.0f}" for k, v in r[f"pss_mb_by_batch_{name}"].items()))
    return res
