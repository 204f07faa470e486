"""The runner of ``apt-video bench gpu`` (``tools.bench.gpu``): the plan of a run (every size), the
stages' time boxes, a stage that raises reported and the next one run, the JSON written after every
stage, the closing table; and the GPU's own counters (NVML busy shares, the driver, the bf16 matmul
rate the compute floor is measured by)."""
from __future__ import annotations

import ctypes
import dataclasses
import json
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from apt_video import models
from apt_video.models.files import atomic_write_text
from apt_video.pipeline.randaug import VIDEOMAE_RAND_AUGMENT

from .common import dist_version, machine, matmul_gflops

#: seconds per stage: the whole command fits in six minutes of a lent GPU
STAGE_SECONDS = {"loader": 150, "infer": 90, "train": 60, "score": 60}
STAGES = tuple(STAGE_SECONDS)


@dataclass
class Plan:
    """The sizes of one run (defaults: the GPU run the speed issue measures against)."""

    device: str = "gpu"
    codecs: tuple[str, ...] = ("h264", "vp9")
    videos: int = 32
    video_frames: int = 96
    video_size: tuple[int, int] = (320, 240)
    batches: tuple[int, ...] = (8, 32)  # videos per loader batch (clips: x num_sample)
    pools: tuple[int, ...] = (2, 0)  # DALI threads; 0: the loader's default (the host's cores per rank)
    source_workers: int = 4
    timed_batches: int = 8  # per loader variant, after two
    num_sample: int = 2
    rand_augment: str = VIDEOMAE_RAND_AUGMENT
    infer_models: tuple[str, ...] = ("vit_base_patch16_224", "vit_small_patch16_224")
    prompts: int = 200
    infer_batch: int = 30
    train_model: str = "vit_base_patch16_224"
    train_batches: tuple[int, ...] = (8, 32)  # clips per step
    train_steps: int = 10
    loop_steps: int = 30
    score_videos: int = 24
    score_frames: int = 160
    score_model: str = "vit_base_patch16_224"
    views: tuple[int, int] = (10, 3)
    seconds: dict = field(default_factory=lambda: dict(STAGE_SECONDS))

    @classmethod
    def micro(cls) -> Plan:
        """The same stages at toy sizes, on the CPU: seconds instead of minutes (for the tests)."""
        return cls(device="cpu", codecs=("vp9",), videos=4, video_frames=24, video_size=(64, 48), batches=(2,),
                   pools=(2,), source_workers=1, timed_batches=2,
                   infer_models=("vit_micro_patch16_112",), prompts=8, infer_batch=2,
                   train_model="vit_micro_patch16_112",
                   train_batches=(2,), train_steps=2, loop_steps=2, score_videos=2, score_frames=24,
                   score_model="vit_micro_patch16_112", views=(2, 1), seconds={s: 120 for s in STAGES})

    @property
    def spec(self) -> models.ClipSpec:
        """The clip of every stage: the training model's own (16 frames at rate 4, 224 px for ViT-B and
        ViT-S), with the plan's test views."""
        return models.default_clip(self.train_model).with_views(*self.views)


class Deadline:
    """A stage's time box: measurements check it between themselves; the ones it cuts are recorded."""

    def __init__(self, seconds: float):
        self.seconds, self.end = seconds, time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def over(self) -> bool:
        return self.left() <= 0


class StageTimeout(Exception):
    """A stage ran past its time box and its grace period (a measurement that hung)."""


@dataclass
class Stage:
    name: str
    run: Callable[[Plan, Path, Deadline, dict], dict]  # (plan, work folder, deadline, shared state) -> figures


def measurements(items: list[tuple[str, Callable[[], dict]]], deadline: Deadline, say=print) -> dict:
    """Run ``(name, fn)`` in order while the deadline allows; a measurement that raises is recorded
    with its error and the next one runs; those the deadline cut say so."""
    out = {}
    for name, fn in items:
        if name in out:  # the same measurement asked twice (a plan with one batch size or pool)
            continue
        if deadline.over():
            out[name] = {"skipped": f"the stage's {deadline.seconds:.0f} s were spent"}
            continue
        try:
            out[name] = fn()
        except StageTimeout:
            raise
        except Exception as exc:  # noqa: BLE001  one measurement failing leaves the others
            traceback.print_exc()
            out[name] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                         if str(exc).strip() else type(exc).__name__}
        say(f"  {name}: {_brief(out[name])}")
    return out


def _brief(figures: dict) -> str:
    keys = [k for k in figures if k.endswith("_per_s") or k in ("error", "skipped", "share", "fraction_of_floor")]
    return ", ".join(f"{k} {figures[k]:.1f}" if isinstance(figures[k], float) else f"{k} {figures[k]}"
                     for k in keys) or json.dumps(figures, default=str)[:160]


