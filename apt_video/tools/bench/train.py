"""``apt-video bench train``: the training step of prompt, linear and end2end tuning (one process each)."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from apt_video import models
from apt_video.config import load_config
from apt_video.train import amp_settings, build_optimizer, forward_backward, optimizer_step


def _train_step_child(model_name: str, transfer: str, batch: int, steps: int, frames: int, size: int) -> dict:
    torch.manual_seed(0)
    m = models.create_model(model_name, num_classes=51, num_frames=frames, img_size=size, transfer_type=transfer,
                            prompt_num_tokens=200)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m.to(dev).train()
    cfg = load_config("demo", sets=[f"transfer_type={transfer}"])
    opt = build_optimizer(cfg, m)
    x = torch.randn(batch, 3, frames, size, size, device=dev)
    y = torch.randint(0, 51, (batch,), device=dev)
    amp_dtype, _ = amp_settings(cfg.amp, dev)
    times = []
    for i in range(steps + 1):  # the training step itself (apt_video.train), one batch again and again
        t0 = time.perf_counter()
        forward_backward(m, x, y, cfg, amp_dtype=amp_dtype)
        optimizer_step(m, opt)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step_s": float(np.median(times)), "peak_mb": peak, "trainable": models.count_parameters(m)[0]}

def bench_train(model_name: str = "vit_small_patch16_224", batch: int = 2, steps: int = 3, frames: int = 8,
                size: int = 112) -> dict:
    res = {"model": f"{model_name} at {frames}x{size}", "batch": batch,
           "memory": "peak CUDA allocation" if torch.cuda.is_available() else "peak process RSS (one process each)"}
    for transfer in ("prompt", "linear", "end2end"):
        code = (f"import json, apt_video.tools.bench.train as b; print(json.dumps(b._train_step_child({model_name!r}, "
                f"{transfer!r}, {batch}, {steps}, {frames}, {size})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        res[transfer] = json.loads(out.stdout.strip().splitlines()[-1])
    res["ratio"] = res["end2end"]["step_s"] / res["prompt"]["step_s"]  # speed-up of prompt tuning over full FT
    for t in ("prompt", "linear", "end2end"):
        r = res[t]
        print(f"train {t:8s}: {r['step_s'] * 1000:.0f} ms/step, peak {r['peak_mb']:.0f} MB, "
              f"{r['trainable']:,} trainable")
    print(f"train: prompt tuning steps {res['ratio']:.2f}x faster than end2end ({res['model']}, batch {batch})")
    return res
