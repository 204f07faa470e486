"""Export: folded graphs in every precision and attention form, verified in ONNX Runtime; op check;
metadata; runners and their errors; TensorRT where present."""
import itertools
import json

import numpy as np
import onnx
import pytest
import torch

import models
from export import (BackendUnavailable, apply_task, export_onnx, load_runner, op_types, task_tensors,
                    unsupported_ops, verify_graph)
from export.trt import trt_missing
from pipeline.cli import main


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    m = models.create_model("vit_small_patch16_224", img_size=32, num_frames=4, embed_dim=64, depth=2, num_heads=2,
                            num_classes=5, prompt_num_tokens=6, init_scale=1.0, prompt_dropout=0.2, **kw)
    if m.prompt_scale is not None:
        with torch.no_grad():
            m.prompt_scale.uniform_(0.5, 2.5)
    return m.eval()


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


def test_op_check_catches_planted_ops(tmp_path):
    path = export_onnx(tiny(), tmp_path / "m.onnx", opset=18, attention="matmul")
    proto = onnx.load(str(path))
    out = proto.graph.output[0].name
    proto.graph.node.append(onnx.helper.make_node("Unique", [out], ["u"], name="planted_unique"))
    proto.graph.node.append(onnx.helper.make_node("MyCustom", [out], ["c"], name="planted_custom", domain="com.acme"))
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    problems = unsupported_ops(tmp_path / "bad.onnx")
    assert any("Unique (node 'planted_unique') is not supported" in p for p in problems)
    assert any("MyCustom (node 'planted_custom') is in domain 'com.acme'" in p for p in problems)
    fused = export_onnx(tiny(), tmp_path / "f.onnx", opset=23)
    assert any("Attention" in p and "needs opset >= 23" in p for p in unsupported_ops(fused, 18))


def test_verification_fails_when_the_graph_does_not_match(tmp_path):
    m = tiny()
    path = export_onnx(m, tmp_path / "m.onnx", opset=18, attention="matmul")
    other = tiny()
    with torch.no_grad():
        other.head.weight.mul_(-3)
    result = verify_graph(path, other, {"random": torch.randn(4, 3, 4, 32, 32)}, "fp32")
    assert not result["passed"] and not result["sets"]["random"]["passed"]


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


def test_export_command_metadata_and_runners(tmp_path, prompt_run, capsys):
    run, _ = prompt_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "-o", str(out), "--precision", "fp16"]) == 0
    text = capsys.readouterr().out
    assert "TensorRT engine not built" in text or (out / "model.plan").is_file()
    meta = json.loads((out / "model.json").read_text())
    assert meta["verification"]["passed"] and set(meta["verification"]["sets"]) == {"random", "real"}
    assert meta["classes"] == models.read_meta(run / "checkpoints" / "best.safetensors")["classes"]
    assert meta["input"]["shape"] == ["batch", 3, 8, 112, 112] and meta["precision"] == "fp16"
    assert (meta["test_num_segment"], meta["test_num_crop"], meta["prompt_num_tokens"]) == (2, 3, 8)
    assert meta["checkpoint"]["sha256"] == models.sha256_file(run / "checkpoints" / "best.safetensors")
    assert meta["op_check"]["passed"]
    ort_runner = load_runner(out)  # auto: no engine here -> ONNX Runtime
    torch_runner = load_runner(run)
    assert (ort_runner.name, torch_runner.name) == ("ort", "torch")
    x = torch.randn(5, 3, 8, 112, 112)
    ort_runner.max_batch = 2  # chunks of the batch limit
    np.testing.assert_allclose(ort_runner(x).numpy(), torch_runner(x).numpy(), atol=2e-2, rtol=2e-2)
    assert ort_runner.classes == torch_runner.classes


def test_runner_errors_are_one_line(tmp_path, prompt_run):
    run, _ = prompt_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "-o", str(out), "--onnx-only", "--opset", "18"]) == 0
    if trt_missing():
        with pytest.raises(BackendUnavailable) as err:
            load_runner(out, backend="trt")
        assert "\n" not in str(err.value) and "TensorRT" in str(err.value)
    with pytest.raises(BackendUnavailable, match="export it first"):
        load_runner(run, backend="ort")
    with pytest.raises(BackendUnavailable, match="torch backend takes a training run"):
        load_runner(out, backend="torch")
    with pytest.raises(FileNotFoundError, match="no model.json"):
        load_runner(tmp_path)
    with pytest.raises(ValueError, match="backend='tpu'"):
        load_runner(out, backend="tpu")


def test_partial_weights_need_their_backbone(tmp_path, prompt_run):
    import shutil

    run, _ = prompt_run
    shutil.copy(run / "checkpoints" / "last.safetensors", tmp_path / "w.safetensors")
    meta = models.read_meta(tmp_path / "w.safetensors")
    model, _ = models.build_from_trained(tmp_path / "w.safetensors")
    assert model.num_prompt_tokens == 8
    with pytest.raises(models.CheckpointError, match="pass it with --pretrained"):
        models.build_from_trained(tmp_path / "w.safetensors", pretrained=str(tmp_path / "gone.pth"))
    assert main(["export", str(tmp_path / "w.safetensors"), "--pretrained", str(tmp_path / "nope.pth"),
                 "-o", str(tmp_path / "x")]) == 2
    assert meta["pretrained"]["path"]


@pytest.mark.skipif(trt_missing() is not None, reason=f"TensorRT unavailable: {trt_missing()}")
def test_tensorrt_engine_matches_onnx_runtime(tmp_path, prompt_run):
    run, _ = prompt_run
    out = tmp_path / "trt"
    assert main(["export", str(run), "-o", str(out), "--precision", "fp16", "--batch", "1:4:8",
                 "--timing-cache", str(tmp_path / "cache.bin")]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["plan"] == "model.plan" and meta["tensorrt"]["version"]
    trt_runner, ort_runner = load_runner(out, "trt"), load_runner(out, "ort")
    x = torch.randn(3, 3, 8, 112, 112)
    a, b = trt_runner(x), ort_runner(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.66
    assert (tmp_path / "cache.bin").stat().st_size > 0
