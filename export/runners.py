"""One small interface over TensorRT engines, ONNX Runtime sessions and PyTorch models:
``runner(views) -> logits`` on ``(N, 3, T, H, W)`` float32, in chunks of the runner's batch limit.

``load_runner`` reads ``model.json`` (written by ``apt-video export``), an apt-video weights file
or a Hugging Face VideoMAE classifier as downloaded, and picks the backend: TensorRT when an
engine, TensorRT and a GPU are present, else ONNX Runtime, else PyTorch, and says which.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from apt_video import models
from apt_video.models import ModelCard, find_weights

from .package import Package, PackageError, check_files, check_io, read_package
from .runner import BackendUnavailable, Runner, preferred_batch
from .trt import TrtRunner, trt_missing
from .verify import onnx_session

__all__ = ["BACKENDS", "BackendUnavailable", "OrtRunner", "PackageError", "Runner", "TorchRunner", "load_runner"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "trt", "ort", "torch")


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, model: torch.nn.Module, card: ModelCard, device: str | None = None, max_batch: int = 32,
                 amp: bool = True):
        super().__init__(card, max_batch)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().to(self.device)
        self.amp = amp and self.device.type == "cuda"

    @torch.no_grad()
    def _run(self, chunk):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(chunk.to(self.device)).float().cpu()


class OrtRunner(Runner):
    """ONNX Runtime: the CUDA provider where PyTorch sees a GPU (refused loudly when this ONNX
    Runtime cannot use it), else the CPU. GPU batches are bound in place (IOBinding), not copied
    through the host."""

    name = "ort"

    def __init__(self, onnx_path: str | Path, package: Package, providers: list[str] | None = None,
                 task: dict | None = None, device_id: int | None = None):
        super().__init__(package.card, package.batch.get("max", 32), task, package)
        cuda = torch.cuda.is_available()
        self.device_id = (torch.cuda.current_device() if cuda else 0) if device_id is None else device_id
        if providers is None:
            providers = [("CUDAExecutionProvider", {"device_id": self.device_id}), "CPUExecutionProvider"] if cuda \
                else ["CPUExecutionProvider"]
        wanted = [p if isinstance(p, str) else p[0] for p in providers]
        if package.precision == "bf16" and wanted == ["CPUExecutionProvider"]:
            raise BackendUnavailable(f"{onnx_path}: a bf16 graph runs on TensorRT or ONNX Runtime's CUDA provider; "
                                     f"ONNX Runtime has no bf16 kernels on the CPU: export --precision fp32 or fp16 "
                                     f"to score on the CPU")
        if package.precision == "fp8":
            raise BackendUnavailable(f"{onnx_path}: an fp8 graph runs on TensorRT on GPUs with FP8 tensor cores (sm "
                                     f"8.9+: Ada, Hopper, Blackwell); ONNX Runtime has no float8 kernels for it: "
                                     f"score with --backend trt there, or export --precision int8 or fp32")
        try:
            self.session, self.providers = onnx_session(onnx_path, providers)
        except Exception as exc:  # noqa: BLE001  a damaged or foreign file: one line, not ORT's dump
            raise BackendUnavailable(f"{onnx_path}: ONNX Runtime cannot load this graph "
                                     f"({str(exc).strip().splitlines()[0][:200]}); export the model again") from None
        if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in self.providers:
            import onnxruntime

            raise BackendUnavailable(
                f"ONNX Runtime {onnxruntime.__version__} cannot use this host's GPU (CUDA {torch.version.cuda} for "
                f"PyTorch; its providers here: {', '.join(self.providers)}): install the flavour for this CUDA, "
                f"pip install 'apt-video[cu{(torch.version.cuda or '12').split('.')[0]}]', or score with --backend "
                f"trt, or score the training run (its weights) with --backend torch")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_io(package, str(onnx_path), inputs[0].shape, outputs[0].shape)
        self.input_names = [i.name for i in inputs]
        self.output_name = outputs[0].name
        self.prompts = task["prompts"].numpy() if task is not None else None
        if "prompts" in self.input_names and self.prompts is None:
            raise BackendUnavailable(f"{onnx_path}: the graph takes prompts as input; give the task's prompts file")
        if self.prompts is not None:
            want = next(i.shape for i in inputs if i.name == "prompts")
            if list(self.prompts.shape) != [int(v) for v in want]:
                raise BackendUnavailable(f"the task's prompts {list(self.prompts.shape)} do not fit this backbone's "
                                         f"graph ({list(want)}): the task was tuned on another backbone or layers")
        self.on_gpu = "CUDAExecutionProvider" in self.providers

    def _run(self, chunk):
        if self.on_gpu and chunk.is_cuda:
            return self._run_bound(chunk)
        feeds = {"video": chunk.float().cpu().numpy()}
        if self.prompts is not None:
            feeds["prompts"] = self.prompts
        return torch.from_numpy(self.session.run(None, feeds)[0])

    def _run_bound(self, chunk: torch.Tensor) -> torch.Tensor:
        """A CUDA batch run where it lies: input and output bound by device pointer (IOBinding)."""
        video = chunk.float().contiguous()
        out = torch.empty((len(video), self.package.output["shape"][-1]), dtype=torch.float32, device=video.device)
        binding = self.session.io_binding()
        binding.bind_input("video", "cuda", video.device.index or 0, np.float32, tuple(video.shape), video.data_ptr())
        if self.prompts is not None:
            binding.bind_cpu_input("prompts", self.prompts)
        binding.bind_output(self.output_name, "cuda", video.device.index or 0, np.float32, tuple(out.shape),
                            out.data_ptr())
        torch.cuda.current_stream(video.device).synchronize()  # the batch is written before ORT reads it
        self.session.run_with_iobinding(binding)
        return out


TASK_KEYS = ("prompts", "head_norm.weight", "head_norm.bias", "head_norm.eps", "head.weight", "head.bias")


def load_task(path: str | Path) -> dict[str, torch.Tensor]:
    """One task's tensors for a prompts-as-input package (``export.graph.task_tensors``)."""
    try:
        task = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BackendUnavailable(f"{path}: not a readable task file ({str(exc).splitlines()[0][:200]})") from None
    missing = [k for k in TASK_KEYS if k not in task]
    if missing:
        raise BackendUnavailable(f"{path}: not a task file of apt-video export --prompts-as-input (lacks "
                                 f"{', '.join(missing)})")
    return task


