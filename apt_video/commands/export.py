"""``apt-video export CHECKPOINT -o OUT``: folded ONNX graph, op check, verification against
PyTorch on random and real clips, metadata, and a TensorRT engine where TensorRT and a GPU exist."""
from __future__ import annotations

import argparse

from apt_video.errors import UserError

from .argtypes import add_downloaded_arguments, add_graph_arguments, add_pretrained_argument, card_fill, nonneg_int

#: the options handed to ``export_run`` as they are (each option's ``dest`` is its keyword)
EXPORT_OPTIONS = ("precision", "calib", "calib_clips", "batch", "opset", "attention", "prompts_as_input",
                  "workspace_gb", "timing_cache", "verify_clips")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training run folder (its best weights), an apt-video .safetensors, or a "
                                      "VideoMAE classifier as downloaded (a Hugging Face save_pretrained folder or "
                                      "model id, or a VideoMAE / APT checkpoint .pth)")
    add_pretrained_argument(p)
    p.add_argument("-o", "--out", required=True, help="output folder: model.onnx, model.json, model.plan")
    p.add_argument("--onnx-only", action="store_true", help="do not build a TensorRT engine")
    add_graph_arguments(p)
    p.add_argument("--prompts-as-input", action="store_true",
                   help="shared-backbone graph: prompts are an input, each task a small file (task.safetensors)")
    p.add_argument("--verify-clips", type=nonneg_int, default=4, help="real clips to verify on (from the run's data)")
    add_downloaded_arguments(p)


def run(args: argparse.Namespace) -> int:
    from apt_video.exporting import export_run, export_summary  # the job: PyTorch, ONNX, TensorRT

    try:
        package, where = export_run(args.checkpoint, args.out, pretrained=args.pretrained, fill=card_fill(args),
                                    tensorrt=not args.onnx_only, **{k: getattr(args, k) for k in EXPORT_OPTIONS})
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except RuntimeError as exc:  # TensorRT's parser or builder refused the graph
        raise UserError(str(exc).strip().splitlines()[0][:400]) from None
    for line in export_summary(package, where, args.out, tensorrt=not args.onnx_only):
        print(line)
    return 0 if package.passed else 1
