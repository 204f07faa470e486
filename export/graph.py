"""Folding a trained model into an ONNX graph for TensorRT.

The graph has one input ``video (batch, 3, T, H, W) float32`` with a dynamic batch axis and one
output ``logits (batch, classes) float32``. The effective prompts are constants (``fold_prompts``),
no ``prompt_scale`` or dropout remains. fp16 / bf16 graphs compute in that precision with
LayerNorm and softmax in fp32. Attention is exported either as the ONNX ``Attention`` op (opset
>= 23, fused by TensorRT) or as MatMul-Softmax-MatMul (any opset).

``prompts_as_input`` exports the shared backbone instead: inputs ``video`` and
``prompts (layers, 2, tokens, head_dim)``, output ``features (batch, D)`` (mean-pooled tokens);
each task is a small file of prompts, ``head_norm`` and ``head`` that the runner applies.
"""
from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import onnx
import torch
import torch.nn as nn

from apt_video import models
from apt_video.models.files import atomic_path

log = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ATTENTION_FORMS = ("fused", "matmul")


class Fp32LayerNorm(nn.Module):
    """LayerNorm computed in fp32 inside a reduced-precision graph (overflow-safe statistics)."""

    def __init__(self, ln: nn.LayerNorm):
        super().__init__()
        self.ln = copy.deepcopy(ln).float()

    def forward(self, x):
        return self.ln(x.float()).to(x.dtype)


class GraphModule(nn.Module):
    """What is exported: float32 in, float32 out, the network in ``dtype`` between."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, features: bool):
        super().__init__()
        self.model, self.dtype, self.features = model, dtype, features

    def forward(self, video, prompts=None):
        x = video.to(self.dtype)
        if self.features:
            return self.model.forward_pooled(x, prompts.to(self.dtype)).float()
        return self.model(x).float()


def _fp32_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.LayerNorm):
            setattr(module, name, Fp32LayerNorm(child))
        else:
            _fp32_norms(child)


def prepare(model: nn.Module, precision: str = "fp32", attention: str = "fused",
            prompts_as_input: bool = False) -> GraphModule:
    """An eval-mode, prompt-folded copy of ``model`` ready to export."""
    if precision not in DTYPES:
        raise ValueError(f"precision={precision!r}; choose one of {', '.join(DTYPES)}")
    if attention not in ATTENTION_FORMS:
        raise ValueError(f"attention={attention!r}; choose one of {', '.join(ATTENTION_FORMS)}")
    folded = models.fold_prompts(model)
    folded.set_attn_impl("sdpa" if attention == "fused" else "math")
    dtype = DTYPES[precision]
    folded = folded.to(dtype)
    if dtype != torch.float32:
        _fp32_norms(folded)
    return GraphModule(folded, dtype, prompts_as_input).eval()


def export_onnx(model: nn.Module, path: str | Path, *, precision: str = "fp32", opset: int = 23,
                attention: str | None = None, prompts_as_input: bool = False, max_batch: int = 256) -> Path:
    """Export ``model`` (an ``models.VideoVisionTransformer``) to ``path`` as one self-contained
    ONNX file. ``attention`` defaults to ``fused`` at opset >= 23, ``matmul`` below."""
    attention = attention or ("fused" if opset >= 23 else "matmul")
    if attention == "fused" and opset < 23:
        raise ValueError(f"the fused Attention op needs opset >= 23 (got --opset {opset}); "
                         f"use the matmul form or a newer opset")
    if prompts_as_input and model.num_prompt_tokens == 0:
        raise ValueError("--prompts-as-input needs a prompt-tuned model (transfer_type 'prompt')")
    graph = prepare(model, precision, attention, prompts_as_input)
    inner = graph.model
    video = torch.randn(2, 3, inner.num_frames, inner.img_size, inner.img_size)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    args, names, shapes = (video,), ["video"], {"video": {0: batch}}
    if prompts_as_input:
        args += (inner.effective_prompts().float().detach(),)
        names.append("prompts")
        shapes["prompts"] = None
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(graph, args, str(tmp), input_names=names,
                          output_names=["features" if prompts_as_input else "logits"],
                          dynamic_shapes=shapes, opset_version=opset, dynamo=True, external_data=False,
                          verbose=False, optimize=True)
        proto = onnx.load(str(tmp))
        if precision != "fp32":
            for node in proto.graph.node:
                if node.op_type == "Attention":  # softmax accumulates in fp32 (TensorProto.FLOAT = 1)
                    node.attribute.append(onnx.helper.make_attribute("softmax_precision", 1))
        proto.graph.doc_string = f"apt-video {precision} {attention} attention"
        onnx.save(proto, str(tmp))
    return path


def op_types(path: str | Path) -> dict[str, int]:
    """Op type -> count in the graph (functions inlined by the exporter's optimiser)."""
    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def task_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What one task adds to a shared backbone engine: its effective prompts, head_norm and head."""
    folded = models.fold_prompts(model)
    out = {"prompts": folded.effective_prompts().float().contiguous(),
           "head_norm.eps": torch.tensor([folded.head_norm.eps], dtype=torch.float64)}
    for name in ("head_norm.weight", "head_norm.bias", "head.weight", "head.bias"):
        out[name] = folded.state_dict()[name].float().contiguous()
    return out


def apply_task(features: torch.Tensor, task: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits from shared-backbone ``features (N, D)`` and one task's tensors."""
    x = torch.nn.functional.layer_norm(features.float(), features.shape[-1:], task["head_norm.weight"],
                                       task["head_norm.bias"], float(task["head_norm.eps"][0]))
    return torch.nn.functional.linear(x, task["head.weight"], task["head.bias"])
