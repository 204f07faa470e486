"""Export: folded graphs in every precision and attention form, verified in ONNX Runtime; op check;
metadata; runners and their errors; TensorRT where present."""
import errno
import itertools
import json
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from apt_video import models
from apt_video.cli import main
from apt_video.export import (
    BackendUnavailable,
    OrtRunner,
    PackageError,
    apply_task,
    default_attention,
    export_onnx,
    export_package,
    fused_attention_supported,
    load_runner,
    op_types,
    read_package,
    task_tensors,
    unsupported_ops,
    verify,
    verify_graph,
    write_package,
)
from apt_video.export.package import _tidy
from apt_video.export.quantize import FLOAT_OPS
from apt_video.export.runners import load_task
from apt_video.export.trt import config_flags, trt_missing
from apt_video.exporting import export_run, real_clips
from apt_video.scoring import score_videos


def quantized_nodes(path) -> dict[str, int]:
    """Op type -> how many of its nodes take a dequantized input (their inputs come through Q/DQ)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: dict[str, int] = {}
    for n in graph.node:
        if any(i in dq for i in n.input):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


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
    package, folder = read_package(out)
    assert package.verification["passed"] and set(package.verification["sets"]) == {"random", "real"}
    assert package.card == models.read_card(run / "checkpoints" / "best.safetensors")  # the card travels whole
    assert package.input["shape"] == ["batch", 3, 8, 112, 112] and package.precision == "fp16"
    assert (package.card.clip.test_num_segment, package.card.clip.test_num_crop) == (2, 3)
    assert package.checkpoint["sha256"] == models.sha256_file(run / "checkpoints" / "best.safetensors")
    assert package.op_check["passed"] and package.opset == 23
    assert package.sha256["model.onnx"] == models.sha256_file(out / "model.onnx")
    assert json.loads((out / "model.json").read_text())["format"] == "apt-video-export"
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
    run, _ = prompt_run
    shutil.copy(run / "checkpoints" / "last.safetensors", tmp_path / "w.safetensors")
    card = models.read_card(tmp_path / "w.safetensors")
    model, _ = models.build_from_trained(tmp_path / "w.safetensors")
    assert model.num_prompt_tokens == 8
    with pytest.raises(models.CheckpointError, match="pass it with --pretrained"):
        models.build_from_trained(tmp_path / "w.safetensors", pretrained=str(tmp_path / "gone.pth"))
    assert main(["export", str(tmp_path / "w.safetensors"), "--pretrained", str(tmp_path / "nope.pth"),
                 "-o", str(tmp_path / "x")]) == 2
    assert card.pretrained.path


@pytest.mark.skipif(trt_missing() is not None, reason=f"TensorRT unavailable: {trt_missing()}")
def test_tensorrt_engine_matches_onnx_runtime(tmp_path, prompt_run):
    run, _ = prompt_run
    out = tmp_path / "trt"
    assert main(["export", str(run), "-o", str(out), "--precision", "fp16", "--batch", "1:4:8",
                 "--timing-cache", str(tmp_path / "cache.bin")]) == 0
    package, _ = read_package(out)
    assert package.files["plan"] == "model.plan" and package.tensorrt["version"]
    assert package.tensorrt["verification"]["passed"] and not package.tensorrt["tf32"]
    trt_runner, ort_runner = load_runner(out, "trt"), load_runner(out, "ort")
    x = torch.randn(3, 3, 8, 112, 112)
    a, b = trt_runner(x), ort_runner(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.66
    assert (tmp_path / "cache.bin").stat().st_size > 0


# -- an export folder is one thing: written whole, checked whole ------------------------------------------
def _edit_model_json(folder, change):
    data = json.loads((folder / "model.json").read_text())
    change(data)
    (folder / "model.json").write_text(json.dumps(data))


def test_a_package_that_does_not_match_its_graph_is_refused(tmp_path, exported):
    fewer = tmp_path / "fewer"
    shutil.copytree(exported, fewer)
    _edit_model_json(fewer, lambda d: d["card"].update(classes=d["card"]["classes"][:2]))
    with pytest.raises(PackageError, match="output width 4 does not match model.json"):
        load_runner(fewer)
    other = tmp_path / "other"
    shutil.copytree(exported, other)
    (other / "model.onnx").write_bytes((other / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(PackageError, match="sha256 differs"):
        load_runner(other)
    garbage = tmp_path / "garbage"
    shutil.copytree(exported, garbage)
    (garbage / "model.onnx").write_bytes(b"not a graph")
    _edit_model_json(garbage, lambda d: d["sha256"].update({"model.onnx": models.sha256_file(garbage / "model.onnx")}))
    with pytest.raises(BackendUnavailable, match="ONNX Runtime cannot load this graph"):
        load_runner(garbage)
    bf16 = tmp_path / "bf16"
    shutil.copytree(exported, bf16)
    _edit_model_json(bf16, lambda d: d.update(precision="bf16"))
    with pytest.raises(BackendUnavailable, match="no bf16 kernels on the CPU"):
        load_runner(bf16)


def test_re_export_replaces_the_folder_whole_and_a_failure_keeps_the_old_one(tmp_path, prompt_run, capsys):
    run, _ = prompt_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "-o", str(out), "--onnx-only", "--verify-clips", "0"]) == 0
    (out / "stale.txt").write_text("from an earlier export\n")
    first = (out / "model.json").read_bytes()
    assert main(["export", str(run), "-o", str(out), "--onnx-only", "--verify-clips", "0", "--attention",
                 "matmul"]) == 0
    assert not (out / "stale.txt").exists() and (out / "model.json").read_bytes() != first
    assert not list(tmp_path.glob(".exp.*"))  # no temporary or old folder left
    kept = (out / "model.json").read_bytes()

    verify.THRESHOLDS["fp32"] = (-1.0, -1.0, 2.0)  # a verification nothing can pass
    try:
        assert main(["export", str(run), "-o", str(out), "--onnx-only", "--verify-clips", "0"]) == 1
    finally:
        verify.THRESHOLDS["fp32"] = (1e-3, 1e-3, 1.0)
    assert "for inspection" in capsys.readouterr().out
    assert (out / "model.json").read_bytes() == kept and (tmp_path / "exp.rejected" / "model.json").is_file()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    assert main(["export", str(run), "-o", str(tmp_path / "notes"), "--onnx-only"]) == 2
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine\n"


def test_opset_is_checked_and_recorded_as_written(tmp_path, prompt_run, capsys):
    run, _ = prompt_run
    with pytest.raises(SystemExit):
        main(["export", str(run), "-o", str(tmp_path / "x"), "--opset", "5"])
    assert "choose 18 to 23" in capsys.readouterr().err
    assert main(["export", str(run), "-o", str(tmp_path / "y"), "--onnx-only", "--opset", "18",
                 "--verify-clips", "0"]) == 0
    package, _ = read_package(tmp_path / "y")
    assert package.opset == 18 and package.attention == "matmul"


def test_nan_weights_are_named(tmp_path, prompt_run, capsys):
    src = prompt_run[0] / "checkpoints" / "last.safetensors"
    tensors = load_file(str(src))
    with safe_open(str(src), "pt") as f:
        header = f.metadata()
    tensors["head.weight"][0, 0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=header)
    assert main(["export", str(tmp_path / "nan.safetensors"), "-o", str(tmp_path / "x"), "--onnx-only"]) == 2
    assert "tensor 'head.weight' holds NaN or infinite values" in capsys.readouterr().err


def test_tensorrt_version_gates_the_fused_attention_op(tmp_path):
    path = export_onnx(tiny(), tmp_path / "f.onnx", opset=23, attention="fused")
    assert unsupported_ops(path, trt_version="10.13.3") == [
        next(p for p in unsupported_ops(path, trt_version="10.13.3") if "Attention" in p)]
    assert "needs TensorRT >= 10.14, this host has 10.13.3" in unsupported_ops(path, trt_version="10.13.3")[0]
    assert unsupported_ops(path, trt_version="10.14.1") == [] and unsupported_ops(path) == []
    assert default_attention(23, "10.9.0") == "matmul" and default_attention(23, "11.4.0") == "fused"
    assert default_attention(23, None) == "fused" and default_attention(18, None) == "matmul"
    assert not fused_attention_supported("10.13") and fused_attention_supported("10.14")


def test_fp32_engines_are_built_without_tf32():
    class Config:
        def __init__(self):
            self.cleared = []

        def clear_flag(self, flag):
            self.cleared.append(flag)

    trt = SimpleNamespace(BuilderFlag=SimpleNamespace(TF32="TF32"))
    fp32, fp16 = Config(), Config()
    config_flags(fp32, trt, "fp32")
    config_flags(fp16, trt, "fp16")
    assert fp32.cleared == ["TF32"] and fp16.cleared == []


def test_a_gpu_host_without_a_working_cuda_provider_is_refused(tmp_path, exported):
    package, folder = read_package(exported)
    with pytest.raises(BackendUnavailable, match="cannot use this host's GPU"):
        OrtRunner(folder / "model.onnx", package, providers=[("CUDAExecutionProvider", {"device_id": 0}),
                                                            "CPUExecutionProvider"])
    runner = OrtRunner(folder / "model.onnx", package)  # here: no GPU, the CPU as asked
    assert runner.providers == ["CPUExecutionProvider"] and not runner.on_gpu


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def full_disk(folder):
        (folder / "model.onnx").write_bytes(b"half a graph")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.onnx"))

    with pytest.raises(OSError, match="No space left"):
        write_package(tmp_path / "out", full_disk)
    assert list(tmp_path.iterdir()) == []  # no temporary folder, no half package


def test_task_files_are_checked(tmp_path, exported):
    (tmp_path / "junk.safetensors").write_bytes(b"not a task")
    with pytest.raises(BackendUnavailable, match="not a prompts-as-input export"):
        load_runner(exported, task=tmp_path / "junk.safetensors")

    with pytest.raises(BackendUnavailable, match="not a readable task file"):
        load_task(tmp_path / "junk.safetensors")


def test_an_export_killed_between_its_renames_is_put_back(tmp_path):
    """The folders of a killed export are put back or removed; those of one still running are not."""
    finished = [subprocess.Popen(["true"]) for _ in range(2)]
    dead = [p.pid for p in finished if p.wait() == 0]
    running = subprocess.Popen(["sleep", "60"])
    try:
        out = tmp_path / "exp"
        old = tmp_path / f".exp.old-{dead[0]}"
        old.mkdir()
        (old / "model.json").write_text("{}")
        (tmp_path / f".exp.tmp-{dead[1]}").mkdir()
        (tmp_path / f".exp.tmp-{running.pid}").mkdir()  # another export, building now
        _tidy(out)
        assert (out / "model.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".exp.tmp-{running.pid}", "exp"]
    finally:
        running.kill()


# -- int8 -------------------------------------------------------------------------------------------------
def test_int8_graph_calibrated_on_real_clips_agrees_with_fp32(tmp_path, prompt_run, task_data):
    run, _ = prompt_run
    package, where = export_run(run, tmp_path / "int8", precision="int8", tensorrt=False, calib_clips=48)
    assert package.passed and where == tmp_path / "int8", json.dumps(package.verification, default=str)
    assert set(package.verification["sets"]) == {"real", "holdout"}  # noise is outside the calibrated ranges
    q = package.quantization
    assert q["calibration_clips"] == 36 and q["quantizer"].startswith("onnxruntime.quantization")
    assert "val.csv" in q["calibration_source"] and len(q["calibration_sha256"]) == 64
    nodes = quantized_nodes(where / "model.onnx")
    assert nodes.get("MatMul", 0) >= 4 * 4 and nodes.get("Conv") == 1 and nodes.get("Gemm", 0) + nodes.get("MatMul", 0)
    assert not any(op in nodes for op in FLOAT_OPS)  # LayerNorm, softmax and attention stay in float

    graph = onnx.load(str(where / "model.onnx"), load_external_data=False).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    requantized = [n.name for n in graph.node if n.op_type == "QuantizeLinear" and made_by.get(n.input[0]) in
                   ("MatMul", "Gemm")]
    assert requantized == []  # Q/DQ on the products' inputs only: their outputs stay float
    assert unsupported_ops(where / "model.onnx") == []  # TensorRT's parser takes the Q/DQ graph
    package32, where32 = export_run(run, tmp_path / "fp32", tensorrt=False)
    test = task_data / "B" / "test.csv"
    reports = [score_videos(test, w, tmp_path / f"{name}.csv", labels=test, progress=False)
               for name, w in (("int8", where), ("fp32", where32))]
    a, b = ([r["pred"] for r in rep.rows] for rep in reports)
    assert sum(x == y for x, y in zip(a, b)) / len(a) >= 0.99
    assert abs(reports[0].metrics["top1"] - reports[1].metrics["top1"]) <= 0.5


def test_fp8_graph_calibrated_on_real_clips_is_verified_and_kept_off_the_cpu(tmp_path, prompt_run, task_data,
                                                                              capsys):
    """FP8 (E4M3) Q/DQ on the matrix products and the patch embedding, verified through ONNX Runtime's
    Q/DQ simulation; scoring it on the CPU is refused (it is TensorRT's, on sm 8.9+)."""
    run, _ = prompt_run
    package, where = export_run(run, tmp_path / "fp8", precision="fp8", tensorrt=False, calib_clips=24)
    assert package.passed and where == tmp_path / "fp8", json.dumps(package.verification, default=str)
    assert set(package.verification["sets"]) == {"real", "holdout"}
    assert all(s["top1_agreement"] >= 0.99 for s in package.verification["sets"].values())
    q = package.quantization
    assert q["weights"].startswith("float8 e4m3") and q["calibration_clips"] == 18
    graph = onnx.load(str(where / "model.onnx")).graph
    fp8 = onnx.TensorProto.FLOAT8E4M3FN
    assert sum(i.data_type == fp8 for i in graph.initializer) >= 4 * 4  # weights (and zero points) in float8
    nodes = quantized_nodes(where / "model.onnx")
    assert nodes.get("MatMul", 0) >= 4 * 4 and nodes.get("Conv") == 1 and "Gemm" not in nodes
    assert not any(op in nodes for op in FLOAT_OPS)
    assert unsupported_ops(where / "model.onnx") == []
    capsys.readouterr()
    test = task_data / "B" / "test.csv"
    assert main(["score", str(test), "--model", str(where), "-o", str(tmp_path / "p.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp8 graph runs on TensorRT" in err[0]


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_graphs_calibrated_on_blank_clips_fail_verification(tmp_path, prompt_run, precision):
    run, _ = prompt_run
    model, card = models.build_from_trained(run / "checkpoints" / "best.safetensors")

    real, _ = real_clips(card, 8)
    blank = torch.zeros(16, 3, 8, 112, 112)  # every activation range collapses
    package, where = export_package(model, card, tmp_path / "x", {"real": real}, precision=precision, tensorrt=False,
                                    calibration=blank)
    assert not package.passed and where.name == "x.rejected" and not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="needs real clips to calibrate on"):
        export_package(model, card, tmp_path / "y", {"real": real}, precision=precision, calibration=None)
