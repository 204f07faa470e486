"""``apt-video export CHECKPOINT -o OUT``: folded ONNX graph, op check, verification against
PyTorch on random and real clips, metadata, and a TensorRT engine where TensorRT and a GPU exist."""
from __future__ import annotations

import argparse

from .argtypes import (
    add_downloaded_arguments,
    add_pretrained_argument,
    batch_profile,
    card_fill,
    nonneg_int,
    opset,
    positive_float,
    positive_int,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training run folder (its best weights), an apt-video .safetensors, or a "
                                      "VideoMAE classifier as downloaded (a Hugging Face save_pretrained folder or "
                                      "model id, or a VideoMAE / APT checkpoint .pth)")
    add_pretrained_argument(p)
    p.add_argument("-o", "--out", required=True, help="output folder: model.onnx, model.json, model.plan")
    p.add_argument("--onnx-only", action="store_true", help="do not build a TensorRT engine")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8", "fp8"], default="fp32",
                   help="int8: Q/DQ graph calibrated on real clips (ONNX Runtime CPU, TensorRT); fp8: float8 Q/DQ "
                        "graph for TensorRT on sm 8.9+ (Ada, Hopper, Blackwell)")
    p.add_argument("--calib", help="int8/fp8: list file, manifest or folder of calibration videos (default: the "
                   "run's validation list)")
    p.add_argument("--calib-clips", type=positive_int,
                   help="int8/fp8: calibration clips (default: apt_video.exporting.CALIB_CLIPS; a quarter is held "
                        "out for verification)")
    p.add_argument("--batch-profile", "--batch", dest="batch", type=batch_profile, default=(1, 30, 60),
                   metavar="MIN:OPT:MAX",
                   help="the engine's batch sizes in clips (TensorRT optimisation profile; default 1:30:60, one or "
                        "two videos of 10x3 views). Not score's --batch, the clips of one call; --batch is the "
                        "older name of this option")
    p.add_argument("--opset", type=opset, default=23,
                   help="ONNX opset, 18 to 23 (23: the fused Attention op; default 23)")
    p.add_argument("--attention", choices=["fused", "matmul"],
                   help="attention form (default: fused at opset >= 23 when the installed TensorRT, if any, "
                        "is 10.14 or newer; else matmul)")
    p.add_argument("--prompts-as-input", action="store_true",
                   help="shared-backbone graph: prompts are an input, each task a small file (task.safetensors)")
    p.add_argument("--workspace", type=positive_float, default=4.0, help="TensorRT workspace in GB")
    p.add_argument("--timing-cache", help="TensorRT timing cache file, read and updated")
    p.add_argument("--verify-clips", type=nonneg_int, default=4, help="real clips to verify on (from the run's data)")
    add_downloaded_arguments(p)


def run(args: argparse.Namespace) -> int:
    from apt_video import models
    from apt_video.errors import UserError
    from apt_video.export import BackendUnavailable, PackageError
    from apt_video.exporting import export_run, export_summary

    try:
        package, where = export_run(
            args.checkpoint, args.out, pretrained=args.pretrained, verify_clips=args.verify_clips, fill=card_fill(args),
            precision=args.precision, opset=args.opset, attention=args.attention,
            prompts_as_input=args.prompts_as_input, batch=args.batch, tensorrt=not args.onnx_only,
            workspace_gb=args.workspace, timing_cache=args.timing_cache, calib=args.calib, calib_clips=args.calib_clips)
    except (models.CheckpointError, PackageError, BackendUnavailable, ValueError) as exc:
        raise UserError(str(exc)) from None
    except RuntimeError as exc:  # TensorRT's parser or builder refused the graph
        raise UserError(str(exc).strip().splitlines()[0][:400]) from None
    for line in export_summary(package, where, args.out, tensorrt=not args.onnx_only):
        print(line)
    return 0 if package.passed else 1
