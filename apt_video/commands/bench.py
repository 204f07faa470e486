"""``apt-video bench {loader,infer,train,score}``: ours against a named baseline, same run, ratio."""
from __future__ import annotations

import argparse

from .argtypes import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="which", required=True, metavar="BENCH")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", help="write the figures here (each comparison has a 'ratio': ours / baseline)")
    common.add_argument("--work", help="folder for the generated videos and graphs (default: a temporary one)")
    s = sub.add_parser("loader", parents=[common], help="training loader vs decord + PIL RandAugment")
    s.add_argument("--batches", type=positive_int, default=30)
    s.add_argument("--videos", type=positive_int, default=16)
    s.add_argument("--workers", type=positive_int, default=2)
    s.add_argument("--rand-augment", default=None,
                   help="timm RandAugment string (default: VideoMAE's, rand-m7-n4-mstd0.5-inc1)")
    s.add_argument("--codecs", default="vp9,h264", help="comma-separated: vp9, h264, mjpeg, vp8, hevc, mpeg4")
    s.add_argument("--num-sample", type=positive_int, default=2,
                   help="augmentations per decoded video (the presets: 2)")
    s.add_argument("--interps", default="bilinear,nearest",
                   help="RandAugment geometric-op resampling to measure ours with (comma-separated)")
    s.add_argument("--executors", default="dynamic",
                   help="DALI executors to measure ours with (comma-separated: dynamic, pipelined)")
    s.add_argument("--regions", default="frame",
                   help="where RandAugment runs in ours (comma-separated: frame = VideoMAE's order, crop)")
    s = sub.add_parser("infer", parents=[common], help="eager vs SDPA vs ONNX Runtime, compute floor, prompt cost")
    s.add_argument("--model", default="vit_small_patch16_224")
    s.add_argument("--batch", type=positive_int, default=2)
    s.add_argument("--reps", type=positive_int, default=3)
    s.add_argument("--precisions", default="fp32", help="fp32 or fp32,int8 (int8 against fp32 in the same run)")
    s.add_argument("--rounds", type=positive_int, default=7,
                   help="rounds timing the int8 and fp32 graphs in turn, a batch each (their medians compared)")
    s = sub.add_parser("train", parents=[common], help="step time and memory: prompt vs linear vs end2end")
    s.add_argument("--model", default="vit_small_patch16_224")
    s.add_argument("--batch", type=positive_int, default=2)
    s.add_argument("--steps", type=positive_int, default=3)
    s.add_argument("--frames", type=positive_int, default=8)
    s.add_argument("--size", type=positive_int, default=112)
    s = sub.add_parser("score", parents=[common], help="scoring path vs a VideoMAE-style evaluation loop")
    s.add_argument("--videos", type=positive_int, default=3)
    s.add_argument("--model", default="vit_small_patch16_224",
                   help="any registered model (vit_micro_patch16_112: the demo's, seconds instead of minutes)")
    s.add_argument("--frames", type=positive_int, default=160, help="frames per synthetic test video")
    s.add_argument("--precisions", default="fp32", help="fp32 or fp32,int8 (the int8 export scoring the same "
                   "videos: videos/s and top-1 kept)")
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: the Ray Data engine against the local one (default: local against VideoMAE's loop)")


    s = sub.add_parser("gpu", parents=[common], help="every GPU figure in one run: loader, inference, training "
                       "step and loop, scoring, each beside its anchor (about 6 minutes)")
    s.add_argument("--stages", default="loader,infer,train,score",
                   help="comma-separated, in order (rerun only the stage a change touches)")


def run(args: argparse.Namespace) -> int:
    if args.which == "gpu":
        from apt_video.tools.bench.gpu import run_gpu_command

        return run_gpu_command(args.json, args.work, args.stages)
    from apt_video.tools.bench import run_bench

    kw = {k: v for k, v in vars(args).items() if k not in ("which", "json", "verbose", "command", "_module")
          and not (k == "rand_augment" and v is None)}
    if "model" in kw:
        kw["model_name"] = kw.pop("model")
    if args.which == "train":
        kw.pop("work", None)
    run_bench(args.which, args.json, **kw)
    return 0
