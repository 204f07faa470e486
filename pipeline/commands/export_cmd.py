"""``apt-video export CHECKPOINT -o OUT``: folded ONNX graph, op check, verification against
PyTorch on random and real clips, metadata, and a TensorRT engine where TensorRT and a GPU exist."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .argtypes import nonneg_int, positive_float

log = logging.getLogger("apt_video")


def _batch(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch {text!r}: expected MIN:OPT:MAX, e.g. 1:30:60") from None
    if not 1 <= lo <= opt <= hi:
        raise argparse.ArgumentTypeError(f"--batch {text!r}: need 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


def _opset(text: str) -> int:
    if not text.isdigit() or not 18 <= int(text) <= 23:
        raise argparse.ArgumentTypeError(f"{text!r}: choose 18 to 23 (PyTorch's exporter writes opset 18 or newer)")
    return int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training run folder (its best weights) or an apt-video .safetensors")
    p.add_argument("--pretrained", help="backbone checkpoint (default: the one named in the weights' metadata)")
    p.add_argument("-o", "--out", required=True, help="output folder: model.onnx, model.json, model.plan")
    p.add_argument("--onnx-only", action="store_true", help="do not build a TensorRT engine")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    p.add_argument("--batch", type=_batch, default=(1, 30, 60),
                   help="TensorRT profile MIN:OPT:MAX clips (default 1:30:60, one or two videos of 10x3 views)")
    p.add_argument("--opset", type=_opset, default=23,
                   help="ONNX opset, 18 to 23 (23: the fused Attention op; default 23)")
    p.add_argument("--attention", choices=["fused", "matmul"],
                   help="attention form (default: fused at opset >= 23, else matmul)")
    p.add_argument("--prompts-as-input", action="store_true",
                   help="shared-backbone graph: prompts are an input, each task a small file (task.safetensors)")
    p.add_argument("--workspace", type=positive_float, default=4.0, help="TensorRT workspace in GB")
    p.add_argument("--timing-cache", help="TensorRT timing cache file, read and updated")
    p.add_argument("--verify-clips", type=nonneg_int, default=4, help="real clips to verify on (from the run's data)")


def real_clips(meta: dict, n: int):
    """Up to ``n`` validation clips of the run's own data (the test view geometry), or None."""
    import torch

    from pipeline.probe import load_manifest
    from pipeline.scoring import clip_spec_from_meta
    from pipeline.loader import VideoLoader

    data = meta.get("data") or {}
    root = Path(data.get("root", ""))
    for name in (data.get("val_list"), data.get("test_list")):
        if not name or not (root / name).is_file():
            continue
        ds, _ = load_manifest(root / name, root, meta["num_frames"])
        usable = ds.usable()[:n]
        if usable:
            loader = VideoLoader(usable, clip_spec_from_meta(meta), mode="eval", batch_size=len(usable),
                                 num_workers=1)
            clips = [b.video for b in loader.epoch(0)]
            return torch.cat(clips) if clips else None
    return None


def run(args: argparse.Namespace) -> int:
    import torch

    import models
    from export import export_onnx, task_tensors, unsupported_ops, verify_graph
    from export.trt import build_engine, trt_missing
    from pipeline.cli import UserError
    from pipeline.data import atomic_write_text

    ckpt = Path(args.checkpoint)
    if ckpt.is_dir():
        cands = [ckpt / "checkpoints" / n for n in ("best.safetensors", "last.safetensors")]
        ckpt = next((c for c in cands if c.is_file()), None)
        if ckpt is None:
            raise UserError(f"{args.checkpoint}: no checkpoints/best.safetensors or last.safetensors in this folder")
    try:
        model, meta = models.build_from_trained(ckpt, args.pretrained)
    except models.CheckpointError as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    try:
        export_onnx(model, onnx_path, precision=args.precision, opset=args.opset, attention=args.attention,
                    prompts_as_input=args.prompts_as_input, max_batch=max(args.batch[2], 64))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    problems = unsupported_ops(onnx_path, args.opset)
    clips = {"random": torch.randn(3, 3, model.num_frames, model.img_size, model.img_size)}
    real = real_clips(meta, args.verify_clips)
    if real is not None:
        clips["real"] = real
    task = task_tensors(model) if args.prompts_as_input else None
    verification = verify_graph(onnx_path, model, clips, args.precision,
                                prompts=task["prompts"] if task else None)
    record = {
        "format": "apt-video-export", "version": 1, "onnx": onnx_path.name, "plan": None,
        "model": meta["model"], "model_overrides": meta["model_overrides"], "classes": meta["classes"],
        "input": {"name": "video", "shape": ["batch", 3, model.num_frames, model.img_size, model.img_size],
                  "dtype": "float32", "layout": "NCTHW, normalised"},
        "output": {"name": "features" if task else "logits",
                   "shape": ["batch", model.embed_dim if task else model.num_classes], "dtype": "float32"},
        "batch": {"min": args.batch[0], "opt": args.batch[1], "max": args.batch[2]},
        **{k: meta[k] for k in ("num_frames", "input_size", "sampling_rate", "sampler", "test_num_segment",
                                "test_num_crop", "mean", "std", "prompt_num_tokens")},
        "precision": args.precision, "opset": args.opset,
        "attention": args.attention or ("fused" if args.opset >= 23 else "matmul"),
        "prompts_as_input": bool(task), "task": "task.safetensors" if task else None,
        "checkpoint": {"path": str(ckpt.resolve()), "sha256": models.sha256_file(ckpt)},
        "pretrained": meta.get("pretrained"), "data": meta.get("data"),
        "op_check": {"tensorrt_unsupported": problems, "passed": not problems},
        "verification": verification,
    }
    if task:
        from safetensors.torch import save_file
        save_file(task, str(out / "task.safetensors"))
    ok = verification["passed"] and not problems
    if ok and not args.onnx_only:
        missing = trt_missing()
        if missing:
            print(f"TensorRT engine not built: {missing}")
        else:
            record["tensorrt"] = build_engine(onnx_path, out / "model.plan", args.batch, args.precision,
                                              args.workspace, args.timing_cache)
            record["plan"] = "model.plan"
    atomic_write_text(out / "model.json", json.dumps(record, indent=1))
    for name, s in verification["sets"].items():
        print(f"verify {name:6s} ({s['clips']} clips, {', '.join(verification['providers'])}): max abs "
              f"{s['max_abs_error']:.2e}, max rel {s['max_rel_error']:.2e}, top-1 agreement "
              f"{100 * s['top1_agreement']:.0f}% -> {'ok' if s['passed'] else 'FAILED'}")
    for p in problems:
        print(f"op check: {p}")
    print(f"{'wrote' if ok else 'FAILED, wrote for inspection'} {out}/model.onnx and model.json")
    return 0 if ok else 1
