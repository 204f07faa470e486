"""Batch scoring: every video of a folder, list or manifest gets one output row, in input order.

Each usable video is decoded once by the DALI test pipeline into its segments x crops views; the
views of consecutive videos are packed into full engine batches; each view's softmax is averaged
per video (VideoMAE merge). Rows are appended and flushed as soon as they are complete, so a
killed run loses nothing it wrote and ``--resume`` carries on after the last complete row.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.card import ClipSpec, ModelCard

from pipeline.data import DataError, VideoEntry, open_dataset, read_list_file
from .evaluate import accuracy_from_ranks, merge_views
from .rows import Row, open_writer

if TYPE_CHECKING:
    from .rayscore import RayOptions

log = logging.getLogger(__name__)


ENGINES = ("local", "ray")  # local: this process, or each torchrun rank; ray: Ray Data (apt_video.rayscore)


def scoring_spec(card: ModelCard, views: tuple[int, int] | None = None) -> ClipSpec:
    """The clip geometry recorded at training time, with other test views if asked."""
    return card.clip.with_views(*views) if views else card.clip


# -- inputs -------------------------------------------------------------------------------------------
def scoring_inputs(source: str | Path, data_root: str | Path | None = None,
                   layout: dict | None = None) -> tuple[list[VideoEntry], list[str]]:
    """Entries in input order and their identities (paths relative to INPUT, or as listed);
    ``layout``: ``{"split", "part", "splits"}`` of an official dataset layout at ``source``."""
    source = Path(source)
    ds = open_dataset(source, data_root, **(layout or {}))
    if source.is_dir():
        base = Path(os.path.abspath(source))
        ids = [os.path.relpath(e.path, base) for e in ds.entries]
    else:
        base = Path(os.path.abspath(data_root if data_root else source.parent))
        ids = [os.path.relpath(e.path, base) if Path(e.path).is_relative_to(base) else e.path for e in ds.entries]
    return ds.entries, ids


def read_labels(path: str | Path, data_root: str | Path | None = None, layout: dict | None = None) -> dict[str, int]:
    """Absolute video path -> label, from a VideoMAE list file, a manifest or an official dataset
    layout (keyed by full path, never by basename: two folders may hold the same file name)."""
    if layout or Path(path).suffix in (".csv", ".json") or Path(path).is_dir():
        entries = open_dataset(path, data_root, **(layout or {})).entries
    else:
        entries = read_list_file(path, data_root)
    return {str(Path(e.path).resolve()): e.label for e in entries}


# -- the scoring loop ---------------------------------------------------------------------------------
def unusable_error(entry: VideoEntry) -> str:
    """The error text of a video its probe found unusable."""
    return f"{entry.status}: {entry.reason}"


def decode_error(reason: str) -> str:
    """The error text of a video the loader could not decode."""
    return f"decode: {reason}"


def prediction_row(video: str, probs: np.ndarray, classes: list[str], k: int) -> Row:
    order = np.argsort(-probs)[:k]
    names = [classes[i] for i in order]
    return Row(video, "ok", names[0], float(probs[order[0]]), [(n, float(probs[i])) for n, i in zip(names, order)])


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


def score(entries: list[VideoEntry], ids: list[str], runner, spec: ClipSpec, out: Path, fmt: str = "csv",
          batch: int = 30, top_k: int = 5, resume: bool = False, workers: int = 2, shard: tuple[int, int] = (0, 1),
          device: str = "cpu", progress: bool = True) -> ScoreResult:
    """Score this shard's share of ``entries`` (already probed) into ``out``: one row per entry of
    the shard, in order, ok or error. With ``resume`` the rows already in ``out`` (the first ones of
    the shard, checked against ``ids``) are kept and scoring goes on after them."""
    from tqdm import tqdm

    from pipeline.loader import VideoLoader

    rank, world = shard
    per = -(-len(entries) // world)
    lo, hi = rank * per, min(len(entries), (rank + 1) * per)
    mine = list(range(lo, hi))
    writer = open_writer(out, fmt, [ids[i] for i in mine], resume)
    done = writer.next
    todo = mine[done:]
    classes = runner.classes
    usable = []
    for i in todo:
        e = entries[i]
        if e.ok:
            usable.append(i)
        else:
            writer.put(i - lo, Row(ids[i], "error", error=unusable_error(e)))
    views = spec.num_views
    bar = tqdm(total=len(todo), unit="video", desc="score", disable=not progress)
    bar.update(len(todo) - len(usable))
    t0, clips_done = time.perf_counter(), 0
    if usable:
        # the loader's views buffer is overwritten by its next batch: views are run or copied first
        loader = VideoLoader([entries[i] for i in usable], spec, mode="test", batch_size=max(2, batch // views),
                             num_workers=workers, device=device, reuse=True)
        pending: deque[int] = deque()  # positions in `usable` whose views are queued, in order
        engine: torch.Tensor | None = None  # one engine batch, filled across videos (allocated once)
        fill, logits, reported = 0, [], 0

        def run(clips: torch.Tensor):
            nonlocal clips_done
            logits.append(runner(clips).float().cpu())
            clips_done += len(clips)
            merged = torch.cat(logits)
            while pending and len(merged) >= views:
                k = pending.popleft()
                probs = merge_views(merged[None, :views])[0].numpy()
                merged = merged[views:]
                i = usable[k]
                writer.put(i - lo, prediction_row(ids[i], probs, classes, top_k))
                bar.update()
            logits.clear()
            if len(merged):
                logits.append(merged)
            elapsed = time.perf_counter() - t0
            bar.set_postfix(videos_s=f"{bar.n / elapsed:.2f}", clips_s=f"{clips_done / elapsed:.1f}")

        def report_failures():
            nonlocal reported
            for failure in loader.failures[reported:]:  # by position in `usable`: names may repeat
                i = usable[failure.index]
                writer.put(i - lo, Row(ids[i], "error", error=decode_error(failure.reason)))
                bar.update()
            reported = len(loader.failures)

        for b in loader.epoch(0):
            report_failures()
            pending.extend(b.ids)
            flat, pos = b.video.flatten(0, 1), 0  # (videos x views, 3, T, S, S)
            while pos < len(flat):
                if fill == 0 and len(flat) - pos >= batch:  # a whole engine batch: run it in place
                    run(flat[pos:pos + batch])
                    pos += batch
                    continue
                if engine is None:
                    engine = torch.empty((batch, *flat.shape[1:]), dtype=flat.dtype, device=flat.device)
                k = min(batch - fill, len(flat) - pos)
                engine[fill:fill + k].copy_(flat[pos:pos + k])
                fill, pos = fill + k, pos + k
                if fill == batch:
                    run(engine)
                    fill = 0
        report_failures()
        if fill:
            run(engine[:fill])
        loader.close()
    for k in writer.missing():  # never a silent gap: a row the loader neither delivered nor failed
        log.error("%s: the loader returned neither its views nor an error", ids[lo + k])
        writer.put(k, Row(ids[lo + k], "error", error="not scored: the loader returned neither views nor an error"))
    bar.close()
    writer.close()
    rows = writer.written
    return ScoreResult(rows, sum(r.status == "ok" for r in rows), sum(r.status != "ok" for r in rows), done,
                       clips_done, time.perf_counter() - t0, getattr(runner, "name", "?"),
                       startup=max(0.0, (writer.first_at or time.perf_counter()) - t0), times=writer.times)


def label_metrics(rows: list[dict], entries: list[VideoEntry], ids: list[str], labels: dict[str, int],
                  classes: list[str]) -> dict:
    """The accuracy report (``evaluate.accuracy_from_ranks``) of the labelled, scored rows, from the
    ranked classes each row holds; videos are matched to labels by full path, never by file name."""
    path_of = {vid: str(Path(e.path).resolve()) for vid, e in zip(ids, entries)}
    index = {c: i for i, c in enumerate(classes)}
    ranks, truth, unlabelled = [], [], []
    for r in rows:
        if r["status"] != "ok":
            continue
        lab = labels.get(path_of.get(r["video"], ""))
        if lab is None or lab < 0:  # -1: a manifest row without a label
            unlabelled.append(r["video"])
            continue
        ranks.append([index[name] for name, _ in r["top_k"]])
        truth.append(lab)
    if not truth:
        raise DataError("no scored video has a label in --labels (paths are matched in full, not by file name)")
    return {**accuracy_from_ranks(np.array(ranks), np.array(truth), classes), "unlabelled": unlabelled}


# -- the whole job -------------------------------------------------------------------------------------
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


def score_videos(source: str | Path, model: str | Path, out: str | Path, *, views: tuple[int, int] | None = None,
                 batch: int | None = None, backend: str = "auto", labels: str | Path | None = None,
                 data_root: str | Path | None = None, top_k: int = 5, resume: bool = False, workers: int | None = None,
                 fmt: str | None = None, pretrained: str | None = None, task: str | None = None,
                 layout: dict | None = None, progress: bool = True, engine: str = "local",
                 ray: RayOptions | None = None) -> ScoreReport | None:
    """Score every video of ``source`` (folder, list file, manifest or one video) with ``model``
    (export folder or weights) into ``out``: one row per input video, in order. Under torchrun each
    rank scores its share and rank 0 merges them; the other ranks return None. ``engine="ray"``
    scores on Ray Data instead (``apt_video.rayscore``; ``ray``: where and how wide). Raises
    ``DataError`` (bad input or output file) or the runner's errors (``BackendUnavailable``, ...).
    ``layout``: ``{"split", "part", "splits"}`` when ``source`` is an official dataset layout; then
    ``labels`` may be the same folder (the split's labels). ``workers``: the local engine's decode
    processes (default 2); Ray's decoders are ``ray.decode_cpus``."""
    from export import describe_model, load_runner

    from .distributed import setup_distributed
    from .rows import OutputLock, choose_format

    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "ray" and workers is not None:
        raise ValueError("--workers sets the local engine's decode processes; under --engine ray the decoding "
                         "actors are --decode-cpus")
    workers = workers or 2
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
        truth = read_labels(labels, data_root, layout if same else None)
    if engine == "ray":
        from .rayscore import ray_missing, score_on_ray

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise DataError("--engine ray is one driver for the whole cluster: run it once, not under torchrun")
        if ray_missing():
            raise DataError(ray_missing())
        card, preferred = describe_model(model)  # the driver runs no engine: the actors do
    else:
        d = setup_distributed(collectives="gloo")  # scoring exchanges only small CPU objects
        runner = load_runner(model, backend, pretrained, task)
        card, preferred = runner.card, runner.preferred_batch
    if truth and max(truth.values()) >= len(card.classes):
        raise DataError(f"{labels}: label {max(truth.values())} is beyond the model's {len(card.classes)} classes")
    spec = scoring_spec(card, views)
    batch = batch or max(spec.num_views, preferred)
    if engine == "ray":
        with OutputLock(out):
            result = score_on_ray(entries, ids, model, spec, card.classes, out, fmt, batch, top_k, resume, backend,
                                  pretrained, task, ray, progress)
    else:
        result = _score_local(source, entries, ids, runner, spec, out, fmt, batch, top_k, resume, workers, layout,
                              d, progress)
        if result is None:
            return None
    return _report(out, fmt, entries, ids, result, spec, card.classes, labels, truth)


def _score_local(source, entries, ids, runner, spec, out, fmt, batch, top_k, resume, workers, layout, d,
                 progress) -> ScoreResult | None:
    """``score`` in this process, or in this torchrun rank (rank 0 merges the ranks' parts; the other
    ranks return None). With ``resume`` the rows already in ``out`` are skipped by every rank."""
    from pipeline.data import Dataset, atomic_write_text, shard_bounds
    from pipeline.probe import default_paths, probe_dataset

    from .rows import CSV_HEADER, OutputLock, Resume

    head, done = "", 0
    if d.world > 1:  # the ranks share what OUT does not hold yet
        previous = Resume.read(out, fmt) if resume else Resume([], 0, 0)
        previous.check(out, ids)
        done = len(previous.videos)
        head = out.read_bytes()[:previous.length].decode("utf-8", "surrogateescape") if done else ""
        entries, ids = entries[done:], ids[done:]
    # each rank probes its own share (no rank waits on another's probing), into its own cache
    tag = f"split{layout['split']}.{layout.get('part', 'test')}" if layout else ""
    _, cache = default_paths(Path(source), beside=False, tag=tag)
    lo, hi = shard_bounds(len(entries), d.rank, d.world)
    if d.world > 1:
        cache = cache.with_name(f"{cache.stem}.rank{d.rank}of{d.world}.json")
    probed, _ = probe_dataset(Dataset(entries[lo:hi], [], str(source)), cache, spec.num_frames, workers,
                              progress=False)
    entries = entries[:lo] + probed + entries[hi:]
    part = out if d.world == 1 else out.with_name(f".{out.name}.rank{d.rank}of{d.world}")
    if part != out and part.exists() and not (resume and _part_fits(part, fmt, ids[lo:hi])):
        part.unlink()  # this rank's share from a killed run: not resumed, or cut for another share
    d.barrier()
    with OutputLock(part):
        result = score(entries, ids, runner, spec, part, fmt, batch, top_k, resume or d.world > 1, workers,
                       (d.rank, d.world), "gpu" if d.device.type == "cuda" else "cpu", progress and d.main)
    if d.world > 1:
        d.barrier()
        totals = d.gather((result.ok, result.failed, result.skipped, result.clips))
        if not d.main:
            return None
        parts = [out.with_name(f".{out.name}.rank{r}of{d.world}") for r in range(d.world)]
        texts = [p.read_bytes().decode("utf-8", "surrogateescape") for p in parts]
        with OutputLock(out):
            atomic_write_text(out, (head or (CSV_HEADER if fmt == "csv" else ""))
                              + "".join(t.removeprefix(CSV_HEADER) if fmt == "csv" else t for t in texts))
        for p in parts:
            p.unlink()
        result.ok, result.failed, result.skipped, result.clips = (sum(t[i] for t in totals) for i in range(4))
        result.skipped += done
    return result


def _part_fits(part: Path, fmt: str, ids: list[str]) -> bool:
    """Whether a rank's part file from a killed run holds the first rows of this rank's share (a
    part cut for another share, after OUT moved on, is stale: it is only a cache of rows)."""
    from .rows import Resume

    try:
        Resume.read(part, fmt).check(part, ids)
    except DataError:
        return False
    return True


def _report(out, fmt, entries, ids, result, spec, classes, labels, truth) -> ScoreReport:
    """The rows written (exactly one per input), and the label metrics when labels were given."""
    from pipeline.data import atomic_write_text

    from .rows import read_rows

    rows = read_rows(out, fmt)
    if len(rows) != len(entries):  # every input row has exactly one output row
        raise RuntimeError(f"{out}: holds {len(rows)} rows for {len(entries)} input videos")
    report = ScoreReport(out, fmt, rows, result, result.backend, spec)
    if truth is not None:
        report.metrics = label_metrics(rows, entries, ids, truth, classes)
        report.metrics_path = out.with_name(out.name + ".metrics.json")
        atomic_write_text(report.metrics_path, json.dumps(report.metrics, indent=1))
    return report
