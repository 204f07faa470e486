"""``score_videos``: the whole scoring job. Every input is checked before anything is written; the
job is then one ``ScoreJob`` handed to an engine (``local``: this process or its torchrun ranks;
``ray``: Ray Data), and the report holds exactly one row per input video."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from apt_video.distributed import setup_distributed
from apt_video.export import describe_model, load_runner
from apt_video.models.artifact import CardFill
from apt_video.models.card import ClipSpec
from apt_video.pipeline.data import DataError, atomic_write_text

from .inputs import label_metrics, read_labels, scoring_inputs, scoring_spec, to_model_labels
from .job import ENGINES, ScoreJob, ScoreResult
from .local import score_local
from .ray_engine import RayOptions, ray_missing, score_on_ray, unreachable
from .rows import OutputLock, choose_format, read_rows


@dataclass
class ScoreReport:
    """What ``score_videos`` did: the output file and its rows, the counts, the geometry and backend
    used, and the label metrics when labels were given."""

    out: Path
    fmt: str
    rows: list[dict]
    result: ScoreResult
    backend: str
    spec: ClipSpec
    metrics: dict | None = None
    metrics_path: Path | None = None

    @property
    def all_ok(self) -> bool:
        return all(r["status"] == "ok" for r in self.rows)

    def summary(self, engine: str = "local") -> list[str]:
        """What the command prints: the counts and rates, and the label metrics."""
        r, secs = self.result, max(self.result.seconds, 1e-9)
        lines = [f"ray: first row after {r.startup:.1f} s (cluster and actors starting)"] if engine == "ray" else []
        lines.append(f"scored {r.total} videos: {r.ok} ok, {r.failed} failed, {r.skipped} already done; "
                     f"{r.ok / secs:.2f} videos/s, {r.clips / secs:.1f} clips/s; backend {self.backend}; views "
                     f"{self.spec.test_num_segment}x{self.spec.test_num_crop}; wrote {self.out}")
        if self.metrics:
            m = self.metrics
            lines.append(f"labels: top-1 {m['top1']:.2f}, top-5 {m['top5']:.2f} over {m['videos']} videos; "
                         f"wrote {self.metrics_path}")
        return lines


def score_videos(source: str | Path, model: str | Path, out: str | Path, *, views: tuple[int, int] | None = None,
                 batch: int | None = None, backend: str = "auto", labels: str | Path | None = None,
                 data_root: str | Path | None = None, top_k: int = 5, resume: bool = False, workers: int | None = None,
                 fmt: str | None = None, pretrained: str | None = None, task: str | None = None,
                 layout: dict | None = None, progress: bool = True, engine: str = "local",
                 ray: RayOptions | None = None, fill: CardFill | None = None) -> ScoreReport | None:
    """Score every video of ``source`` (folder, list file, manifest or one video) with ``model``
    (export folder or weights) into ``out``: one row per input video, in order. Under torchrun each
    rank scores its share and rank 0 merges them; the other ranks return None. ``engine="ray"``
    scores on Ray Data instead (``ray``: where and how wide). Raises ``DataError`` (bad input or
    output file) or the runner's errors (``BackendUnavailable``, ...). ``layout``: ``{"split",
    "part", "splits"}`` when ``source`` is an official dataset layout; then ``labels`` may be the
    same folder (the split's labels). ``workers``: the local engine's decode processes (default 2);
    Ray's decoders are ``ray.decode_cpus``. ``fill``: the clip and class names of a downloaded
    model whose files do not say them (``models.CardFill``)."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "ray" and workers is not None:
        raise ValueError("--workers sets the local engine's decode processes; under --engine ray the decoding "
                         "actors are --decode-cpus")
    out = Path(out)
    if not out.parent.is_dir():
        raise DataError(f"{out}: the folder {out.parent} does not exist; create it first")
    fmt = choose_format(out, fmt)
    entries, ids = scoring_inputs(source, data_root, layout)
    protected = {Path(source).resolve()} | {Path(e.path).resolve() for e in entries}
    if labels:
        protected.add(Path(labels).resolve())
    if out.resolve() in protected:
        raise DataError(f"{out}: is one of the inputs; choose another output file")
    if out.exists() and out.stat().st_size and not resume:
        raise DataError(f"{out}: exists; pass --resume to continue it, or remove it")
    truth = None
    if labels:  # read (and checked) before any scoring
        same = layout and Path(labels).resolve() == Path(source).resolve()
        truth, label_names = read_labels(labels, data_root, layout if same else None)
    if engine == "ray":
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise DataError("--engine ray is one driver for the whole cluster: run it once, not under torchrun")
        if ray_missing():
            raise DataError(ray_missing())
        if why := unreachable(ray.address if ray else None):
            raise DataError(why)
        card, preferred = describe_model(model, fill)  # the driver runs no engine: the actors do
    else:
        d = setup_distributed(collectives="gloo")  # scoring exchanges only small CPU objects
        runner = load_runner(model, backend, pretrained, task, fill=fill)
        card, preferred = runner.card, runner.preferred_batch
    if truth is not None:
        truth = to_model_labels(truth, label_names, card.classes, str(labels))
    spec = scoring_spec(card, views)
    job = ScoreJob(entries, ids, spec, card.classes, out, fmt, batch or max(spec.num_views, preferred), top_k,
                   resume, model, backend, pretrained, task, workers or 2, progress, fill)
    if engine == "ray":
        with OutputLock(out):
            result = score_on_ray(job, ray)
    else:
        result = score_local(job, runner, Path(source), layout, d)
        if result is None:
            return None
    return _report(job, result, truth)


def _report(job: ScoreJob, result: ScoreResult, truth: dict[str, int] | None) -> ScoreReport:
    """The rows written (exactly one per input), and the label metrics when labels were given."""
    rows = read_rows(job.out, job.fmt)
    if len(rows) != len(job.entries):  # every input row has exactly one output row
        raise RuntimeError(f"{job.out}: holds {len(rows)} rows for {len(job.entries)} input videos")
    report = ScoreReport(job.out, job.fmt, rows, result, result.backend, job.spec)
    if truth is not None:
        report.metrics = label_metrics(rows, job.entries, job.ids, truth, job.classes)
        report.metrics_path = job.out.with_name(job.out.name + ".metrics.json")
        atomic_write_text(report.metrics_path, json.dumps(report.metrics, indent=1))
    return report
