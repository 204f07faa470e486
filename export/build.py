"""``export_package``: a trained model to a verified export package (ONNX graph, op check,
verification against PyTorch, TensorRT engine and its verification where TensorRT and a GPU are
present). The clips to verify on are handed in: ``export/`` never reads video."""
from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch
from safetensors.torch import save_file

from apt_video.models import ModelCard, sha256_file

from .graph import DTYPES, export_onnx, task_tensors
from .opcheck import fused_attention_supported, unsupported_ops
from .package import Package, write_package
from .quantize import PRECISIONS as QUANTIZED
from .quantize import quantize
from .trt import build_engine, trt_missing, trt_version, verify_engine
from .verify import verify_graph

log = logging.getLogger(__name__)
PRECISIONS = (*DTYPES, *QUANTIZED)  # int8, fp8: an fp32 graph quantized with Q/DQ nodes
FUSED_ATTENTION_OPSET = 23  # the ONNX Attention op (K/V may be longer than Q: the prompts fit)


def default_attention(opset: int, trt_version: str | None) -> str:
    """``fused`` (the ONNX Attention op) at opset >= 23 unless this host's TensorRT is too old to
    parse it; ``matmul`` (MatMul-Softmax-MatMul) otherwise."""
    if opset < FUSED_ATTENTION_OPSET:
        return "matmul"
    return "fused" if fused_attention_supported(trt_version) else "matmul"


def graph_opset(path: Path) -> int:
    """The ai.onnx opset the graph file declares (what was written, not what was asked)."""
    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def export_package(model: torch.nn.Module, card: ModelCard, out: str | Path, clips: dict[str, torch.Tensor], *,
                   checkpoint: str | Path | None = None, precision: str = "fp32", opset: int = 23,
                   attention: str | None = None, prompts_as_input: bool = False,
                   batch: tuple[int, int, int] = (1, 30, 60), tensorrt: bool = True, workspace_gb: float = 4.0,
                   timing_cache: str | Path | None = None, calibration: torch.Tensor | None = None,
                   calibration_source: str | None = None) -> tuple[Package, Path]:
    """Export ``model`` (eval mode) with its ``card`` into the folder ``out``; returns the package
    and where it went (``out``, or ``<out>.rejected`` when a check failed). ``int8``, ``fp8``: the graph is
    calibrated on the first three quarters of ``calibration`` (real clips, ``(N, 3, T, S, S)``) and
    verified on ``clips`` and on the last quarter, the hold-out."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision in QUANTIZED and prompts_as_input:
        raise ValueError(f"--precision {precision} with --prompts-as-input: quantize a task's own export instead")
    if precision in QUANTIZED and (calibration is None or len(calibration) < 4):
        raise ValueError(f"--precision {precision} needs real clips to calibrate on: at least 4 (--calib LIST, "
                         f"--calib-clips N, or a run whose validation list is at hand)")
    here = trt_version()
    attention = attention or default_attention(opset, here)
    if attention == "fused" and opset < FUSED_ATTENTION_OPSET:
        raise ValueError(f"the fused Attention op needs opset >= {FUSED_ATTENTION_OPSET} (got --opset {opset}); "
                         f"use --attention matmul or a newer opset")

    def build(folder: Path) -> Package:
        graph_precision = "fp32" if precision in QUANTIZED else precision
        onnx_path = export_onnx(model, folder / "model.onnx", precision=graph_precision, opset=opset,
                                attention=attention, prompts_as_input=prompts_as_input, max_batch=max(batch[2], 64))
        quantization, sets = None, dict(clips)
        if precision in QUANTIZED:
            # Gaussian noise lies outside the ranges calibrated on real video, so a quantized graph
            # is judged on real clips only: the verification clips and the calibration hold-out.
            sets.pop("random", None)

            cut = max(1, len(calibration) * 3 // 4)
            quantization = quantize(onnx_path, onnx_path, calibration[:cut].float().numpy(), precision)
            quantization["calibration_source"] = calibration_source
            sets["holdout"] = calibration[cut:]  # calibration clips the quantizer did not see
        problems = unsupported_ops(onnx_path, trt_version=here)
        task = task_tensors(model) if prompts_as_input else None
        files = {"onnx": onnx_path.name}
        if task is not None:
            save_file(task, str(folder / "task.safetensors"))
            files["task"] = "task.safetensors"
        verification = verify_graph(onnx_path, model, sets, precision, prompts=task["prompts"] if task else None)
        c = card.clip
        package = Package(
            card=card, files=files, sha256={}, precision=precision, opset=graph_opset(onnx_path), attention=attention,
            prompts_as_input=bool(task),
            input={"name": "video", "shape": ["batch", 3, c.num_frames, c.input_size, c.input_size],
                   "dtype": "float32", "layout": "NCTHW, normalised"},
            output={"name": "features" if task else "logits",
                    "shape": ["batch", model.embed_dim if task else model.num_classes], "dtype": "float32"},
            batch={"min": batch[0], "opt": batch[1], "max": batch[2]},
            checkpoint={"path": str(Path(checkpoint).resolve()), "sha256": sha256_file(checkpoint)} if checkpoint
            else {},
            op_check={"tensorrt_unsupported": problems, "passed": not problems, "tensorrt_version": here},
            verification=verification, quantization=quantization)
        missing = trt_missing()
        if tensorrt and package.passed and missing is None:
            plan = folder / "model.plan"
            facts = build_engine(onnx_path, plan, batch, precision, workspace_gb, timing_cache)
            files["plan"] = plan.name
            facts["verification"] = verify_engine(plan, package, model, sets, task)
            package.tensorrt = facts
        elif tensorrt and missing:
            package.tensorrt = None
            log.info("TensorRT engine not built: %s", missing)
        package.sha256 = {name: sha256_file(folder / name) for name in files.values()}
        return package

    return write_package(Path(out), build)
