"""What the benches share: the machine's description, process-tree memory, the synthetic videos,
timing loops, the CPU's matmul rate, and the small exported model the scoring benches run."""
from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from apt_video import models
from apt_video.exporting import export_run
from apt_video.pipeline.data import VideoEntry
from apt_video.pipeline.video import CODECS, probe_video, write_video
from apt_video.tools.synth import motion_clip

BENCH_PRECISIONS = ("fp32", "int8")  # what the infer and score benches export and time


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}

def rss_mb(pid: int | None = None) -> float:
    """Memory of a process and all its descendants in MB (decode workers; a local Ray cluster's
    raylet and its workers): the sum of their proportional set sizes (PSS), so pages they share
    (forked memory, Ray's shared-memory object store) are counted once (Linux)."""
    pid = pid or os.getpid()
    pids, children = [pid], {}
    try:
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        for line in out.splitlines():
            child, parent = (int(x) for x in line.split())
            children.setdefault(parent, []).append(child)
    except (OSError, ValueError):
        pass
    for p in pids:  # grows while walked: breadth first over the descendants
        pids.extend(children.get(p, []))
    total = 0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(text.split("\nPss:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024

def bench_videos(folder: Path, codec: str, n: int, frames: int = 96, size=(320, 240),
                 threads: int = 1) -> list[VideoEntry]:
    """``n`` synthetic motion videos of ``frames`` frames (made once per folder, ``threads`` at a
    time), probed."""
    def make(i: int) -> VideoEntry:
        path = folder / f"{codec}_{i:03d}{CODECS[codec][1]}"
        if not path.is_file():
            clip = motion_clip(90 * (i % 4), frames, size[0], size[1], np.random.default_rng([0, i]))
            write_video(path, clip, codec, gop=12)
        return probe_video(path, label=i % 4)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(make, range(n)))

def timed(batches, warmup: int, count: int, on_batch=None) -> tuple[float, int]:
    """Seconds and clips for ``count`` batches after ``warmup`` ones."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    t0, clips = time.perf_counter(), 0
    for i in range(count):
        b = next(it)
        clips += len(b[0]) if isinstance(b, (list, tuple)) else len(b.video)
        if on_batch:
            on_batch(i)
    return time.perf_counter() - t0, clips

def cycle(make):
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1

def loader_rate(loader, warmup: int, count: int) -> float:
    """Items per second of a torch DataLoader (its workers end with it)."""
    secs, items = timed(cycle(lambda e: iter(loader)), warmup, count)
    return items / secs

def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9

def batch_rate(fn, x, reps: int) -> float:
    with torch.no_grad():
        fn(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(x)
    return reps * len(x) / (time.perf_counter() - t0)

class PeakMemory:
    """Samples ``rss_mb`` (this process and all its descendants) every ``every`` seconds in a thread;
    ``peak`` is the largest sample."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak, self._stop = every, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def score_model(work: Path, model_name: str, views: tuple[int, int]) -> tuple[Path, Path, models.ModelCard]:
    """A randomly initialised ``model_name`` (8 prompts, 4 classes) saved and exported to ONNX:
    ``(weights, export folder, card)``."""
    torch.manual_seed(0)
    m = models.create_model(model_name, num_classes=4, prompt_num_tokens=8, init_scale=1.0)
    card = models.ModelCard(
        model=model_name, model_overrides={"num_classes": 4, "prompt_num_tokens": 8, "init_scale": 1.0},
        classes=["a", "b", "c", "d"], transfer_type="end2end",  # every tensor saved: a self-contained file
        clip=models.default_clip(model_name).with_views(*views))
    m.transfer_type = "end2end"
    weights = work / f"score_{model_name}.safetensors"
    models.save_trained(m, weights, card)
    export = work / f"score_export_{model_name}"
    package, _ = export_run(weights, export, verify_clips=0, tensorrt=False)
    assert package.passed, package.verification
    return weights, export, card

def model_label(card: models.ModelCard) -> str:
    return f"{card.model} ({card.clip.num_frames}x{card.clip.input_size}, 8 prompts)"


def dist_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
