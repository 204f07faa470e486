"""``apt-video score INPUT --model MODEL -o OUT.csv``: one row per video, in input order."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .argtypes import positive_int


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
    p.add_argument("--batch", type=positive_int, help="clips per engine call (default: the engine's optimal batch)")
    p.add_argument("--backend", choices=["auto", "trt", "ort", "torch"], default="auto")
    p.add_argument("--labels", help="list file (or manifest) of labels: writes OUT.metrics.json")
    p.add_argument("--data-root", help="folder the list file's paths are relative to")
    p.add_argument("--top-k", type=positive_int, default=5, help="classes per row, best first (default 5)")
    p.add_argument("--resume", action="store_true", help="skip videos already in OUT and append the rest")
    p.add_argument("--workers", type=positive_int, default=2, help="decode worker processes")
    p.add_argument("--format", choices=["csv", "jsonl"], help="default: from OUT's extension")
    p.add_argument("--pretrained", help="backbone for a PyTorch checkpoint that holds only trained tensors")
    p.add_argument("--task", help="prompts + head file for a shared-backbone (prompts-as-input) engine")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from export import BackendUnavailable, load_runner
    from pipeline.cli import UserError
    from pipeline.data import DataError, Dataset, atomic_write_text
    from pipeline.probe import default_paths, probe_dataset
    from pipeline.rows import CSV_HEADER, OutputLock, choose_format, read_rows
    from pipeline.scoring import label_metrics, read_labels, score, scoring_inputs, scoring_spec

    out = Path(args.out)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = torch.cuda.is_available()
    if gpu:  # each rank on its own GPU: DALI, ONNX Runtime and TensorRT all follow the current device
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    if not out.parent.is_dir():
        raise UserError(f"{out}: the folder {out.parent} does not exist; create it first")
    try:
        fmt = choose_format(out, args.format)
        entries, ids = scoring_inputs(args.input, args.data_root)
    except DataError as exc:
        raise UserError(str(exc)) from None
    protected = {Path(args.input).resolve()} | {Path(e.path).resolve() for e in entries}
    if args.labels:
        protected.add(Path(args.labels).resolve())
    if out.resolve() in protected:
        raise UserError(f"{out}: is one of the inputs; choose another output file")
    if out.exists() and out.stat().st_size and not args.resume:
        raise UserError(f"{out}: exists; pass --resume to continue it, or remove it")
    try:
        runner = load_runner(args.model, args.backend, args.pretrained, args.task)
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    spec = scoring_spec(runner.card, args.views)
    batch = args.batch or max(spec.num_views, runner.preferred_batch)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    # each rank probes its own share (no rank waits on another's probing), into its own cache
    _, cache = default_paths(Path(args.input), beside=False)
    per = -(-len(entries) // world)
    lo, hi = rank * per, min(len(entries), (rank + 1) * per)
    if world > 1:
        cache = cache.with_name(f"{cache.stem}.rank{rank}of{world}.json")
    probed, _ = probe_dataset(Dataset(entries[lo:hi], [], args.input), cache, spec.num_frames, args.workers,
                              progress=False)
    entries = entries[:lo] + probed + entries[hi:]
    part = out if world == 1 else out.with_name(f".{out.name}.rank{rank}")
    device = "gpu" if gpu else "cpu"  # NVDEC and GPU resizing where there is a GPU
    try:
        with OutputLock(part):
            result = score(entries, ids, runner, spec, part, fmt, batch, args.top_k, args.resume or world > 1,
                           args.workers, (rank, world), device, progress=not args.no_progress and rank == 0)
    except DataError as exc:
        raise UserError(str(exc)) from None
    if world > 1:
        dist.barrier()
        totals = [None] * world
        dist.all_gather_object(totals, (result.ok, result.failed, result.skipped, result.clips))
        if rank != 0:
            return 0
        merged = "" if fmt == "jsonl" else CSV_HEADER
        for r in range(world):
            text = out.with_name(f".{out.name}.rank{r}").read_bytes().decode("utf-8", "surrogateescape")
            merged += text.removeprefix(CSV_HEADER) if fmt == "csv" else text
        atomic_write_text(out, merged)
        for r in range(world):
            out.with_name(f".{out.name}.rank{r}").unlink()
        result.ok, result.failed, result.skipped, result.clips = (sum(t[i] for t in totals) for i in range(4))
    secs = max(result.seconds, 1e-9)
    print(f"scored {result.total} videos: {result.ok} ok, {result.failed} failed, {result.skipped} already done; "
          f"{result.ok / secs:.2f} videos/s, {result.clips / secs:.1f} clips/s; backend {runner.name}; "
          f"views {spec.test_num_segment}x{spec.test_num_crop}; wrote {out}")
    all_rows = read_rows(out, fmt)
    if len(all_rows) != len(entries):  # every input row has exactly one output row
        raise UserError(f"{out}: holds {len(all_rows)} rows for {len(entries)} input videos; report this as a bug")
    if args.labels:
        try:
            metrics = label_metrics(all_rows, entries, ids, read_labels(args.labels, args.data_root),
                                    runner.classes)
        except DataError as exc:
            raise UserError(str(exc)) from None
        path = out.with_name(out.name + ".metrics.json")
        atomic_write_text(path, json.dumps(metrics, indent=1))
        print(f"labels: top-1 {metrics['top1']:.2f}, top-5 {metrics['top5']:.2f} over {metrics['videos']} videos; "
              f"wrote {path}")
    return 1 if any(r["status"] != "ok" for r in all_rows) else 0