def describe_model(model_path: str | Path, fill: models.CardFill | None = None) -> tuple[ModelCard, int]:
    """The card and preferred batch of what ``load_runner`` would run, without loading any engine
    (for a driver that runs none itself: ``apt-video score --engine ray``). An export's files are
    checked against their recorded sha256 as ``load_runner`` checks them. ``fill``: as ``load_runner``'s."""
    p = Path(model_path)
    try:
        found = models.describe(model_path, fill)
    except models.CheckpointError as exc:
        raise BackendUnavailable(str(exc)) from None
    if found is not None:
        return found[0], preferred_batch(None)
    _no_fill(fill, p)
    package, folder = read_package(p)
    check_files(package, folder, ("onnx",))
    return package.card, preferred_batch(package)


def _no_fill(fill: models.CardFill | None, path: Path) -> None:
    if fill:
        raise BackendUnavailable(f"{path}: an exported package; its card holds its clip and class names, so --preset "
                                 f"and --classes have no place (--views sets the test views)")


def load_runner(model_path: str | Path, backend: str = "auto", pretrained: str | None = None,
                task: str | Path | None = None, max_batch: int | None = None, device_id: int | None = None,
                fill: models.CardFill | None = None) -> Runner:
    """A runner for an export folder / model.json / model.onnx / model.plan, or for an apt-video
    weights file or training run folder, or a downloaded VideoMAE classifier (PyTorch; ``fill``: what
    its files do not say, ``models.CardFill``). An export is checked before it is used: its files
    against their recorded sha256, the graph's input and output against the card."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; choose one of {', '.join(BACKENDS)}")
    p = Path(model_path)
    torch_file = p.is_file() and p.suffix in models.artifact.CHECKPOINT_SUFFIXES
    if backend in ("trt", "ort") and (torch_file or find_weights(p) is not None or models.hf_source(p) is not None):
        raise BackendUnavailable(f"{p} is a PyTorch checkpoint: export it first (apt-video export) to use {backend}")
    try:
        opened = models.open_model(model_path, pretrained, fill)
    except models.CheckpointError as exc:
        raise BackendUnavailable(str(exc)) from None
    if opened is not None:
        model, card, weights = opened
        log.info("backend: torch (%s)", weights)
        return TorchRunner(model, card, max_batch=max_batch or 32)
    _no_fill(fill, p)
    package, folder = read_package(p)
    task_tensors = None
    if task is not None and not package.prompts_as_input:
        raise BackendUnavailable(f"--task {task}: {folder} is not a prompts-as-input export; its graph holds its "
                                 f"own prompts and head")
    if package.prompts_as_input:
        check_files(package, folder, ("task",) if task is None else ())
        task_tensors = load_task(task or folder / package.files["task"])
    plan = folder / package.files["plan"] if package.files.get("plan") else None
    if backend == "trt" or (backend == "auto" and plan is not None and plan.is_file()):
        missing = trt_missing()
        if missing is None and plan is not None and plan.is_file():
            check_files(package, folder, ("plan",))
            log.info("backend: TensorRT (%s)", plan)
            return TrtRunner(plan, package, task=task_tensors)
        if backend == "trt":
            raise BackendUnavailable(missing or f"{folder}: no TensorRT engine (model.plan); export without "
                                                f"--onnx-only on a GPU host")
        log.info("TensorRT not used: %s", missing)
    if backend == "torch":
        raise BackendUnavailable(f"{p} is an exported graph; the torch backend takes a training run or weights file")
    check_files(package, folder, ("onnx",))
    runner = OrtRunner(folder / package.files["onnx"], package, task=task_tensors, device_id=device_id)
    if max_batch:
        runner.max_batch = max_batch
    log.info("backend: ONNX Runtime, providers %s", ", ".join(runner.providers))
    return runner
