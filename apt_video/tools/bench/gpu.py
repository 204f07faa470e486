"""``apt-video bench gpu``: every GPU figure of the product from one command, in one GPU window.

Four stages, each against an anchor measured in the same run, each time-boxed (``Plan.seconds``);
a stage that raises prints its traceback and the next one runs, and the JSON is written after
every stage, so a lent GPU that goes away mid-run still leaves the stages done so far:

- ``loader``: the presets' training clip (16 frames at rate 4, 224 px, ``num_sample`` 2, the
  presets' RandAugment) from 320x240 H.264 and VP9 videos at two batch sizes and two DALI pool
  sizes, split into decode only (the loader's own source and decoder, frames never copied to the
  host), decode + crop + normalise (the loader without RandAugment) and the whole loader; anchors:
  DALI's own GPU reader (``fn.readers.video``: what a DALI user writes) and VideoMAE's decord + PIL
  loader with one worker per core. Clips/s, and the GPU's and NVDEC's busy share (NVML).
- ``infer``: ViT-S and ViT-B 16x224 with 200 prompts at batch 30 through the library's runners:
  PyTorch bf16 (folded), ONNX Runtime CUDA fp32 and fp16 (IOBinding), TensorRT fp16 where present;
  clips/s against the compute floor (the bf16 matmul rate measured here / the model's FLOP per clip).
- ``train``: the library's training step (``forward_backward`` + ``optimizer_step``) for prompt,
  linear and end2end ViT-B at two batch sizes (bf16): ms/step, clips/s, peak memory; then the
  training loop fed by the GPU loader: clips/s and the share of the step's own rate it reaches.
- ``score``: ``score_videos`` over H.264 videos of 160 frames with ViT-B 10x3: time to the first row
  after the model is loaded, the steady videos/s, and their share of the runner's inference-only rate.

``Plan`` holds every size; ``Plan.micro()`` runs the same code on the CPU in seconds (the tests).
The runner (time boxes, JSON, NVML) is ``tools.bench.gpu_runner``.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from apt_video import models
from apt_video.config import load_config
from apt_video.errors import UserError
from apt_video.export import load_runner
from apt_video.export.trt import trt_missing
from apt_video.exporting import export_run
from apt_video.models.files import unwritable
from apt_video.pipeline.graphs import AugmentSpec
from apt_video.pipeline.loader import VideoLoader, default_threads
from apt_video.pipeline.randaug import parse_rand_augment
from apt_video.scoring import score_videos
from apt_video.tools.baselines import decord_loader
from apt_video.train import amp_settings, build_optimizer, forward_backward, optimizer_step

from .common import bench_videos, cycle, loader_rate, timed
from .gpu_runner import STAGES, Busy, Deadline, Plan, Stage, matmul_tflops, measurements, run_stages, sync


# -- loader ------------------------------------------------------------------------------------------------
def _videos(plan: Plan, work: Path, codec: str, n: int | None = None, frames: int | None = None):
    n, frames = n or plan.videos, frames or plan.video_frames
    folder = work / f"{codec}_{n}x{frames}"
    folder.mkdir(parents=True, exist_ok=True)
    return bench_videos(folder, codec, n, frames=frames, size=plan.video_size, threads=os.cpu_count() or 1)


def _loader(plan: Plan, entries, batch: int, pool: int, rand_augment: bool = True):
    augment = AugmentSpec(rand_augment=parse_rand_augment(plan.rand_augment) if rand_augment else None)
    return VideoLoader(entries, plan.spec, batch_size=batch, num_workers=plan.source_workers, device=plan.device,
                       num_sample=plan.num_sample, num_threads=pool or None, reuse=True, augment=augment)


def _time_loader(plan: Plan, loader) -> dict:
    with Busy() as busy:
        secs, clips = timed(cycle(loader.epoch), 2, plan.timed_batches)
        sync(plan.device)
    loader.close()
    return {"clips_per_s": clips / secs, "threads": loader.num_threads, **busy.figures(),
            "routes": _routes(loader)}


def _routes(loader) -> dict:
    pyav = [why for why in loader.routes.values() if why]
    return {"dali": len(loader.routes) - len(pyav), "pyav": len(pyav), **({"first_pyav": pyav[0]} if pyav else {})}


def _time_runs(plan: Plan, pipe) -> tuple[float, dict]:
    """Seconds for ``plan.timed_batches`` runs of a built DALI pipeline after two, and the busy share."""
    for _ in range(2):
        pipe.run()
    with Busy() as busy:
        t0 = time.perf_counter()
        for _ in range(plan.timed_batches):
            pipe.run()
        sync(plan.device)
        secs = time.perf_counter() - t0
    return secs, busy.figures()


def _time_decode(plan: Plan, entries, batch: int, pool: int) -> dict:
    """The loader's source and decoder alone: decodes/s and the clips/s they would feed."""
    loader = _loader(plan, entries, batch, pool)
    secs, busy = _time_runs(plan, loader.decode_stage())
    decodes = batch * plan.timed_batches
    return {"decodes_per_s": decodes / secs, "clips_per_s": decodes * plan.num_sample / secs,
            "threads": loader.num_threads, **busy, "routes": _routes(loader)}


