"""``apt-video score INPUT --model MODEL -o OUT.csv``: one row per video, in input order."""
from __future__ import annotations

import argparse

from apt_video.errors import UserError

from .argtypes import (
    add_downloaded_arguments,
    add_layout_arguments,
    add_pretrained_argument,
    add_progress_argument,
    add_ray_arguments,
    card_fill,
    layout_of,
    positive_int,
    ray_options,
    show_progress,
    views,
)

#: the options handed to ``score_videos`` as they are (each option's ``dest`` is its keyword)
SCORE_OPTIONS = ("views", "batch", "backend", "data_root", "top_k", "resume", "workers", "fmt", "pretrained", "task")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder (searched recursively), VideoMAE list file, or manifest")
    p.add_argument("--model", required=True,
                   help="export folder / model.json / model.onnx / model.plan, a training run / weights file, or "
                        "a VideoMAE classifier as downloaded (a Hugging Face save_pretrained folder or model id, "
                        "or a VideoMAE / APT checkpoint .pth)")
    p.add_argument("-o", "--out", required=True, help="output file (.csv or .jsonl)")
    p.add_argument("--views", type=views, help="SEGMENTSxCROPS (default: the model's test views)")
    p.add_argument("--batch", type=positive_int, help="clips per engine call (default: the engine's optimal batch)")
    p.add_argument("--backend", choices=["auto", "trt", "ort", "torch"], default="auto")
    p.add_argument("--labels", nargs="?", const="", metavar="LIST", help="labels (a list file or manifest; with "
                   "--split, alone: the split's own): writes OUT.metrics.json")
    p.add_argument("--data-root", help="folder the list file's paths are relative to")
    p.add_argument("--top-k", type=positive_int, default=5, help="classes per row, best first (default 5)")
    p.add_argument("--resume", action="store_true", help="skip videos already in OUT and append the rest")
    p.add_argument("--workers", type=positive_int, help="decode worker processes (local engine; default 2)")
    p.add_argument("--format", dest="fmt", choices=["csv", "jsonl"], help="default: from OUT's extension")
    add_pretrained_argument(p)
    p.add_argument("--task", help="prompts + head file for a shared-backbone (prompts-as-input) engine")
    add_downloaded_arguments(p)
    add_layout_arguments(p, part="test")
    add_ray_arguments(p)
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    from apt_video.scoring import score_videos  # the job: PyTorch, DALI, ONNX Runtime

    labels = args.input if args.labels == "" else args.labels  # --labels alone: INPUT's own labels
    try:
        report = score_videos(args.input, args.model, args.out, labels=labels, layout=layout_of(args),
                              progress=show_progress(args), engine=args.engine, ray=ray_options(args),
                              fill=card_fill(args), **{k: getattr(args, k) for k in SCORE_OPTIONS})
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if report is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print("\n".join(report.summary(args.engine)))
    return 0 if report.all_ok else 1
