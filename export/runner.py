"""The runner interface: ``runner(views) -> logits`` on ``(N, 3, T, H, W)`` float32 clips, in chunks
of the runner's batch limit; backends subclass it (``export.runners``, ``export.trt``)."""
from __future__ import annotations

import torch

from apt_video.models import ModelCard

from .graph import apply_task
from .package import Package

#: clips per engine call when nothing says otherwise: one video's 10x3 views
PREFERRED_BATCH = 30


def preferred_batch(package: Package | None) -> int:
    """The export's optimal batch (its TensorRT profile's ``opt``), else ``PREFERRED_BATCH``."""
    return int(package.batch.get("opt", PREFERRED_BATCH)) if package else PREFERRED_BATCH


class BackendUnavailable(RuntimeError):
    """The asked-for backend cannot run here: the message is one line saying what is missing."""



class Runner:
    """Base class: subclasses implement ``_run(chunk) -> logits or features``. ``card`` is the model
    card (classes, clip geometry); ``package`` the export it runs (None for a PyTorch checkpoint)."""

    name = "runner"

    def __init__(self, card: ModelCard, max_batch: int, task: dict | None = None, package: Package | None = None):
        self.card, self.max_batch, self.task, self.package = card, max(1, int(max_batch)), task, package

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    @property
    def preferred_batch(self) -> int:
        """Clips per call the engine was tuned for (the export's optimal batch), else ``PREFERRED_BATCH``."""
        return preferred_batch(self.package)

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        outs = [self._run(views[i:i + self.max_batch]) for i in range(0, len(views), self.max_batch)]
        out = torch.cat(outs) if outs else torch.empty(0, len(self.classes))
        if self.task is not None:
            out = apply_task(out.float().cpu(), self.task)
        return out

    def _run(self, chunk: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