def _time_dali_reader(plan: Plan, entries, batch: int) -> dict:
    """DALI's own GPU reader, as a DALI user writes the training clip: ``fn.readers.video`` (16 frames,
    stride 4, shuffled), random resized crop, flip, normalise."""
    if plan.device != "gpu":
        return {"skipped": "fn.readers.video runs on the GPU only"}
    from nvidia.dali import fn, pipeline_def, types

    spec = plan.spec

    @pipeline_def(batch_size=batch, num_threads=default_threads(), device_id=0)
    def pipe():
        video = fn.readers.video(device="gpu", filenames=[e.path for e in entries], sequence_length=spec.num_frames,
                                 stride=spec.sampling_rate, random_shuffle=True, initial_fill=len(entries),
                                 name="reader")
        video = fn.random_resized_crop(video, size=[spec.input_size] * 2)
        return fn.crop_mirror_normalize(video, dtype=types.FLOAT, output_layout="CFHW",
                                        mirror=fn.random.coin_flip(probability=0.5),
                                        mean=[255 * m for m in spec.mean], std=[255 * s for s in spec.std])

    p = pipe()
    p.build()
    secs, busy = _time_runs(plan, p)
    return {"clips_per_s": batch * plan.timed_batches / secs, **busy}


def _time_videomae(plan: Plan, entries, batch: int) -> dict:
    """VideoMAE's training loader (decord + PIL RandAugment), one DataLoader worker per core."""
    try:
        import decord  # noqa: F401  (the baseline's decoder: the dev extra)
    except ImportError:
        return {"skipped": "decord is not installed (pip install decord)"}
    workers = os.cpu_count() or 1
    rate = loader_rate(decord_loader([e.path for e in entries], plan.spec, plan.rand_augment, batch_size=batch,
                                      workers=workers, num_sample=plan.num_sample), 2, plan.timed_batches)
    return {"clips_per_s": rate, "workers": workers}


