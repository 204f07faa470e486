"""Verification of an exported graph against the PyTorch model it came from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from onnx.reference import ReferenceEvaluator

#: per precision: max abs error of logits, max relative error (to the largest |logit|), top-1 agreement
#: (int8: the demo model's calibration hold-out, videos the quantizer never saw, reads 0.16 relative
#: calibrated on 48 clips, 0.26 on 32, top-1 unchanged; noise clips are not judged for int8 and fp8)
THRESHOLDS = {"fp32": (1e-3, 1e-3, 1.0), "fp16": (5e-2, 2e-2, 0.95), "bf16": (2.5e-1, 1e-1, 0.9),
              "int8": (1.0, 2e-1, 0.95), "fp8": (2.5e-1, 1e-1, 0.9)}


def onnx_session(path: str | Path, providers: list[str] | None = None, optimize: bool = True):
    """An ONNX Runtime session and the providers it really uses (read back, not assumed).
    ``optimize=False``: no graph fusions (an fp8 Q/DQ graph runs on the CPU only so: fused, its
    DequantizeLinear-MatMul pairs become QLinearMatMul, which has no float8 kernel)."""
    import onnxruntime as ort

    wanted = providers or ["CPUExecutionProvider"]  # names, or (name, options) pairs
    available = ort.get_available_providers()
    wanted = [p for p in wanted if (p if isinstance(p, str) else p[0]) in available] or ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
    return session, session.get_providers()


def compare(reference: np.ndarray, got: np.ndarray) -> dict:
    """Max abs error, max error relative to the largest reference magnitude, top-1 agreement."""
    ref, got = np.asarray(reference, np.float64), np.asarray(got, np.float64)
    err = np.abs(ref - got)
    return {"max_abs_error": float(err.max()), "max_rel_error": float(err.max() / max(np.abs(ref).max(), 1e-12)),
            "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()), "clips": int(ref.shape[0])}


def judge(precision: str, sets: dict[str, dict], features: bool = False) -> dict:
    """Pass or fail each set of ``compare`` figures against the precision's thresholds."""
    max_abs, max_rel, min_top1 = THRESHOLDS[precision]
    passed = True
    for stats in sets.values():
        if features:  # features have no classes: agreement is not defined
            stats["top1_agreement"] = 1.0
        ok = (stats["max_abs_error"] <= max_abs or stats["max_rel_error"] <= max_rel) and \
            stats["top1_agreement"] >= min_top1
        stats["passed"] = bool(ok)
        passed &= ok
    return {"precision": precision, "thresholds": {"max_abs_error": max_abs, "max_rel_error": max_rel,
                                                   "top1_agreement": min_top1}, "sets": sets, "passed": bool(passed)}


def reference_outputs(model: torch.nn.Module, x: torch.Tensor, prompts: torch.Tensor | None = None):
    """What the graph must give for ``x``: the fp32 model's logits, or its pooled features."""
    with torch.no_grad():
        if prompts is not None:
            return model.forward_pooled(x.float(), prompts.float()).numpy()
        return model(x.float()).numpy()


def verify_graph(path: str | Path, model: torch.nn.Module, clips: dict[str, torch.Tensor], precision: str,
                 prompts: torch.Tensor | None = None, providers: list[str] | None = None) -> dict:
    """Run the graph on each set of ``clips`` ``(N, 3, T, H, W)`` and compare with ``model`` in
    fp32. Uses ONNX Runtime; for a graph it has no kernels for (bf16 on CPU) ONNX's reference
    evaluator. Returns the figures, the providers used and ``passed``."""
    model = model.eval()
    try:
        session, used = onnx_session(path, providers, optimize=precision != "fp8")
        run = session.run
    except Exception as exc:  # noqa: BLE001  ORT lacks kernels for this graph on this host

        evaluator = ReferenceEvaluator(str(path))
        reason = str(exc).splitlines()[0][:120]
        run, used = evaluator.run, [f"onnx.reference (ONNX Runtime could not load it: {reason})"]
    sets = {}
    for name, x in clips.items():
        feeds = {"video": x.float().numpy()}
        if prompts is not None:
            feeds["prompts"] = prompts.float().numpy()
        sets[name] = compare(reference_outputs(model, x, prompts), run(None, feeds)[0])
    return {**judge(precision, sets, features=prompts is not None), "providers": used}
