"""``apt-video probe DATA``: one manifest row per video, bad files named with their reason."""
from __future__ import annotations

import argparse
from pathlib import Path

from apt_video.pipeline.data import Dataset, write_manifest
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.probe import default_paths, probe_dataset, summarize, transcode_dataset

from .argtypes import add_layout_arguments, add_progress_argument, layout_of, positive_int, show_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="VideoMAE list file, manifest, class-folder tree, folder of videos, or (with "
                   "--split) a UCF101/HMDB51/Kinetics folder as downloaded")
    p.add_argument("--data-root", help="folder the list file's paths are relative to (default: its folder)")
    p.add_argument("--out", help="manifest CSV to write (default: beside DATA, or ~/.cache/apt-video)")
    p.add_argument("--workers", type=positive_int, default=max(1, (__import__("os").cpu_count() or 1)),
                   help="probe processes (default: all cores)")
    p.add_argument("--clip-frames", type=positive_int, default=16, help="frames per clip; shorter videos are flagged")
    p.add_argument("--quick", action="store_true",
                   help="count packets and decode one frame instead of decoding every frame")
    p.add_argument("--transcode", metavar="OUT", help="re-encode the usable videos under OUT for DALI")
    p.add_argument("--codec", choices=["h264", "vp9", "mjpeg"], default="vp9",
                   help="codec for --transcode (vp9/mjpeg decode on DALI's CPU and GPU paths)")
    p.add_argument("--gop", type=positive_int, default=8, help="keyframe interval for --transcode (default 8)")
    add_layout_arguments(p, part="train")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    source, layout = Path(args.data), layout_of(args)
    ds = open_dataset(source, args.data_root, **(layout or {}))
    manifest, cache = default_paths(source, tag=f"split{args.split}.{args.part}" if layout else "")
    if args.out:
        manifest = Path(args.out)
    entries, fresh = probe_dataset(ds, cache, args.clip_frames, args.workers, full=not args.quick,
                                   progress=show_progress(args))
    write_manifest(manifest, entries)
    print(summarize(entries))
    print(f"manifest: {manifest} ({fresh} probed, {len(entries) - fresh} from cache)")
    usable = sum(e.ok for e in entries)
    if args.transcode:
        root = Path(args.data_root) if args.data_root else (source if source.is_dir() else source.parent)
        new = transcode_dataset(Dataset(entries, ds.classes, str(source)), Path(args.transcode), args.codec,
                                root, gop=args.gop)
        print(f"transcoded {len(new)} videos to {args.codec} under {args.transcode}")
    if usable == 0:
        print("error: no usable video", flush=True)
        return 1
    return 0