def stage_loader(plan: Plan, work: Path, deadline: Deadline, state: dict) -> dict:
    entries = {codec: _videos(plan, work, codec) for codec in plan.codecs}
    big, small = max(plan.batches), min(plan.batches)
    auto = plan.pools[-1]
    items = []  # the most telling first: the deadline cuts from the end
    for codec in plan.codecs:
        items.append((f"{codec} ours b{big} pool {auto or 'auto'}", lambda c=codec: _time_loader(
            plan, _loader(plan, entries[c], big, auto))))
    for codec in plan.codecs:
        items.append((f"{codec} ours b{small} pool {auto or 'auto'}", lambda c=codec: _time_loader(
            plan, _loader(plan, entries[c], small, auto))))
        items.append((f"{codec} decode only b{big}", lambda c=codec: _time_decode(plan, entries[c], big, auto)))
        items.append((f"{codec} videomae decord b{small}", lambda c=codec: _time_videomae(plan, entries[c], small)))
        items.append((f"{codec} dali reader b{big}", lambda c=codec: _time_dali_reader(plan, entries[c], big)))
    for codec in plan.codecs:
        items.append((f"{codec} decode only b{small}", lambda c=codec: _time_decode(plan, entries[c], small, auto)))
        items.append((f"{codec} crop+normalise b{big}", lambda c=codec: _time_loader(
            plan, _loader(plan, entries[c], big, auto, rand_augment=False))))
        for pool in plan.pools[:-1]:
            for b in plan.batches:
                items.append((f"{codec} ours b{b} pool {pool}", lambda c=codec, b=b, pool=pool: _time_loader(
                    plan, _loader(plan, entries[c], b, pool))))
    res = measurements(items, deadline)
    for codec in plan.codecs:
        ours = res.get(f"{codec} ours b{big} pool {auto or 'auto'}", {}).get("clips_per_s")
        base = res.get(f"{codec} videomae decord b{small}", {}).get("clips_per_s")
        few = res.get(f"{codec} ours b{small} pool {auto or 'auto'}", {}).get("clips_per_s")
        res[f"{codec} ratios"] = {"ours_vs_videomae": ours / base if ours and base else None,
                                  "batch_scaling": ours / few if ours and few else None}
    return res


# -- inference ---------------------------------------------------------------------------------------------
def _card(plan: Plan, name: str, classes: int) -> models.ModelCard:
    return models.ModelCard(model=name, model_overrides={"num_classes": classes, "prompt_num_tokens": plan.prompts,
                                                         "init_scale": 1.0},
                            classes=models.class_names(classes), transfer_type="end2end", clip=plan.spec)


def bench_model(plan: Plan, work: Path, name: str, state: dict):
    """A randomly initialised ``name`` with ``plan.prompts`` prompts, saved as a self-contained
    weights file (made once per run): ``(model, card, weights)``."""
    if name not in state.setdefault("models", {}):
        torch.manual_seed(0)
        # init_scale 1: a head whose logits are not near-uniform, so fp16 keeps the top-1 (verification)
        model = models.create_model(name, num_classes=400, prompt_num_tokens=plan.prompts, init_scale=1.0).eval()
        model.transfer_type = "end2end"  # every tensor saved
        card = _card(plan, name, 400)
        weights = work / f"{name}.safetensors"
        models.save_trained(model, weights, card)
        state["models"][name] = (model, card, weights)
    return state["models"][name]


def exported(plan: Plan, work: Path, name: str, precision: str, state: dict) -> Path:
    """The export package of ``bench_model(name)`` at ``precision`` (TensorRT where present; once per run)."""
    key = (name, precision)
    if key not in state.setdefault("packages", {}):
        _, _, weights = bench_model(plan, work, name, state)
        package, where = export_run(weights, work / f"export_{name}_{precision}", precision=precision,
                                    verify_clips=0, tensorrt=trt_missing() is None and plan.device == "gpu",
                                    batch=(1, plan.infer_batch, 2 * plan.infer_batch))
        state["packages"][key] = where
    return state["packages"][key]


def _time_runner(plan: Plan, runner, x: torch.Tensor, flop: float, tflops: float) -> dict:
    runner(x)
    runner(x)
    sync(plan.device)
    reps = 10 if plan.device == "gpu" else 2
    with Busy() as busy:
        t0 = time.perf_counter()
        for _ in range(reps):
            runner(x)
        sync(plan.device)
        secs = time.perf_counter() - t0
    rate = reps * len(x) / secs
    return {"clips_per_s": rate, "fraction_of_floor": rate * flop / (tflops * 1e12), "backend": runner.name,
            **busy.figures()}


