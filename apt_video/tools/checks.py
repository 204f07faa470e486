"""The checks of ``apt-video doctor`` (``apt_video.tools.doctor`` runs them and reports).

Every check compares against a reference computed here in the same run: PyAV's frames for DALI's
decoders, the CPU pipeline for the GPU one, the fp32 CPU step and model for CUDA and bf16, ONNX
Runtime for TensorRT. Each returns ``(passed, detail, figures)`` or raises ``Skip``.
"""
from __future__ import annotations

import dataclasses as dc
import datetime
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from apt_video import models
from apt_video.config import load_config
from apt_video.export import THRESHOLDS, compare, export_onnx, export_package, load_runner, onnx_session
from apt_video.export.trt import trt_missing
from apt_video.pipeline.graphcheck import check_gpu_graphs as define_all
from apt_video.pipeline.graphs import AugmentSpec, file_decoder
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.randaug import OP_NAMES, VIDEOMAE_RAND_AUGMENT, parse_rand_augment
from apt_video.pipeline.video import CODECS, decode_frames, probe_video, write_video
from apt_video.scoring import score_videos
from apt_video.train import forward_backward

from .bench.common import bench_videos, cycle, loader_rate, timed
from .synth import motion_clip

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class Skip(Exception):
    """Raised by a check that cannot run here; the message says why."""


@dataclass
class Result:
    name: str
    status: str
    detail: str
    figures: dict = field(default_factory=dict)


@dataclass
class Context:
    work: Path
    quick: bool
    gpu: bool


@dataclass
class Check:
    name: str
    run: Callable[[Context], tuple[bool, str, dict]]  # (passed, detail, figures), or raises Skip
    needs_gpu: bool = False


#: the architecture of the checks that need a model, not a figure (seconds on a CPU)
MICRO = "vit_micro_patch16_112"
#: the size of the test videos: one NVDEC takes in every codec (``pipeline.nvdec``), as real data is
NVDEC_SIZE = (320, 240)
#: a VP9 video below NVDEC's minimum (128x128): it must take the PyAV route, and decode right
BELOW_NVDEC = ("vp9", (160, 120))


# -- helpers ---------------------------------------------------------------------------------------------
def sample_video(work: Path, codec: str, frames: int = 48, size=NVDEC_SIZE, seed: int = 0) -> Path:
    """A synthetic moving-texture video, made once per folder."""
    path = work / f"doctor_{codec}_{size[0]}x{size[1]}_{seed}{CODECS[codec][1]}"
    if not path.is_file():
        write_video(path, motion_clip(30.0, frames, size[0], size[1], np.random.default_rng(seed)), codec, gop=12)
    return path


def frames_agree(ours: np.ndarray, reference: np.ndarray, mean_tol: float, max_tol: float) -> tuple[bool, dict]:
    """Same shape, and pixel differences within tolerance (decoders may differ in colour conversion)."""
    if ours.shape != reference.shape:
        return False, {"shape": list(ours.shape), "reference_shape": list(reference.shape)}
    diff = np.abs(ours.astype(np.int32) - reference.astype(np.int32))
    figures = {"mean_abs_diff": round(float(diff.mean()), 3), "max_abs_diff": int(diff.max())}
    return bool(diff.mean() <= mean_tol and diff.max() <= max_tol), figures


def dali_decode(path: Path, indices: np.ndarray, device: str, reps: int = 1) -> tuple[np.ndarray, float]:
    """Frames ``indices`` of ``path`` through DALI's video decoder (``cpu`` or ``gpu``: NVDEC) and clips/s."""
    p = file_decoder(np.fromfile(path, np.uint8), indices, device)
    out = p.run()[0]
    t0 = time.perf_counter()
    for _ in range(reps):
        p.run()
    rate = reps / (time.perf_counter() - t0)
    frames = out.as_cpu()[0] if device == "gpu" else out[0]
    return np.asarray(frames), rate


