"""TensorRT: building an engine from the ONNX graph and running it. TensorRT is imported lazily:
everything else in apt-video works without it (it cannot be installed on the build machines)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .runners import BackendUnavailable, Runner

log = logging.getLogger("apt_video")


def trt_missing() -> str | None:
    """None when TensorRT and a CUDA GPU are usable here, else one line saying what is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'apt-video[trt]' on a host with an NVIDIA GPU)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to PyTorch, which the TensorRT runner needs"
    return None


def _major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def build_engine(onnx_path: str | Path, plan_path: str | Path, batch: tuple[int, int, int], precision: str,
                 workspace_gb: float = 4.0, timing_cache: str | Path | None = None,
                 input_shape: tuple[int, ...] | None = None) -> dict:
    """Parse the ONNX graph and build a serialized engine with one optimisation profile for the
    batch axis ``(min, opt, max)``. TensorRT 11 takes precision from the graph (strongly typed);
    TensorRT 10 gets the matching builder flag. Returns facts for model.json."""
    missing = trt_missing()
    if missing:
        raise BackendUnavailable(missing)
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if _major(trt) < 11 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") and precision != "fp32":
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    cache = None
    if timing_cache:
        blob = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if tensor.name == "video":
            shapes = [tuple([b] + dims[1:]) for b in batch]
            profile.set_shape(tensor.name, *shapes)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT could not build an engine (see its log above)")
    Path(plan_path).write_bytes(bytes(serialized))
    if cache is not None:
        Path(timing_cache).write_bytes(bytes(cache.serialize()))
    return {"version": trt.__version__, "gpu": torch.cuda.get_device_name(), "compute_capability":
            ".".join(map(str, torch.cuda.get_device_capability())), "batch": list(batch)}


class TrtRunner(Runner):
    """Runs a serialized engine with torch CUDA tensors and ``execute_async_v3`` on its own stream."""

    name = "trt"

    def __init__(self, plan: str | Path, meta: dict, task: dict | None = None):
        missing = trt_missing()
        if missing:
            raise BackendUnavailable(missing)
        import tensorrt as trt

        built = meta.get("tensorrt") or {}
        here = {"version": trt.__version__, "gpu": torch.cuda.get_device_name(),
                "compute_capability": ".".join(map(str, torch.cuda.get_device_capability()))}
        same = all(built.get(k) == here[k] for k in ("version", "compute_capability"))
        if built and not same:
            raise BackendUnavailable(f"{plan}: built with TensorRT {built.get('version')} for {built.get('gpu')} "
                                     f"(sm {built.get('compute_capability')}), this host has TensorRT "
                                     f"{here['version']} on {here['gpu']} (sm {here['compute_capability']}); "
                                     f"rebuild it here with apt-video export")
        super().__init__(meta, (meta.get("batch") or {}).get("max", 32), task)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"{plan}: TensorRT could not deserialize this engine (other version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output = next(n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.prompts = task["prompts"].cuda() if task is not None else None

    def _run(self, chunk):
        video = chunk.float().cuda().contiguous()
        self.context.set_input_shape("video", tuple(video.shape))
        self.context.set_tensor_address("video", video.data_ptr())
        if self.prompts is not None:
            self.context.set_input_shape("prompts", tuple(self.prompts.shape))
            self.context.set_tensor_address("prompts", self.prompts.data_ptr())
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.output, out.data_ptr())
        with torch.cuda.stream(self.stream):
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return out.cpu()

