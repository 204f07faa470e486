"""``apt-video bench infer``: one network eager, folded with SDPA, in ONNX Runtime, without prompts,
and int8 against fp32, beside the CPU's matmul floor."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from apt_video import models
from apt_video.export import export_onnx, onnx_session
from apt_video.export.quantize import quantize_int8
from apt_video.tools.baselines import EagerViT

from .common import batch_rate, matmul_gflops


def _interleaved(fns: dict, x: np.ndarray, rounds: int) -> dict:
    """Clips/s of each of ``fns`` (name -> function of a batch) in each of ``rounds`` rounds, one batch
    each in turn after a warm-up: a shared machine's drifts then fall on all of them alike, where
    timing one after the other would hand a slow spell to one side."""
    for fn in fns.values():
        fn(x)
    rates = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            rates[name].append(len(x) / (time.perf_counter() - t0))
    return rates

def bench_infer(work: Path, model_name: str = "vit_small_patch16_224", batch: int = 2, reps: int = 3,
                precisions: str = "fp32", rounds: int = 7) -> dict:
    """Clips/s of one network: eager PyTorch (the baseline), folded SDPA PyTorch, ONNX Runtime, the
    same without prompts, and, with ``int8`` in ``precisions``, the Q/DQ int8 graph in ONNX Runtime
    against the fp32 one in the same run (calibrated on random clips: a speed figure, not accuracy),
    the two timed in turn over ``rounds`` rounds and compared by their median rates."""
    torch.manual_seed(0)
    m = models.create_model(model_name, num_classes=400, prompt_num_tokens=200).eval()
    m0 = models.create_model(model_name, num_classes=400, transfer_type="linear").eval()
    m0.load_state_dict({k: v for k, v in m.state_dict().items() if "prompt" not in k})
    x = torch.randn(batch, 3, m.num_frames, m.img_size, m.img_size)
    folded = models.fold_prompts(m)
    eager = batch_rate(EagerViT(m), x, reps)
    sdpa = batch_rate(folded, x, reps)
    onnx_path = export_onnx(m, work / "infer.onnx", opset=23)
    sess, providers = onnx_session(onnx_path)
    ort_rate = batch_rate(lambda v: sess.run(None, {"video": v.numpy()}), x, reps)
    no_prompts = batch_rate(models.fold_prompts(m0), x, reps)
    gflops = matmul_gflops()
    flop = models.flops_per_clip(m)
    floor = gflops * 1e9 / flop  # clips/s if every flop ran at the measured matmul rate
    res = {"model": f"{model_name} ({m.num_frames}x{m.img_size}, 200 prompts)", "batch": batch,
           "eager_explicit_attention_clips_per_s": eager, "torch_sdpa_clips_per_s": sdpa,
           "onnxruntime_clips_per_s": ort_rate, "onnxruntime_providers": providers,
           "ratio": sdpa / eager, "ort_vs_eager_ratio": ort_rate / eager,
           "matmul_gflops": gflops, "gflop_per_clip": flop / 1e9, "compute_floor_clips_per_s": floor,
           "ort_fraction_of_floor": ort_rate / floor, "no_prompt_clips_per_s": no_prompts,
           "prompt_latency_cost": no_prompts / sdpa - 1}
    print(f"infer {res['model']}, batch {batch}: eager {eager:.2f} clips/s, ours (SDPA) {sdpa:.2f} "
          f"(ratio {sdpa / eager:.2f}), ONNX Runtime {ort_rate:.2f} ({', '.join(providers)}); matmul "
          f"{gflops:.0f} GFLOP/s -> floor {floor:.2f} clips/s, ORT at {100 * ort_rate / floor:.0f}%; "
          f"200 prompts cost {100 * res['prompt_latency_cost']:+.1f}% latency")
    if "int8" in precisions.split(","):
        quantize_int8(onnx_path, work / "infer_int8.onnx", torch.randn(4, *x.shape[1:]).numpy())
        s8, _ = onnx_session(work / "infer_int8.onnx")
        rates = _interleaved({"int8": lambda v: s8.run(None, {"video": v}),
                              "fp32": lambda v: sess.run(None, {"video": v})}, x.numpy(), rounds)
        int8, fp32 = float(np.median(rates["int8"])), float(np.median(rates["fp32"]))
        each = [a / b for a, b in zip(rates["int8"], rates["fp32"])]
        res.update(int8_clips_per_s=int8, fp32_clips_per_s_same_run=fp32, int8_vs_fp32=int8 / fp32,
                   int8_vs_fp32_by_round=each, int8_vs_floor=int8 / floor, cpu_int8_features=_int8_features())
        print(f"int8 (ONNX Runtime, Q/DQ MatMul/Conv/Gemm): {int8:.2f} clips/s against fp32 {fp32:.2f} "
              f"(medians of {rounds} interleaved rounds): {int8 / fp32:.2f}x (rounds {min(each):.2f}-{max(each):.2f}); "
              f"{100 * int8 / floor:.0f}% of the fp32 matmul floor; CPU int8 features: "
              f"{', '.join(res['cpu_int8_features']) or 'none'}")
    return res

def _int8_features() -> list[str]:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags.split()]