def run_stages(stages: list[Stage], plan: Plan, work: Path, json_path: str | Path | None,
               say: Callable[[str], None] = print) -> dict:
    """Run each stage in its time box; write the JSON (atomically) after every stage."""
    result = {"bench": "gpu", "machine": {**machine(), **gpu_facts()}, "plan": dataclasses.asdict(plan),
              "stages": {}}
    state: dict = {}
    for stage in stages:
        budget = plan.seconds.get(stage.name, 60)
        say(f"stage {stage.name} ({budget} s)")
        t0 = time.perf_counter()
        try:
            with _alarm(budget + 60):
                figures, status = stage.run(plan, work, Deadline(budget), state), "ok"
        except Exception as exc:  # noqa: BLE001  a stage that breaks is reported; the next one runs
            traceback.print_exc()
            figures = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                       if str(exc).strip() else type(exc).__name__, "traceback": traceback.format_exc()[-4000:]}
            status = "failed"
        result["stages"][stage.name] = {"status": status, "seconds": round(time.perf_counter() - t0, 1), **figures}
        if json_path:
            atomic_write_text(json_path, json.dumps(result, indent=1, default=str))
    for line in table(result):
        say(line)
    return result


class _alarm:
    """Raise ``StageTimeout`` in the main thread after ``seconds`` (where signals can be used)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.armed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def __enter__(self):
        if self.armed:
            def fire(signum, frame):
                raise StageTimeout(f"the stage ran {self.seconds:.0f} s, past its time box")

            self.previous = signal.signal(signal.SIGALRM, fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


def table(result: dict) -> list[str]:
    """The run's figures as one table: stage, measurement, figure."""
    lines = [f"{'stage':8s} {'measurement':34s} figures"]
    for name, stage in result["stages"].items():
        if stage["status"] != "ok":
            lines.append(f"{name:8s} {'(failed)':34s} {stage.get('error', '')}")
            continue
        for key, value in stage.items():
            if isinstance(value, dict):
                lines.append(f"{name:8s} {key:34s} {_brief(value)}")
    return lines


# -- the GPU's counters (NVML) -------------------------------------------------------------------------
def _nvml():
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if lib.nvmlInit_v2() != 0:
        return None
    return lib


class Busy:
    """The GPU's and NVDEC's busy share (NVML's utilisation, percent) sampled every 50 ms while the
    block runs; ``figures()`` is empty where NVML is absent (no GPU, or the CPU plan)."""

    def __init__(self, device_id: int = 0):
        self.lib, self.samples = _nvml(), []
        self.handle = ctypes.c_void_p()
        if self.lib is not None and self.lib.nvmlDeviceGetHandleByIndex_v2(device_id, ctypes.byref(self.handle)):
            self.lib = None
        self._stop = threading.Event()

    def _sample(self):
        class Util(ctypes.Structure):
            _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

        util, dec, period = Util(), ctypes.c_uint(), ctypes.c_uint()
        while not self._stop.is_set():
            if self.lib.nvmlDeviceGetUtilizationRates(self.handle, ctypes.byref(util)) == 0 and \
                    self.lib.nvmlDeviceGetDecoderUtilization(self.handle, ctypes.byref(dec), ctypes.byref(period)) == 0:
                self.samples.append((util.gpu, dec.value))
            self._stop.wait(0.05)

    def __enter__(self) -> Busy:
        if self.lib is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.lib is not None:
            self._stop.set()
            self._thread.join()

    def figures(self) -> dict:
        if not self.samples:
            return {}
        gpu, dec = np.mean([s[0] for s in self.samples]), np.mean([s[1] for s in self.samples])
        return {"gpu_busy_share": round(float(gpu) / 100, 3), "nvdec_busy_share": round(float(dec) / 100, 3)}


def gpu_facts() -> dict:
    """The GPU, its driver and the versions the figures depend on."""
    facts = {"torch_cuda": torch.version.cuda,
             "dali": dist_version("nvidia-dali-cuda130") or dist_version("nvidia-dali-cuda120"),
             "onnxruntime": dist_version("onnxruntime-gpu") or dist_version("onnxruntime"),
             "tensorrt": dist_version("tensorrt")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        facts.update(gpu_name=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1),
                     compute_capability=f"{p.major}.{p.minor}")
        lib = _nvml()
        if lib is not None:
            buf = ctypes.create_string_buffer(96)
            if lib.nvmlSystemGetDriverVersion(buf, 96) == 0:
                facts["driver"] = buf.value.decode()
    return facts


def sync(device: str) -> None:
    if device == "gpu":
        torch.cuda.synchronize()


def matmul_tflops(device: str) -> float:
    """The bf16 matmul rate (TFLOP/s): ten 8192^3 products after three (on the CPU plan, fp32 at 1024)."""
    if device != "gpu":
        return matmul_gflops(1024, 3) / 1e3
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192 ** 3 * 10 / (time.perf_counter() - t0) / 1e12