def stage_infer(plan: Plan, work: Path, deadline: Deadline, state: dict) -> dict:
    tflops = state["matmul_tflops"] = matmul_tflops(plan.device)
    res = {"matmul": {"tflops_bf16" if plan.device == "gpu" else "tflops_fp32": tflops}}
    items = []
    for name in plan.infer_models:
        model, card, weights = bench_model(plan, work, name, state)
        flop = models.flops_per_clip(model)
        dev = "cuda" if plan.device == "gpu" else "cpu"
        c = plan.spec
        x = torch.randn(plan.infer_batch, 3, c.num_frames, c.input_size, c.input_size, device=dev)
        res[f"{name} floor"] = {"gflop_per_clip": flop / 1e9, "floor_clips_per_s": tflops * 1e12 / flop}
        items.append((f"{name} torch {_torch_precision(plan)}", lambda w=weights, x=x, f=flop: _time_runner(
            plan, load_runner(w, "torch", max_batch=plan.infer_batch), x, f, tflops)))
        precisions = ("fp16", "fp32") if plan.device == "gpu" else ("fp32",)
        for precision in precisions:
            items.append((f"{name} ort {precision}", lambda n=name, p=precision, x=x, f=flop: _time_runner(
                plan, load_runner(exported(plan, work, n, p, state), "ort"), x, f, tflops)))
        items.append((f"{name} tensorrt fp16", lambda n=name, x=x, f=flop: _time_trt(plan, work, n, x, f, tflops,
                                                                                      state)))
    res.update(measurements(items, deadline))
    state["infer"] = res
    return res


def _torch_precision(plan: Plan) -> str:
    return "bf16" if plan.device == "gpu" else "fp32"  # TorchRunner: bf16 autocast on a GPU


def _time_trt(plan: Plan, work: Path, name: str, x, flop: float, tflops: float, state: dict) -> dict:
    missing = trt_missing()
    if missing or plan.device != "gpu":
        return {"skipped": missing or "TensorRT runs on the GPU"}
    return _time_runner(plan, load_runner(exported(plan, work, name, "fp16", state), "trt"), x, flop, tflops)


# -- training ---------------------------------------------------------------------------------------------
def _step_model(plan: Plan, transfer: str):
    torch.manual_seed(0)
    model = models.create_model(plan.train_model, num_classes=51, transfer_type=transfer,
                                prompt_num_tokens=plan.prompts)
    dev = torch.device("cuda" if plan.device == "gpu" else "cpu")
    model.to(dev).train()
    cfg = load_config("demo", sets=[f"transfer_type={transfer}"])
    return model, build_optimizer(cfg, model), cfg, dev


