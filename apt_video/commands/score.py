"""``apt-video score INPUT --model MODEL -o OUT.csv``: one row per video, in input order."""
from __future__ import annotations

import argparse

from .argtypes import (
    add_downloaded_arguments,
    add_layout_arguments,
    add_progress_argument,
    card_fill,
    layout_of,
    nonneg_float,
    positive_int,
    show_progress,
    views,
)


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
    p.add_argument("--labels", nargs="?", const="", metavar="LIST",
                   help="labels (a list file or manifest; with --split, alone: the split's own): writes "
                        "OUT.metrics.json")
    p.add_argument("--data-root", help="folder the list file's paths are relative to")
    p.add_argument("--top-k", type=positive_int, default=5, help="classes per row, best first (default 5)")
    p.add_argument("--resume", action="store_true", help="skip videos already in OUT and append the rest")
    p.add_argument("--workers", type=positive_int, help="decode worker processes (local engine; default 2)")
    p.add_argument("--format", choices=["csv", "jsonl"], help="default: from OUT's extension")
    p.add_argument("--pretrained", "--finetune", dest="pretrained", metavar="WEIGHTS",
                   help="the backbone of a PyTorch checkpoint that holds only trained tensors (default: the one "
                        "its card names; --finetune: the same option, train's name)")
    p.add_argument("--task", help="prompts + head file for a shared-backbone (prompts-as-input) engine")
    add_downloaded_arguments(p)
    add_layout_arguments(p, part="test")
    ray = p.add_argument_group("Ray Data (--engine ray; install apt-video[ray])")
    ray.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="local: this process (or each torchrun rank); ray: a Ray cluster (default local)")
    ray.add_argument("--address", help="cluster to join: auto (the one `ray start` runs here) or ray://HOST:10001 "
                                       "(default: a local cluster for this run)")
    ray.add_argument("--actors", type=positive_int, default=1, help="scoring actors, each holding the engine")
    ray.add_argument("--gpus-per-actor", type=nonneg_float,
                     help="GPUs per scoring actor (default: 1 where the cluster has GPUs, else 0)")
    ray.add_argument("--decode-cpus", type=positive_int, default=1,
                     help="decoding actors of one CPU each (CPU actors; GPU actors decode on their GPU)")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    from apt_video.errors import UserError
    from apt_video.export import BackendUnavailable, PackageError
    from apt_video.pipeline.data import DataError
    from apt_video.scoring import RayOptions, score_videos

    try:
        layout = layout_of(args)
        fill = card_fill(args)
        labels = args.input if args.labels == "" else args.labels  # --labels alone: INPUT's own labels
        report = score_videos(args.input, args.model, args.out, views=args.views, batch=args.batch,
                              backend=args.backend, labels=labels, data_root=args.data_root, top_k=args.top_k,
                              resume=args.resume, workers=args.workers, fmt=args.format, pretrained=args.pretrained,
                              task=args.task, layout=layout, progress=show_progress(args), engine=args.engine,
                              ray=RayOptions(args.address, args.actors, args.gpus_per_actor, args.decode_cpus),
                              fill=fill)
    except (DataError, BackendUnavailable, PackageError, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if report is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print("\n".join(report.summary(args.engine)))
    return 0 if report.all_ok else 1
