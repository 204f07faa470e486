"""TensorRT: building an engine from the ONNX graph and running it. TensorRT is imported lazily:
everything else in apt-video works without it (it cannot be installed on the build machines)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .package import Package, check_io
from .runner import BackendUnavailable, Runner
from .verify import compare, judge, reference_outputs

log = logging.getLogger(__name__)
#: the GPU generation an engine of this precision needs (compute capability)
MIN_CAPABILITY = {"int8": (6, 1), "bf16": (8, 0), "fp8": (8, 9)}


def trt_version() -> str | None:
    """The installed TensorRT's version, or None."""
    try:
        import tensorrt
    except ImportError:
        return None
    return getattr(tensorrt, "__version__", None)


def trt_missing() -> str | None:
    """None when TensorRT and a CUDA GPU are usable here, else one line saying what is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("TensorRT is not installed (pip install 'apt-video[cu12-trt]' or '[cu13-trt]' on a host with an "
                "NVIDIA GPU)")
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

    need, have = MIN_CAPABILITY.get(precision), torch.cuda.get_device_capability()
    if need and have < need:
        raise BackendUnavailable(f"{torch.cuda.get_device_name()} (sm {have[0]}.{have[1]}) has no {precision} kernels "
                                 f"TensorRT uses (sm {need[0]}.{need[1]} or newer); export --onnx-only, or in another "
                                 f"precision")
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
    config_flags(config, trt, precision)
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
            ".".join(map(str, torch.cuda.get_device_capability())), "batch": list(batch),
            "tf32": precision != "fp32"}


def config_flags(config, trt, precision: str) -> None:
    """TensorRT enables TF32 for fp32 layers by default (a 10-bit mantissa): an fp32 engine is built
    without it, so that it computes what the fp32 graph it was verified as does. Reduced precision
    comes from the graph itself (strongly typed networks)."""
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)


def verify_engine(plan: str | Path, package: Package, model: torch.nn.Module, clips: dict[str, torch.Tensor],
                  task: dict | None = None) -> dict:
    """Run the engine on the verification clips and judge it against the fp32 PyTorch model with
    the same thresholds as the ONNX graph."""
    runner = TrtRunner(plan, package)
    prompts = task["prompts"] if task is not None else None
    if prompts is not None:  # the engine's prompts input; the head is not applied: features are compared
        runner.prompts = prompts.cuda()
    sets = {name: compare(reference_outputs(model, x, prompts), runner(x).float().cpu().numpy())
            for name, x in clips.items()}
    return judge(package.precision, sets, features=prompts is not None)


class TrtRunner(Runner):
    """Runs a serialized engine with torch CUDA tensors and ``execute_async_v3`` on its own stream,
    which first waits for the stream that wrote the batch."""

    name = "trt"

    def __init__(self, plan: str | Path, package: Package, task: dict | None = None):
        missing = trt_missing()
        if missing:
            raise BackendUnavailable(missing)
        import tensorrt as trt

        built = package.tensorrt or {}
        here = {"version": trt.__version__, "gpu": torch.cuda.get_device_name(),
                "compute_capability": ".".join(map(str, torch.cuda.get_device_capability()))}
        same = all(built.get(k) == here[k] for k in ("version", "compute_capability"))
        if built and not same:
            raise BackendUnavailable(f"{plan}: built with TensorRT {built.get('version')} for {built.get('gpu')} "
                                     f"(sm {built.get('compute_capability')}), this host has TensorRT "
                                     f"{here['version']} on {here['gpu']} (sm {here['compute_capability']}); "
                                     f"rebuild it here with apt-video export")
        super().__init__(package.card, package.batch.get("max", 32), task, package)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"{plan}: TensorRT could not deserialize this engine (other version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output = next(n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        check_io(package, str(plan), list(self.engine.get_tensor_shape("video")),
                 list(self.engine.get_tensor_shape(self.output)))
        self.prompts = task["prompts"].cuda() if task is not None else None

    def _run(self, chunk):
        video = chunk.float().cuda().contiguous()  # written on the current stream
        if not self.context.set_input_shape("video", tuple(video.shape)):
            batch = self.package.batch
            raise RuntimeError(f"TensorRT: a batch of {len(video)} clips is outside the engine's profile "
                               f"({batch.get('min')}..{batch.get('max')}); export with another --batch")
        self.context.set_tensor_address("video", video.data_ptr())
        if self.prompts is not None:
            self.context.set_input_shape("prompts", tuple(self.prompts.shape))
            self.context.set_tensor_address("prompts", self.prompts.data_ptr())
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.output, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())  # TensorRT reads the batch only once it is written
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        video.record_stream(self.stream)  # not freed while the engine may still read it
        torch.cuda.current_stream().wait_stream(self.stream)  # and `out` is read only once written
        return out
