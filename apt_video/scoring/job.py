"""One scoring job as a typed record, passed whole to an engine, and what every engine shares: the
rows it makes (a prediction, a video that could not be used) and ``finish``, which fills the rows
an engine never delivered and builds the result. An engine (``scoring.local``, ``scoring.ray_engine``)
takes a ``ScoreJob`` and returns a ``ScoreResult``."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apt_video.models.artifact import CardFill
from apt_video.models.card import ClipSpec
from apt_video.pipeline.data import VideoEntry

from .rows import Row, RowWriter

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")  # local: this process, or each torchrun rank; ray: Ray Data (scoring.ray_engine)


@dataclass(frozen=True)
class ScoreJob:
    """What to score and how: the probed ``entries`` and their row ``ids`` (input order), the clip
    geometry and test views, the model's class names; the output file and its format; clips per
    engine call, classes per row, whether to resume; the model and how to run it (``fill``: what a
    downloaded model's files do not say); the local engine's decode processes."""

    entries: list[VideoEntry]
    ids: list[str]
    spec: ClipSpec
    classes: list[str]
    out: Path
    fmt: str = "csv"
    batch: int = 30
    top_k: int = 5
    resume: bool = False
    model: str | Path = ""
    backend: str = "auto"
    pretrained: str | None = None
    task: str | None = None
    workers: int = 2
    progress: bool = True
    fill: CardFill | None = None


@dataclass
class ScoreResult:
    rows: list[Row]
    ok: int
    failed: int
    skipped: int
    clips: int
    seconds: float
    backend: str
    startup: float = 0.0  # seconds before the first row was written (decoders, engines, a cluster starting)
    times: list[float] = field(default_factory=list)  # time.perf_counter() when each row was written

    @property
    def first_at(self) -> float | None:
        return self.times[0] if self.times else None

    def steady_rate(self) -> float:
        """Videos/s after the first write: the rows written later over the time since it (NaN when
        every row came in that first write)."""
        later = [t for t in self.times if t > self.times[0]] if self.times else []
        return len(later) / (later[-1] - self.times[0]) if later else float("nan")

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.skipped


def unusable_error(entry: VideoEntry) -> str:
    """The error text of a video its probe found unusable."""
    return f"{entry.status}: {entry.reason}"


def decode_error(reason: str) -> str:
    """The error text of a video the loader could not decode."""
    return f"decode: {reason}"


def prediction_row(video: str, probs: np.ndarray, classes: list[str], k: int) -> Row:
    """The row of one video: its top class, its probability and the ``k`` best classes; an error
    row when the engine gave a non-finite value (NaN or infinity is never a prediction)."""
    if not np.isfinite(probs).all():
        return Row(video, "error", error="model: non-finite output (NaN or infinity); the model or its card's "
                                         "normalisation is broken")
    order = np.argsort(-probs)[:k]
    names = [classes[i] for i in order]
    return Row(video, "ok", names[0], float(probs[order[0]]), [(n, float(probs[i])) for n, i in zip(names, order)])


def finish(writer: RowWriter, done: int, clips: int, t0: float, backend: str, why: str) -> ScoreResult:
    """Close ``writer`` after giving every position that has no row an error row saying ``why``
    (never a silent gap), and the result: its rows, counts (``done``: rows a previous run left),
    clips scored, seconds and start-up since ``t0``."""
    for k in writer.missing():
        log.error("%s: %s", writer.ids[k], why)
        writer.put(k, Row(writer.ids[k], "error", error=why))
    writer.close()
    rows, end = writer.written, time.perf_counter()
    return ScoreResult(rows, sum(r.status == "ok" for r in rows), sum(r.status != "ok" for r in rows), done, clips,
                       end - t0, backend, startup=max(0.0, (writer.first_at or end) - t0), times=writer.times)
