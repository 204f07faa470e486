"""One small interface over TensorRT engines, ONNX Runtime sessions and PyTorch models:
``runner(views) -> logits`` on ``(N, 3, T, H, W)`` float32, in chunks of the runner's batch limit.

``load_runner`` reads ``model.json`` (written by ``apt-video export``) or an apt-video weights file
and picks the backend: TensorRT when an engine, TensorRT and a GPU are present, else ONNX Runtime,
else PyTorch, and says which.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

log = logging.getLogger("apt_video")
BACKENDS = ("auto", "trt", "ort", "torch")


class BackendUnavailable(RuntimeError):
    """The asked-for backend cannot run here: the message is one line saying what is missing."""


class Runner:
    """Base class: subclasses implement ``_run(chunk) -> logits or features``."""

    name = "runner"

    def __init__(self, meta: dict, max_batch: int, task: dict | None = None):
        self.meta, self.max_batch, self.task = meta, max(1, int(max_batch)), task

    @property
    def classes(self) -> list[str]:
        return self.meta.get("classes", [])

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        outs = [self._run(views[i:i + self.max_batch]) for i in range(0, len(views), self.max_batch)]
        out = torch.cat(outs) if outs else torch.empty(0, len(self.classes))
        if self.task is not None:
            from .graph import apply_task
            out = apply_task(out, self.task)
        return out

    def _run(self, chunk: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | None = None, max_batch: int = 32,
                 amp: bool = True):
        super().__init__(meta, max_batch)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().to(self.device)
        self.amp = amp and self.device.type == "cuda"

    @torch.no_grad()
    def _run(self, chunk):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(chunk.to(self.device)).float().cpu()


class OrtRunner(Runner):
    name = "ort"

    def __init__(self, onnx_path: str | Path, meta: dict, providers: list[str] | None = None,
                 task: dict | None = None):
        from .verify import onnx_session

        super().__init__(meta, meta.get("batch", {}).get("max", 32), task)
        if providers is None:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if torch.cuda.is_available() \
                else ["CPUExecutionProvider"]
        self.session, self.providers = onnx_session(onnx_path, providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.prompts = task["prompts"].numpy() if task is not None else None
        if "prompts" in self.input_names and self.prompts is None:
            raise ValueError(f"{onnx_path}: the graph takes prompts as input; give the task's prompts file")

    def _run(self, chunk):
        feeds = {"video": chunk.float().cpu().numpy()}
        if self.prompts is not None:
            feeds["prompts"] = self.prompts
        return torch.from_numpy(self.session.run(None, feeds)[0])


def read_model_json(path: str | Path) -> tuple[dict, Path]:
    """``(metadata, folder)`` of an export: ``path`` is the folder, its model.json, model.onnx or model.plan."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    mj = folder / "model.json"
    if not mj.is_file():
        raise FileNotFoundError(f"{path}: no model.json beside it; export the model with `apt-video export`")
    return json.loads(mj.read_text()), folder


def load_task(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def load_runner(model_path: str | Path, backend: str = "auto", pretrained: str | None = None,
                task: str | Path | None = None, max_batch: int | None = None) -> Runner:
    """A runner for an export folder / model.json / model.onnx / model.plan, or for an apt-video
    weights file or training run folder (PyTorch)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; choose one of {', '.join(BACKENDS)}")
    p = Path(model_path)
    weights = _weights_of(p)
    if weights is not None:
        if backend in ("trt", "ort"):
            raise BackendUnavailable(f"{p} is a PyTorch checkpoint: export it first (apt-video export) "
                                     f"to use {backend}")
        import models

        model, meta = models.build_from_trained(weights, pretrained)
        log.info("backend: torch (%s)", weights)
        return TorchRunner(model, meta, max_batch=max_batch or 32)
    meta, folder = read_model_json(p)
    task_tensors = load_task(task or folder / meta["task"]) if meta.get("prompts_as_input") else None
    plan = folder / meta["plan"] if meta.get("plan") else None
    if backend == "trt" or (backend == "auto" and plan is not None and plan.is_file()):
        from .trt import TrtRunner, trt_missing

        missing = trt_missing()
        if missing is None and plan is not None and plan.is_file():
            log.info("backend: TensorRT (%s)", plan)
            return TrtRunner(plan, meta, task=task_tensors)
        if backend == "trt":
            raise BackendUnavailable(missing or f"{folder}: no TensorRT engine (model.plan); export without "
                                                f"--onnx-only on a GPU host")
        log.info("TensorRT not used: %s", missing)
    if backend == "torch":
        raise BackendUnavailable(f"{p} is an exported graph; the torch backend takes a training run or weights file")
    runner = OrtRunner(folder / meta["onnx"], meta, task=task_tensors)
    if max_batch:
        runner.max_batch = max_batch
    log.info("backend: ONNX Runtime, providers %s", ", ".join(runner.providers))
    return runner


def _weights_of(p: Path) -> Path | None:
    if p.suffix == ".safetensors" and p.is_file():
        return p
    if p.is_dir() and (p / "checkpoints").is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (p / "checkpoints" / name).is_file():
                return p / "checkpoints" / name
    return None
