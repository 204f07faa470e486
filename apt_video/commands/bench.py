"""``apt-video bench {loader,infer,train,score,startup,gpu}``: ours against a named baseline, same run, ratio."""
from __future__ import annotations

import argparse

from apt_video.pipeline.randaug import VIDEOMAE_RAND_AUGMENT

from .argtypes import comma_list, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="which", required=True, metavar="BENCH")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", help="write the figures here (each comparison has a 'ratio': ours / baseline)")
    common.add_argument("--work", help="folder for the generated videos and graphs (default: a temporary one)")

    def bench(name: str, text: str, **numbers) -> argparse.ArgumentParser:
        s = sub.add_parser(name, parents=[common], help=text)
        for option, default in numbers.items():
            s.add_argument(f"--{option}", type=positive_int, default=default)
        return s

    s = bench("loader", "training loader vs decord + PIL RandAugment", batches=30, videos=16, workers=2,
              **{"num-sample": 2})
    s.add_argument("--rand-augment", default=VIDEOMAE_RAND_AUGMENT,
                   help="timm RandAugment string (default: VideoMAE's, %(default)s)")
    s.add_argument("--codecs", default="vp9,h264", type=comma_list("apt_video.pipeline.video", "CODECS"),
                   help="comma-separated: vp9, h264, mjpeg, vp8, hevc, mpeg4")
    s.add_argument("--interps", default="bilinear,nearest", type=comma_list("apt_video.pipeline.randaug",
                                                                            "INTERPOLATIONS"),
                   help="RandAugment's geometric resampling (comma-separated)")
    s.add_argument("--executors", default="dynamic", type=comma_list("apt_video.pipeline.loader", "EXECUTORS"),
                   help="DALI executors: dynamic, pipelined (comma-separated)")
    s.add_argument("--regions", default="frame", type=comma_list("apt_video.pipeline.graphs", "AA_REGIONS"),
                   help="RandAugment on the frame (VideoMAE's order) or the crop")
    s = bench("infer", "eager vs SDPA vs ONNX Runtime, compute floor, prompt cost", batch=2, reps=3, rounds=7)
    s.add_argument("--model", dest="model_name", default="vit_small_patch16_224")
    s.add_argument("--precisions", default="fp32", type=comma_list("apt_video.tools.bench.common", "BENCH_PRECISIONS"),
                   help="fp32 or fp32,int8 (int8 timed in turn with fp32)")
    s = bench("train", "step time and memory: prompt vs linear vs end2end", batch=2, steps=3, frames=8, size=112)
    s.add_argument("--model", dest="model_name", default="vit_small_patch16_224")
    s = bench("score", "scoring path vs a VideoMAE-style evaluation loop", videos=3, frames=160)
    s.add_argument("--model", dest="model_name", default="vit_small_patch16_224",
                   help="any registered model (vit_micro_patch16_112: the demo's, seconds instead of minutes)")
    s.add_argument("--precisions", default="fp32", type=comma_list("apt_video.tools.bench.common", "BENCH_PRECISIONS"),
                   help="fp32 or fp32,int8 (the int8 export on the same videos)")
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: the Ray Data engine against the local one (default: local against VideoMAE's loop)")
    bench("startup", "--help and an argument error vs the bare interpreter and import torch", runs=5)
    s = bench("gpu", "every GPU figure in one run: loader, inference, training, scoring (about 6 minutes)")
    s.add_argument("--stages", default="loader,infer,train,score",
                   type=comma_list("apt_video.tools.bench.gpu_runner", "STAGES"), help="comma-separated, in order")


def run(args: argparse.Namespace) -> int:
    if args.which == "gpu":
        from apt_video.tools.bench.gpu import run_gpu_command

        return run_gpu_command(args.json, args.work, args.stages)
    from apt_video.tools.bench import run_bench

    kw = {k: v for k, v in vars(args).items() if k not in ("which", "json", "verbose", "command", "_module")}
    run_bench(args.which, args.json, **kw)
    return 0
