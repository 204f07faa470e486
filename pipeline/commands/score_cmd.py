"""``apt-video score INPUT --model MODEL -o OUT.csv``: one row per video, in input order."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _views(text: str) -> tuple[int, int]:
    try:
        s, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--views {text!r}: expected SEGMENTSxCROPS, e.g. 10x3") from None
    if s < 1 or c < 1:
        raise argparse.ArgumentTypeError(f"--views {text!r}: both numbers must be >= 1")
    return s, c


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder (searched recursively), VideoMAE list file, or manifest")
    p.add_argument("--model", required=True,
                   help="export folder / model.json / model.onnx / model.plan, or a training run / weights file")
    p.add_argument("-o", "--out", required=True, help="output file (.csv or .jsonl)")
    p.add_argument("--views", type=_views, help="SEGMENTSxCROPS (default: the model's test views)")
    p.add_argument("--batch", type=int, help="clips per engine call (default: the engine's optimal batch)")
    p.add_argument("--backend", choices=["auto", "trt", "ort", "torch"], default="auto")
    p.add_argument("--labels", help="list file (or manifest) of labels: writes OUT.metrics.json")
    p.add_argument("--data-root", help="folder the list file's paths are relative to")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--resume", action="store_true", help="skip videos already in OUT and append the rest")
    p.add_argument("--workers", type=int, default=2, help="decode worker processes")
    p.add_argument("--format", choices=["csv", "jsonl"], help="default: from OUT's extension")
    p.add_argument("--pretrained", help="backbone for a PyTorch checkpoint that holds only trained tensors")
    p.add_argument("--task", help="prompts + head file for a shared-backbone (prompts-as-input) engine")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from export import BackendUnavailable, load_runner
    from pipeline.cli import UserError
    from pipeline.data import DataError, atomic_write_text
    from pipeline.probe import default_paths, probe_dataset
    from pipeline.data import Dataset
    from pipeline.scoring import (COLUMNS, clip_spec_from_meta, label_metrics, read_labels, read_rows, score,
                                  scoring_inputs)

    out = Path(args.out)
    fmt = args.format or ("jsonl" if out.suffix == ".jsonl" else "csv")
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    try:
        entries, ids = scoring_inputs(args.input, args.data_root)
    except DataError as exc:
        raise UserError(str(exc)) from None
    protected = {Path(args.input).resolve()} | {Path(e.path).resolve() for e in entries}
    if args.labels:
        protected.add(Path(args.labels).resolve())
    if out.resolve() in protected:
        raise UserError(f"{out}: is one of the inputs; choose another output file")
    if out.exists() and not args.resume and rank == 0:
        raise UserError(f"{out}: exists; pass --resume to continue it, or remove it")
    try:
        runner = load_runner(args.model, args.backend, args.pretrained, args.task)
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    spec = clip_spec_from_meta(runner.meta, args.views)
    batch = args.batch or max(spec.num_views, (runner.meta.get("batch") or {}).get("opt", 30))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    _, cache = default_paths(Path(args.input), beside=False)
    if rank == 0:
        probe_dataset(Dataset(entries, [], args.input), cache, spec.num_frames, args.workers, progress=False)
    if world > 1:
        dist.barrier()
    entries, _ = probe_dataset(Dataset(entries, [], args.input), cache, spec.num_frames, 1, progress=False)
    part = out if world == 1 else out.with_name(f".{out.name}.rank{rank}")
    import torch

    device = "gpu" if torch.cuda.is_available() else "cpu"  # NVDEC and GPU resizing where there is a GPU
    result = score(entries, ids, runner, spec, part, fmt, batch, args.top_k, args.resume or world > 1,
                   args.workers, (rank, world), device, progress=not args.no_progress and rank == 0)
    if world > 1:
        dist.barrier()
        totals = [None] * world
        dist.all_gather_object(totals, (result.ok, result.failed, result.skipped, result.clips))
        if rank != 0:
            return 0
        merged = "" if fmt == "jsonl" else ",".join(COLUMNS) + "\n"
        for r in range(world):
            text = out.with_name(f".{out.name}.rank{r}").read_text(encoding="utf-8")
            merged += text if fmt == "jsonl" else text.split("\n", 1)[1]
        atomic_write_text(out, merged)
        for r in range(world):
            out.with_name(f".{out.name}.rank{r}").unlink()
        result.ok, result.failed, result.skipped, result.clips = (sum(t[i] for t in totals) for i in range(4))
    secs = max(result.seconds, 1e-9)
    print(f"scored {result.ok} ok, {result.failed} failed, {result.skipped} already done; "
          f"{result.ok / secs:.2f} videos/s, {result.clips / secs:.1f} clips/s; backend {runner.name}; "
          f"views {spec.test_num_segment}x{spec.test_num_crop}; wrote {out}")
    if args.labels:
        try:
            metrics = label_metrics(read_rows(out, fmt), entries, ids, read_labels(args.labels, args.data_root),
                                    runner.classes)
        except DataError as exc:
            raise UserError(str(exc)) from None
        path = out.with_name(out.name + ".metrics.json")
        atomic_write_text(path, json.dumps(metrics, indent=1))
        print(f"labels: top-1 {metrics['top1']:.2f}, top-5 {metrics['top5']:.2f} over {metrics['videos']} videos; "
              f"wrote {path}")
    all_rows = read_rows(out, fmt)
    return 1 if any(r["status"] != "ok" for r in all_rows) else 0
