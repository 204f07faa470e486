"""``apt-video demo``: the whole job on built-in synthetic data, CPU only.

1. two synthetic motion tasks (A: right/down/left/up, B: the four diagonals) and a held-out folder
2. a tiny VideoMAE backbone trained end2end on A (``configs/demo_backbone.yaml``)
3. attention prompts tuned on B with that backbone frozen (``configs/demo.yaml``)
4. the prompt-tuned model exported to a verified ONNX graph
5. the held-out folder scored with 10x3 views, accuracy and throughput printed
6. the training curves plotted
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", default="demo-work", help="folder for everything the demo creates")
    p.add_argument("--quick", action="store_true", help="a reduced run (fewer videos and epochs) for tests")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pipeline.cli import main as cli
    from pipeline.config import load_config
    from pipeline.plot import plot_runs
    from pipeline.synth import make_motion_dataset
    from pipeline.train import run as train

    work = Path(args.work).resolve()
    per_class, held, backbone_epochs, prompt_epochs = (40, 3, 20, 3) if args.quick else (40, 10, 20, 8)
    t0 = time.perf_counter()
    print(f"[1/6] synthetic data under {work}")
    if not (work / "taskA" / "classes.txt").is_file():
        make_motion_dataset(work / "taskA", 4, per_class, 24, (64, 48), seed=1)
        make_motion_dataset(work / "taskB", 4, per_class, 24, (64, 48), offset_deg=45, seed=2)
        make_motion_dataset(work / "heldout", 4, held, 40, (80, 60), offset_deg=45, split=(0, 0, 1), seed=3)
    quiet = args.no_progress
    print("[2/6] backbone: tiny VideoMAE trained end2end on task A (right, down, left, up)")
    cfg = load_config("demo_backbone", sets=[f"epochs={backbone_epochs}", "final_test=false"])
    a = train(cfg, work / "taskA", work / "runs" / "backbone", resume="auto", progress=not quiet)
    print(f"      task A val top-1 {a['history'][-1].get('val_top1', float('nan')):.1f}%")
    print("[3/6] attention prompt tuning on task B (the diagonals), backbone frozen")
    cfg = load_config("demo", sets=[f"epochs={prompt_epochs}"])
    b = train(cfg, work / "taskB", work / "runs" / "prompts", finetune=str(work / "runs" / "backbone" / "checkpoints"
              / "last.safetensors"), resume="auto", progress=not quiet)
    print(f"      task B test top-1 {b['test']['top1']:.1f}% ({b['test']['views']} views; chance 25%)")
    print("[4/6] export to ONNX, verified against PyTorch")
    if cli(["export", str(work / "runs" / "prompts"), "-o", str(work / "export"), "--onnx-only"]) != 0:
        return 1
    print("[5/6] scoring the held-out folder with 10x3 views")
    out = work / "heldout_predictions.csv"
    out.unlink(missing_ok=True)
    code = cli(["score", str(work / "heldout" / "videos"), "--model", str(work / "export"), "-o", str(out),
                "--views", "10x3", "--labels", str(work / "heldout" / "test.csv")]
               + (["--no-progress"] if quiet else []))
    if code != 0:
        return code
    print("[6/6] training curves")
    plot_runs([work / "runs" / "backbone", work / "runs" / "prompts"], work / "curves.png",
              title="demo: end2end backbone (task A), prompt tuning (task B)")
    print(f"demo done in {time.perf_counter() - t0:.0f} s; everything is in {work} "
          f"(curves.png, heldout_predictions.csv, export/, runs/)")
    return 0