def decode_check(path: Path, device: str, reference: np.ndarray | None = None, reps: int = 3) -> tuple[bool, str, dict]:
    """DALI's decoder against PyAV (or the ``reference`` given) on 16 frames of ``path``."""
    indices = np.arange(0, 32, 2)
    reference = decode_frames(path, indices) if reference is None else reference
    ours, rate = dali_decode(path, indices, device, reps)
    ok, figures = frames_agree(ours, reference, mean_tol=2.0, max_tol=48)
    figures["clips_per_s"] = round(rate, 1)
    return ok, f"{path.suffix[1:]} on {device}: {figures}", figures


# -- the checks ---------------------------------------------------------------------------------------------
def check_gpu_graphs(ctx: Context):
    results = define_all()
    bad = [f"{name}: {problem}" for name, problem in results if problem]
    return not bad, "; ".join(bad) or f"{len(results)} GPU graphs define, inputs where DALI wants them", \
        {"graphs": len(results)}


def check_decode_cpu(ctx: Context):
    ok, detail, figures = decode_check(sample_video(ctx.work, "vp9"), "cpu")
    return ok, "DALI's CPU decoder vs PyAV, " + detail, figures


def check_decode_gpu(ctx: Context):
    """NVDEC against PyAV per codec at a size NVDEC takes; and a video below NVDEC's minimum through
    the GPU loader, which must route it to PyAV before DALI sees it and deliver what the CPU loader does."""
    figures, details, ok = {}, [], True
    for codec in ("h264", "hevc", "vp9", "av1"):
        if codec not in CODECS:
            details.append(f"{codec}: not encodable here (skipped)")
            continue
        try:
            path = sample_video(ctx.work, codec)
        except Exception as exc:  # noqa: BLE001  an encoder PyAV lacks here
            details.append(f"{codec}: cannot make a test video ({str(exc)[:80]})")
            continue
        good, detail, figs = decode_check(path, "gpu")
        ok &= good
        figures[codec] = figs
        details.append(detail)
    good, detail, figures["below_minimum"] = below_minimum_check(ctx.work)
    ok &= good
    details.append(detail)
    return ok, "NVDEC vs PyAV: " + "; ".join(details), figures


def below_minimum_check(work: Path) -> tuple[bool, str, dict]:
    """The ``BELOW_NVDEC`` video through the GPU loader (validation clip) against the CPU loader."""
    codec, size = BELOW_NVDEC
    e = probe_video(sample_video(work, codec, size=size), label=0)
    spec = models.default_clip(MICRO)
    clips, routes = [], []
    for device in ("gpu", "cpu"):
        loader = VideoLoader([e], spec, mode="eval", batch_size=1, num_workers=1, device=device)
        clips.append(next(iter(loader.epoch(0))).video.float().cpu())
        routes.append(loader.routes[0])
        loader.close()
    diff = float((clips[0] - clips[1]).abs().mean())
    ok = routes[0] is not None and diff <= 0.05
    return ok, f"{codec} {size[0]}x{size[1]}: GPU loader route {routes[0] or 'NVDEC'}, mean abs diff to the CPU " \
               f"loader {diff:.4f}", {"route": routes[0], "mean_abs_diff": round(diff, 4)}


def _step(model, video, labels, device, dtype):
    cfg = load_config("demo")
    model = model.to(device)
    model.zero_grad(set_to_none=True)
    loss = forward_backward(model, video.to(device), labels.to(device), cfg, amp_dtype=dtype)
    grads = {n: p.grad.detach().float().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss), grads


def _tiny_model(transfer: str):
    torch.manual_seed(0)
    return models.create_model("vit_micro_patch16_112", num_classes=5, prompt_num_tokens=8, prompt_end=3,
                               transfer_type=transfer, init_scale=1.0)


def check_train_cpu(ctx: Context):
    video, labels = torch.randn(2, 3, 8, 112, 112), torch.tensor([1, 3])
    figures = {}
    for transfer in ("prompt", "linear", "end2end"):
        t0 = time.perf_counter()
        loss, grads = _step(_tiny_model(transfer), video, labels, "cpu", None)
        figures[transfer] = {"loss": round(loss, 5), "steps_per_s": round(1 / (time.perf_counter() - t0), 2)}
        if not np.isfinite(loss) or not all(torch.isfinite(g).all() for g in grads.values()):
            return False, f"{transfer}: loss or gradients not finite", figures
    return True, "one step of each transfer type on the CPU, finite loss and gradients", figures


