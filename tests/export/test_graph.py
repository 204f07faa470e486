"""export.graph: the folded ONNX graph in every precision and attention form, its numerics in ONNX
Runtime against PyTorch, prompts folded as constants or taken as an input."""
import itertools

import numpy as np
import onnx
import pytest
import torch

from apt_video.export import (
    apply_task,
    export_onnx,
    op_types,
    task_tensors,
    unsupported_ops,
    verify_graph,
)

from export_kit import tiny

CASES = list(itertools.product(["fp32", "fp16", "bf16"], [("fused", 23), ("matmul", 18)], [False, True]))


@pytest.mark.parametrize("precision,form,prompts_in", CASES)
def test_every_precision_and_attention_form(tmp_path, precision, form, prompts_in):
    attention, opset = form
    m = tiny()
    path = export_onnx(m, tmp_path / "m.onnx", precision=precision, opset=opset, attention=attention,
                       prompts_as_input=prompts_in)
    ops = op_types(path)
    assert ("Attention" in ops) == (attention == "fused")
    if attention == "matmul":
        assert "Softmax" in ops and "MatMul" in ops
    assert unsupported_ops(path, opset) == []
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == (["video", "prompts"] if prompts_in else ["video"])
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert not any("prompt_scale" in t.name for t in proto.graph.initializer)
    assert not {"Dropout", "RandomUniformLike", "RandomNormalLike", "Bernoulli"} & set(ops)
    clips = {f"batch{b}": torch.randn(b, 3, 4, 32, 32, generator=torch.Generator().manual_seed(b)) for b in (1, 3, 5)}
    task = task_tensors(m) if prompts_in else None
    result = verify_graph(path, m, clips, precision, prompts=task["prompts"] if task else None)
    assert result["passed"], result
    if precision != "bf16":
        assert result["providers"] == ["CPUExecutionProvider"]
    if precision == "fp32":
        assert all(s["max_abs_error"] < 1e-4 for s in result["sets"].values())
    if precision != "fp32" and attention == "fused":
        att = [n for n in proto.graph.node if n.op_type == "Attention"]
        assert all(any(a.name == "softmax_precision" and a.i == 1 for a in n.attribute) for n in att)


def test_folded_prompts_are_the_effective_constants(tmp_path):
    m = tiny()
    path = export_onnx(m, tmp_path / "m.onnx", opset=18, attention="matmul")
    eff = m.effective_prompts().detach().numpy()
    consts = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    for layer in range(2):
        for kv in range(2):
            assert any(c.shape == eff[layer, kv].shape and np.allclose(c, eff[layer, kv]) for c in consts) or \
                any(c.size == eff.size and np.allclose(c.reshape(eff.shape), eff) for c in consts)


def test_fused_attention_needs_opset_23(tmp_path):
    with pytest.raises(ValueError, match="needs opset >= 23"):
        export_onnx(tiny(), tmp_path / "m.onnx", opset=18, attention="fused")
    with pytest.raises(ValueError, match="needs a prompt-tuned model"):
        export_onnx(tiny(transfer_type="linear"), tmp_path / "m.onnx", prompts_as_input=True)


def test_one_backbone_engine_serves_two_tasks(tmp_path):
    a = tiny(seed=0)
    b = tiny(seed=0)  # same backbone, other prompts and head
    with torch.no_grad():
        b.prompt_embeddings_k.normal_(0, 0.5)
        b.prompt_embeddings_v.normal_(0, 0.5)
        b.head.weight.normal_(0, 0.2)
        b.head_norm.weight.uniform_(0.5, 1.5)
    shared = export_onnx(a, tmp_path / "shared.onnx", prompts_as_input=True)
    x = torch.randn(3, 3, 4, 32, 32)
    import onnxruntime as ort
    s = ort.InferenceSession(str(shared), providers=["CPUExecutionProvider"])
    for model in (a, b):
        folded = export_onnx(model, tmp_path / "folded.onnx")
        f = ort.InferenceSession(str(folded), providers=["CPUExecutionProvider"]).run(None, {"video": x.numpy()})[0]
        task = task_tensors(model)
        feats = s.run(None, {"video": x.numpy(), "prompts": task["prompts"].numpy()})[0]
        np.testing.assert_allclose(apply_task(torch.from_numpy(feats), task).numpy(), f, atol=1e-4, rtol=1e-4)
    assert not np.allclose(task_tensors(a)["prompts"], task_tensors(b)["prompts"])