def _time_step(plan: Plan, transfer: str, batch: int) -> dict:
    """The library's training step on one batch again and again (bf16 on the GPU)."""
    model, opt, cfg, dev = _step_model(plan, transfer)
    x = torch.randn(batch, 3, plan.spec.num_frames, plan.spec.input_size, plan.spec.input_size, device=dev)
    y = torch.randint(0, 51, (batch,), device=dev)
    amp_dtype, _ = amp_settings("bf16", dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(plan.train_steps + 2):
        t0 = time.perf_counter()
        forward_backward(model, x, y, cfg, amp_dtype=amp_dtype)
        optimizer_step(model, opt)
        sync(plan.device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    return {"ms_per_step": 1000 * step, "clips_per_s": batch / step, "peak_gb": peak,
            "trainable": models.count_parameters(model)[0]}


def _time_loop(plan: Plan, work: Path, step: dict | None) -> dict:
    """The training loop: the GPU loader (the presets' clip, the largest batch) feeding the library's
    step for ``plan.loop_steps`` steps; clips/s and the share of the step's own rate it reaches."""
    batch = max(plan.train_batches)
    entries = _videos(plan, work, plan.codecs[0])
    loader = _loader(plan, entries, max(1, batch // plan.num_sample), plan.pools[-1])
    model, opt, cfg, dev = _step_model(plan, "prompt")
    amp_dtype, _ = amp_settings("bf16", dev)
    batches, clips, memory = cycle(loader.epoch), 0, {}
    for i in range(plan.loop_steps + 3):
        if i == 3:
            sync(plan.device)
            t0, clips = time.perf_counter(), 0
        b = next(batches)
        forward_backward(model, b.video.to(dev, non_blocking=True), b.labels.to(dev, non_blocking=True) % 51, cfg,
                         amp_dtype=amp_dtype)
        optimizer_step(model, opt)
        clips += len(b.video)
        if dev.type == "cuda" and i in (10, plan.loop_steps + 2):
            memory[i] = round(torch.cuda.memory_allocated() / 2**30, 3)
    sync(plan.device)
    secs = time.perf_counter() - t0
    loader.close()
    rate = clips / secs
    model_rate = step.get("clips_per_s") if step else None
    return {"clips_per_s": rate, "clips_per_step": len(b.video), "share": rate / model_rate if model_rate else None,
            "allocated_gb_by_step": memory}


def stage_train(plan: Plan, work: Path, deadline: Deadline, state: dict) -> dict:
    big = max(plan.train_batches)
    items = [(f"prompt b{big}", lambda: _time_step(plan, "prompt", big))]
    items += [(f"{t} b{b}", lambda t=t, b=b: _time_step(plan, t, b))
              for b in sorted(plan.train_batches, reverse=True) for t in ("prompt", "linear", "end2end")
              if (t, b) != ("prompt", big)]
    res = measurements(items[:1], deadline)
    res.update(measurements([("loop prompt", lambda: _time_loop(plan, work, res.get(f"prompt b{big}")))], deadline))
    res.update(measurements(items[1:], deadline))
    return res


# -- scoring ------------------------------------------------------------------------------------------------
def _time_score(plan: Plan, work: Path, folder: Path, model: Path, backend: str, inference: dict | None) -> dict:
    out = work / f"scores_{backend}_{model.name}.csv"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with Busy() as busy:
        report = score_videos(folder, model, out, backend=backend, progress=False)
    r = report.result
    steady = r.steady_rate()
    infer_rate = inference.get("clips_per_s") if inference else None
    return {"first_row_s": r.startup, "steady_videos_per_s": steady, "total_s": time.perf_counter() - t0,
            "ok": r.ok, "rows": len(report.rows), "backend": report.backend,
            "share_of_inference": steady * plan.spec.num_views / infer_rate
            if infer_rate and steady == steady else None,
            **busy.figures()}


def stage_score(plan: Plan, work: Path, deadline: Deadline, state: dict) -> dict:
    entries = _videos(plan, work, plan.codecs[0], plan.score_videos, plan.score_frames)
    folder = Path(entries[0].path).parent
    name = plan.score_model
    infer = state.get("infer", {})
    precision = "fp16" if plan.device == "gpu" else "fp32"
    items = [(f"ort {precision}", lambda: _time_score(plan, work, folder, exported(plan, work, name, precision, state),
                                                      "ort", infer.get(f"{name} ort {precision}"))),
             (f"torch {_torch_precision(plan)}", lambda: _time_score(
                 plan, work, folder, bench_model(plan, work, name, state)[2], "torch",
                 infer.get(f"{name} torch {_torch_precision(plan)}")))]
    return measurements(items, deadline)


STAGE_FUNCTIONS = {"loader": stage_loader, "infer": stage_infer, "train": stage_train, "score": stage_score}


def run_gpu_command(json_path: str | None, work: str | None, stages: str) -> int:
    """The command: refused in one line (exit 2) where no GPU is visible, or for a bad stage name or
    JSON path, before anything runs; else every stage asked for, in order."""
    names = tuple(s.strip() for s in stages.split(",") if s.strip())
    bad = [s for s in names if s not in STAGE_FUNCTIONS]
    if bad or not names:
        raise UserError(f"--stages {stages!r}: choose from {', '.join(STAGES)}")
    if json_path and (why := unwritable(json_path)):
        raise UserError(f"--json {why}")
    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU is visible to PyTorch on this host; run it on a GPU host (bench/README.md, GPU)")
    with tempfile.TemporaryDirectory(prefix="apt-video-bench-gpu-") as tmp:
        folder = Path(work or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        run_gpu_bench(json_path, folder, names)
    return 0


def run_gpu_bench(json_path: str | Path | None, work: Path, stages: tuple[str, ...] = STAGES,
                  plan: Plan | None = None, say: Callable[[str], None] = print) -> dict:
    """``apt-video bench gpu``: the stages asked for, in order, at ``plan``'s sizes (default: the GPU's)."""
    plan = plan or Plan()
    return run_stages([Stage(s, STAGE_FUNCTIONS[s]) for s in stages], plan, work, json_path, say)