def check_train_cuda(ctx: Context):
    video, labels = torch.randn(2, 3, 8, 112, 112), torch.tensor([1, 3])
    figures, ok, details = {}, True, []
    for transfer in ("prompt", "linear", "end2end"):
        ref_loss, ref_grads = _step(_tiny_model(transfer), video, labels, "cpu", None)
        for name, dtype, tol in (("fp32", None, 1e-3), ("bf16", torch.bfloat16, 8e-2)):
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            loss, grads = _step(_tiny_model(transfer), video, labels, "cuda", dtype)
            torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            worst = max(float((grads[n] - g).norm() / g.norm().clamp_min(1e-12)) for n, g in ref_grads.items())
            good = abs(loss - ref_loss) <= tol * max(1.0, abs(ref_loss)) and worst <= tol * 10
            ok &= good
            figures[f"{transfer}_{name}"] = {"loss_diff": abs(loss - ref_loss), "worst_grad_rel_err": worst,
                                             "steps_per_s": round(1 / secs, 2),
                                             "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
            if not good:
                details.append(f"{transfer} {name}: loss {loss:.5f} vs {ref_loss:.5f}, grad rel err {worst:.2e}")
    return ok, "; ".join(details) or "CUDA steps (fp32, bf16 autocast) match the CPU step", figures


def _ddp_child(rank: int, world: int, port: int, same_gpu: bool, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        torch.cuda.set_device(0 if same_gpu else rank)
        dist.init_process_group("nccl", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=90))
        t = torch.full((4,), float(rank + 1), device="cuda")
        dist.all_reduce(t)
        results[rank] = ("ok", float(t[0]))
        dist.destroy_process_group()
    except Exception as exc:  # noqa: BLE001  reported to the parent
        results[rank] = ("error", str(exc).strip().splitlines()[0][:300])


def check_ddp_nccl(ctx: Context):
    same_gpu = torch.cuda.device_count() < 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.get_context("spawn").Manager()
    results = manager.dict()
    mp.start_processes(_ddp_child, args=(2, port, same_gpu, results), nprocs=2, join=True, start_method="spawn")
    errors = [v[1] for v in results.values() if v[0] == "error"]
    if errors:
        if same_gpu:
            raise Skip(f"NCCL refused two ranks on one GPU: {errors[0]}")
        return False, f"NCCL all_reduce failed: {errors[0]}", {}
    total = [v[1] for v in results.values()]
    return total == [3.0, 3.0], f"all_reduce over 2 ranks{' on one GPU' if same_gpu else ''}: {total}", {}


def _export_model(ctx: Context, name: str, precision: str = "fp32"):
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=400, prompt_num_tokens=200, init_scale=1.0).eval()
    path = ctx.work / f"doctor_{name}_{precision}.onnx"
    if not path.is_file():
        export_onnx(model, path, precision=precision, opset=23)
    return model, path


