"""``run_demo``: the whole job on built-in synthetic data, on the CPU, in a few minutes.

1. two synthetic motion tasks (A: right/down/left/up, B: the four diagonals) and a held-out folder
2. a tiny VideoMAE backbone trained end2end on A (``configs/demo_backbone.yaml``), standing in for
   VideoMAE pre-training (no weights can be downloaded where the demo runs)
3. attention prompts tuned on B with that backbone frozen (``configs/demo.yaml``)
4. the prompt-tuned model exported to a verified ONNX package
5. the held-out folder scored with 10x3 views against its labels
6. the training curves plotted (``curves.png``)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class DemoResult:
    work: Path
    backbone_val_top1: float
    prompt_test_top1: float
    heldout_top1: float
    seconds: float


def run_demo(work: str | Path = "demo-work", quick: bool = False, progress: bool = True,
             say: Callable[[str], None] = print) -> DemoResult:
    from .config import load_config
    from .exporting import export_run
    from .plot import plot_runs
    from .scoring import score_videos
    from .synth import make_motion_dataset
    from .train import train

    work = Path(work).resolve()
    per_class, held, backbone_epochs, prompt_epochs = (40, 3, 20, 3) if quick else (40, 10, 20, 8)
    t0 = time.perf_counter()
    say(f"[1/6] synthetic data under {work}")
    if not (work / "taskA" / "classes.txt").is_file():
        make_motion_dataset(work / "taskA", 4, per_class, 24, (64, 48), seed=1)
        make_motion_dataset(work / "taskB", 4, per_class, 24, (64, 48), offset_deg=45, seed=2)
        make_motion_dataset(work / "heldout", 4, held, 40, (80, 60), offset_deg=45, split=(0, 0, 1), seed=3)
    say("[2/6] backbone: tiny VideoMAE trained end2end on task A (right, down, left, up)")
    cfg = load_config("demo_backbone", sets=[f"epochs={backbone_epochs}", "final_test=false"])
    a = train(cfg, work / "taskA", work / "runs" / "backbone", resume="auto", progress=progress)
    a_top1 = a["history"][-1].get("val_top1", float("nan"))
    say(f"      task A val top-1 {a_top1:.1f}%")
    say("[3/6] attention prompt tuning on task B (the diagonals), backbone frozen")
    cfg = load_config("demo", sets=[f"epochs={prompt_epochs}"])
    b = train(cfg, work / "taskB", work / "runs" / "prompts", resume="auto", progress=progress,
              finetune=str(work / "runs" / "backbone" / "checkpoints" / "last.safetensors"))
    say(f"      task B test top-1 {b['test']['top1']:.1f}% ({b['test']['views']} views; chance 25%)")
    say("[4/6] export to ONNX, verified against PyTorch")
    package, where = export_run(work / "runs" / "prompts", work / "export", tensorrt=False)
    if not package.passed:
        raise RuntimeError(f"the exported graph failed its verification (see {where / 'model.json'})")
    say("[5/6] scoring the held-out folder with 10x3 views")
    out = work / "heldout_predictions.csv"
    out.unlink(missing_ok=True)
    report = score_videos(work / "heldout" / "videos", work / "export", out, views=(10, 3),
                          labels=work / "heldout" / "test.csv", progress=progress)
    r = report.result
    say(f"      {r.total} videos, {r.ok} ok; top-1 {report.metrics['top1']:.1f}% (chance 25%); "
        f"{r.ok / max(r.seconds, 1e-9):.2f} videos/s on {report.backend}; wrote {out.name}")
    say("[6/6] training curves")
    plot_runs([work / "runs" / "backbone", work / "runs" / "prompts"], work / "curves.png",
              title="demo: end2end backbone (task A), prompt tuning (task B)")
    seconds = time.perf_counter() - t0
    say(f"demo done in {seconds:.0f} s; everything is in {work} (curves.png, heldout_predictions.csv, export/, runs/)")
    return DemoResult(work, a_top1, b["test"]["top1"], report.metrics["top1"], seconds)
