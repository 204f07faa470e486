"""``run_doctor``: what works on this host, what does not and why, and how fast.

First the environment (GPU and driver, CUDA as PyTorch sees it, DALI and its CUDA flavour, NVDEC,
ONNX Runtime's providers as available and as usable, TensorRT, PyAV's codecs, the CPU and its SIMD
features); then the checks, each PASS, FAIL or SKIP with its reason and its figures. A check that
needs what the host lacks (a GPU, TensorRT, a second GPU for NCCL) is a SKIP saying so; the run
fails (exit status 1) only when a check that could run failed.

The checks themselves, and their types, are in ``apt_video.tools.checks``; each compares against a
reference computed in the same run.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import onnx
import torch
from onnx import TensorProto, helper

from apt_video.errors import UserError
from apt_video.export.trt import trt_missing, trt_version
from apt_video.models.files import atomic_write_text, unwritable

from .bench.common import dist_version
from .checks import CHECKS, FAIL, PASS, SKIP, Check, Context, Result, Skip


@dataclass
class Report:
    environment: dict
    results: list[Result]

    @property
    def exit_code(self) -> int:
        return 1 if any(r.status == FAIL for r in self.results) else 0

    def to_dict(self) -> dict:
        return {"environment": self.environment, "results": [dataclasses.asdict(r) for r in self.results],
                "exit_code": self.exit_code}


# -- the environment -----------------------------------------------------------------------------------
def cpu_info() -> dict:
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    return {"model": model, "cores": os.cpu_count(), "simd": simd}


def ort_providers() -> dict:
    """Providers ONNX Runtime lists, and those a session really gets (a listed CUDA provider whose
    libraries do not load falls back to the CPU)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return {"error": str(exc)}

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(blob))
    usable = []
    ort.set_default_logger_severity(4)
    with _quiet():  # a provider that cannot load prints pages of errors: its absence from `usable` says it
        for provider in ort.get_available_providers():
            try:
                opts = ort.SessionOptions()
                opts.log_severity_level = 4
                if provider in ort.InferenceSession(blob, opts, providers=[provider]).get_providers():
                    usable.append(provider)
            except Exception:  # noqa: BLE001  a provider that cannot start here
                continue
    ort.set_default_logger_severity(2)
    return {"version": ort.__version__, "available": ort.get_available_providers(), "usable": usable}


class _quiet:
    """Silence file descriptors 1 and 2 (native libraries write there directly)."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


def environment() -> dict:
    env = {"cpu": cpu_info(), "python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpus"] = [{"name": torch.cuda.get_device_name(i),
                        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                        "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                       for i in range(torch.cuda.device_count())]
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.split("\n")[0]
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    dali = {flavour: dist_version(f"nvidia-dali-{flavour}") for flavour in ("cuda120", "cuda130")}
    env["dali"] = {k: v for k, v in dali.items() if v} or None
    try:
        ctypes.CDLL("libnvcuvid.so.1")
        env["nvdec"] = "libnvcuvid.so.1 loads"
    except OSError as exc:
        env["nvdec"] = f"not available ({exc})"
    env["onnxruntime"] = ort_providers()
    env["tensorrt"] = trt_version() or trt_missing()
    codecs = {}
    for name, enc in (("h264", "libx264"), ("hevc", "libx265"), ("vp9", "libvpx-vp9"), ("av1", "libsvtav1"),
                      ("mpeg4", "mpeg4"), ("mjpeg", "mjpeg")):
        codecs[name] = [kind for kind, codec in (("decode", name), ("encode", enc)) if _has_codec(av, codec, kind)]
    env["pyav"] = {"version": av.__version__, "codecs": codecs}
    return env


def _has_codec(av, name: str, kind: str) -> bool:
    try:
        av.codec.Codec(name, "r" if kind == "decode" else "w")
        return True
    except Exception:  # noqa: BLE001
        return False


def run_checks(checks: list[Check], ctx: Context, say: Callable[[str], None] = print) -> list[Result]:
    results = []
    for check in checks:
        t0 = time.perf_counter()
        try:
            if check.needs_gpu and not ctx.gpu:
                raise Skip("no CUDA GPU is visible to PyTorch on this host")
            passed, detail, figures = check.run(ctx)
            result = Result(check.name, PASS if passed else FAIL, detail, figures)
        except Skip as exc:
            result = Result(check.name, SKIP, str(exc))
        except Exception as exc:  # noqa: BLE001  a check that breaks is a failure, reported, not a crash
            result = Result(check.name, FAIL, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                            if str(exc).strip() else type(exc).__name__)
        result.figures["seconds"] = round(time.perf_counter() - t0, 1)
        rates = {k: v for k, v in result.figures.items() if k.endswith("_per_s")}
        say(f"{result.status}  {result.name:16s} {result.detail}"
            + "".join(f"; {k.replace('_per_s', '/s').replace('_', ' ')} {v:.1f}" for k, v in rates.items()))
        results.append(result)
    return results


def run_doctor(quick: bool = False, json_path: str | Path | None = None, work: str | Path | None = None,
               checks: list[Check] | None = None, say: Callable[[str], None] = print) -> Report:
    if json_path and (why := unwritable(json_path)):
        raise UserError(f"--json {why}")
    env = environment()
    say(f"CPU     {env['cpu']['model']} ({env['cpu']['cores']} cores; {', '.join(env['cpu']['simd']) or 'no AVX'})")
    say(f"GPU     {', '.join(g['name'] for g in env.get('gpus', [])) or 'none'} (driver {env.get('driver')}); "
        f"torch {env['torch']} CUDA {env['torch_cuda']}")
    say(f"DALI    {env['dali']}; NVDEC {env['nvdec']}")
    say(f"ORT     {env['onnxruntime']}")
    say(f"TensorRT {env['tensorrt']}")
    say(f"PyAV    {env['pyav']}")
    with tempfile.TemporaryDirectory(prefix="apt-video-doctor-") as tmp:
        ctx = Context(Path(work or tmp), quick, torch.cuda.is_available())
        ctx.work.mkdir(parents=True, exist_ok=True)
        results = run_checks(CHECKS if checks is None else checks, ctx, say)
    report = Report(env, results)
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIP)}
    say(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    if json_path:
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=1, default=str))
    return report