def _rate(fn, x, reps: int) -> float:
    fn(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return reps * len(x) / (time.perf_counter() - t0)


def check_inference_cpu(ctx: Context):
    model, path = _export_model(ctx, "vit_micro_patch16_112")
    x = torch.randn(4, 3, 8, 112, 112)
    with torch.no_grad():
        ref = model(x).numpy()
    session, providers = onnx_session(path)
    stats = compare(ref, session.run(None, {"video": x.numpy()})[0])
    rate = _rate(lambda v: session.run(None, {"video": v.numpy()}), x, 3)
    ok = stats["max_abs_error"] <= THRESHOLDS["fp32"][0] and stats["top1_agreement"] == 1.0
    return ok, f"ONNX Runtime ({', '.join(providers)}) vs PyTorch fp32, micro model", {**stats, "clips_per_s": rate}


def check_inference_gpu(ctx: Context):
    name = "vit_small_patch16_224" if ctx.quick else "vit_base_patch16_224"
    model, path = _export_model(ctx, name)
    x = torch.randn(4, 3, 16, 224, 224)
    with torch.no_grad():
        ref = model(x).numpy()  # CPU fp32: the reference
        gpu = models.fold_prompts(model).cuda()
        xg = x.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu(xg).float().cpu().numpy()
            torch_rate = _rate(lambda v: gpu(v), torch.randn(16, 3, 16, 224, 224, device="cuda"), 3)
    figures = {"torch_bf16": {**compare(ref, bf16), "clips_per_s": round(torch_rate, 1)}}
    session, providers = onnx_session(path, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    ort_ok = "CUDAExecutionProvider" in providers
    if ort_ok:
        figures["ort_cuda_fp32"] = compare(ref, session.run(None, {"video": x.numpy()})[0])
    a, b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16), torch.randn(8192, 8192, device="cuda",
                                                                                     dtype=torch.bfloat16)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    peak = 2 * 8192 ** 3 * 10 / (time.perf_counter() - t0)
    flop = models.flops_per_clip(model)
    figures.update(matmul_tflops_bf16=round(peak / 1e12, 1), floor_clips_per_s=round(peak / flop, 1),
                   torch_fraction_of_floor=round(torch_rate * flop / peak, 3))
    ok = figures["torch_bf16"]["top1_agreement"] >= THRESHOLDS["bf16"][2] and (
        not ort_ok or figures["ort_cuda_fp32"]["max_abs_error"] <= 1e-2)
    detail = f"{name}: torch SDPA bf16 and ONNX Runtime " + ("CUDA" if ort_ok else f"(no CUDA provider: {providers})")
    return ok and ort_ok, detail, figures


def check_tensorrt(ctx: Context):
    missing = trt_missing()
    if missing:
        raise Skip(missing)

    torch.manual_seed(0)
    model = models.create_model("vit_small_patch16_224", num_classes=4, prompt_num_tokens=8, init_scale=1.0).eval()
    card = models.ModelCard("vit_small_patch16_224", {"num_classes": 4, "prompt_num_tokens": 8, "init_scale": 1.0},
                            ["a", "b", "c", "d"], clip=models.ClipSpec())
    x = torch.randn(4, 3, 16, 224, 224)
    package, where = export_package(model, card, ctx.work / "doctor_trt", {"random": x}, precision="fp16",
                                    batch=(1, 8, 16))
    if not package.tensorrt:
        return False, f"no engine was built (package in {where})", {}

    runner = load_runner(where, "trt")
    session, _ = onnx_session(where / "model.onnx")
    stats = compare(session.run(None, {"video": x.numpy()})[0], runner(x.cuda()).float().cpu().numpy())
    rate = _rate(lambda v: runner(v), torch.randn(16, 3, 16, 224, 224, device="cuda"), 3)
    ok = package.tensorrt["verification"]["passed"] and stats["top1_agreement"] >= 0.75
    return ok, f"TensorRT {package.tensorrt['version']} fp16 engine vs ONNX Runtime", {**stats, "clips_per_s": rate}


def check_gpu_loader(ctx: Context):
    """Each RandAugment op forced, the same draws on the CPU and the GPU graph (whole-frame crop, no
    flip: nothing random but the op's own magnitude and sign, drawn by the source for both)."""
    e = probe_video(sample_video(ctx.work, "vp9"), label=0)
    spec = models.default_clip(MICRO)
    suite = parse_rand_augment("rand-m7-n1-mstd0-p1")
    worst, failures = {}, []
    for op in OP_NAMES:
        outs = []
        for device in ("cpu", "gpu"):
            aug = AugmentSpec(rand_augment=dc.replace(suite, only=(op,)), scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3),
                              flip=False)
            loader = VideoLoader([e] * 4, spec, batch_size=4, num_workers=1, device=device, seed=3, augment=aug)
            outs.append(next(iter(loader.epoch(0))).video.float().cpu())
            loader.close()
        diff = float((outs[0] - outs[1]).abs().mean())
        worst[op] = round(diff, 4)
        if diff > 0.05:  # normalised units: ~3 grey levels on average (resampling differs slightly)
            failures.append(f"{op} {diff:.3f}")
    figures = {"mean_abs_diff_by_op": worst}
    if not ctx.quick:
        figures["loader"] = gpuloader_rate(ctx.work)
    return not failures, "GPU pipeline vs CPU pipeline per RandAugment op" + (
        f": differ for {', '.join(failures)}" if failures else ""), figures


def gpuloader_rate(work: Path, batches: int = 20) -> dict:
    """Training clips/s of the GPU loader (the presets' clip: 16 frames, 224 px, num_sample 2,
    VideoMAE's RandAugment; 320x240 VP9 through NVDEC) and, where decord is installed, of
    VideoMAE's decord + PIL loader on the same videos in the same run."""
    entries = bench_videos(work, "vp9", 16)
    spec = models.default_clip("vit_base_patch16_224")
    aa = VIDEOMAE_RAND_AUGMENT
    loader = VideoLoader(entries, spec, batch_size=8, num_sample=2, device="gpu", reuse=True,
                         augment=AugmentSpec(rand_augment=parse_rand_augment(aa)))
    secs, clips = timed(cycle(loader.epoch), 2, batches)
    loader.close()
    out = {"gpu_clips_per_s": round(clips / secs, 1)}
    try:
        import decord  # noqa: F401  (the baseline's decoder: the dev extra)
    except ImportError:
        out["baseline"] = "decord not installed: no baseline (pip install decord)"
        return out
    from .baselines import decord_loader  # benchmark code, out of the doctor's other checks

    base = loader_rate(decord_loader([e.path for e in entries], spec, aa, num_sample=2), 2, batches)
    out.update(baseline_clips_per_s=round(base, 1), ratio=round(clips / secs / base, 2))
    return out


def check_score(ctx: Context):
    """Scoring a folder of VP9 videos at a size NVDEC takes and one below its minimum: every video
    scored, and on a GPU not one batch decoded twice (DALI's decoder never fails on a file)."""
    folder = ctx.work / "doctor_score"
    n = 6 if ctx.quick else 20
    for i in range(n - 1):
        sample_video(folder, "vp9", frames=40, seed=i)
    sample_video(folder, BELOW_NVDEC[0], frames=40, size=BELOW_NVDEC[1], seed=n)
    torch.manual_seed(0)
    model = models.create_model("vit_micro_patch16_112", num_classes=4, prompt_num_tokens=8, init_scale=1.0).eval()
    card = models.ModelCard("vit_micro_patch16_112", {"num_classes": 4, "prompt_num_tokens": 8, "init_scale": 1.0},
                            ["a", "b", "c", "d"], clip=models.default_clip(MICRO))
    package, where = export_package(model, card, ctx.work / "doctor_export", {"random": torch.randn(2, 3, 8, 112, 112)},
                                    tensorrt=ctx.gpu)
    out = ctx.work / "doctor_scores.csv"
    out.unlink(missing_ok=True)
    retries = _Count("DALI's decoder failed")
    logging.getLogger().addHandler(retries)
    try:
        report = score_videos(folder, where, out, progress=False)
    finally:
        logging.getLogger().removeHandler(retries)
    r = report.result
    return r.ok == n and not retries.count, f"{n} videos scored on {report.backend}, {r.ok} ok, " \
        f"{retries.count} decoded again after DALI's decoder failed", {
        "videos_per_s": round(r.ok / max(r.seconds, 1e-9), 2), "clips_per_s": round(r.clips / max(r.seconds, 1e-9), 1)}


class _Count(logging.Handler):
    """Counts the warnings whose message contains ``text``."""

    def __init__(self, text: str):
        super().__init__(logging.WARNING)
        self.text, self.count = text, 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.count += 1


CHECKS = [
    Check("dali-gpu-graphs", check_gpu_graphs),
    Check("dali-decode-cpu", check_decode_cpu),
    Check("train-step-cpu", check_train_cpu),
    Check("inference-cpu", check_inference_cpu),
    Check("dali-decode-gpu", check_decode_gpu, needs_gpu=True),
    Check("gpu-loader", check_gpu_loader, needs_gpu=True),
    Check("train-step-cuda", check_train_cuda, needs_gpu=True),
    Check("ddp-nccl", check_ddp_nccl, needs_gpu=True),
    Check("inference-gpu", check_inference_gpu, needs_gpu=True),
    Check("tensorrt", check_tensorrt, needs_gpu=True),
    Check("score", check_score),
]
