"""The local engine: a ``ScoreJob`` scored in this process, or shared among torchrun ranks.

Each usable video is decoded once by the DALI test pipeline into its segments x crops views; the
views of consecutive videos are packed into full engine batches; each view's softmax is averaged
per video (VideoMAE merge). Rows are appended and flushed as soon as they are complete, so a
killed run loses nothing it wrote and ``--resume`` carries on after the last complete row.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from pathlib import Path

import torch
from tqdm import tqdm

from apt_video.distributed import Dist
from apt_video.evaluate import merge_views
from apt_video.pipeline.data import DataError, Dataset, atomic_write_text, shard_bounds
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import default_paths, probe_dataset

from .job import ScoreJob, ScoreResult, decode_error, finish, prediction_row, unusable_error
from .rows import CSV_HEADER, OutputLock, Resume, Row, open_writer, resume_point

log = logging.getLogger(__name__)


def score(job: ScoreJob, runner, shard: tuple[int, int] = (0, 1), device: str = "cpu") -> ScoreResult:
    """Score this shard's share of ``job.entries`` (already probed) into ``job.out``: one row per
    entry of the shard, in order, ok or error. With ``job.resume`` the rows already there (the first
    ones of the shard, checked against the ids) are kept and scoring goes on after them."""
    rank, world = shard
    lo, hi = shard_bounds(len(job.entries), rank, world)
    mine = list(range(lo, hi))
    writer = open_writer(job.out, job.fmt, [job.ids[i] for i in mine], job.resume)
    done = writer.next
    todo = mine[done:]
    usable = []
    for i in todo:
        e = job.entries[i]
        if e.ok:
            usable.append(i)
        else:
            writer.put(i - lo, Row(job.ids[i], "error", error=unusable_error(e)))
    bar = tqdm(total=len(todo), unit="video", desc="score", disable=not job.progress)
    bar.update(len(todo) - len(usable))
    t0 = time.perf_counter()
    clips = _score_views(job, runner, [job.entries[i] for i in usable], device, bar, t0,
                         lambda k, row: writer.put(usable[k] - lo, row), lambda k: job.ids[usable[k]])
    bar.close()
    return finish(writer, done, clips, t0, getattr(runner, "name", "?"),
                  "not scored: the loader returned neither views nor an error")


def _score_views(job: ScoreJob, runner, entries, device, bar, t0, put, video_id) -> int:
    """Decode ``entries``' test views, run them in full engine batches, and ``put(k, row)`` each
    entry's row (its prediction, or why it was not decoded). Returns the clips run."""
    if not entries:
        return 0
    views, batch = job.spec.num_views, job.batch
    # the loader's views buffer is overwritten by its next batch: views are run or copied first
    loader = VideoLoader(entries, job.spec, mode="test", batch_size=max(2, batch // views), num_workers=job.workers,
                         device=device, reuse=True)
    pending: deque[int] = deque()  # entries whose views are queued, in order
    engine: torch.Tensor | None = None  # one engine batch, filled across videos (allocated once)
    fill, logits, reported, clips = 0, [], 0, 0

    def run(chunk: torch.Tensor):
        nonlocal clips
        logits.append(runner(chunk).float().cpu())
        clips += len(chunk)
        merged = torch.cat(logits)
        while pending and len(merged) >= views:
            k = pending.popleft()
            put(k, prediction_row(video_id(k), merge_views(merged[None, :views])[0].numpy(), job.classes, job.top_k))
            merged = merged[views:]
            bar.update()
        logits.clear()
        if len(merged):
            logits.append(merged)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(videos_s=f"{bar.n / elapsed:.2f}", clips_s=f"{clips / elapsed:.1f}")

    def report_failures():
        nonlocal reported
        for failure in loader.failures[reported:]:  # by position in `entries`: names may repeat
            put(failure.index, Row(video_id(failure.index), "error", error=decode_error(failure.reason)))
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
    return clips


def score_local(job: ScoreJob, runner, source: Path, layout: dict | None, d: Dist) -> ScoreResult | None:
    """``job`` in this process, or in this torchrun rank: each rank probes and scores its share
    into a part file, rank 0 merges the parts into ``job.out`` (the other ranks return None). With
    ``job.resume`` the rows already in ``job.out`` are skipped by every rank."""
    entries, ids, head, done = job.entries, job.ids, "", 0
    if d.world > 1:  # the ranks share what OUT does not hold yet
        previous = resume_point(job.out, job.fmt, ids) if job.resume else Resume([], 0, 0)
        done = len(previous.videos)
        head = job.out.read_bytes()[:previous.length].decode("utf-8", "surrogateescape") if done else ""
        entries, ids = entries[done:], ids[done:]
    # each rank probes its own share (no rank waits on another's probing), into its own cache
    tag = f"split{layout['split']}.{layout.get('part', 'test')}" if layout else ""
    _, cache = default_paths(Path(source), beside=False, tag=tag)
    lo, hi = shard_bounds(len(entries), d.rank, d.world)
    if d.world > 1:
        cache = cache.with_name(f"{cache.stem}.rank{d.rank}of{d.world}.json")
    probed, _ = probe_dataset(Dataset(entries[lo:hi], [], str(source)), cache, job.spec.num_frames, job.workers,
                              progress=False)
    entries = entries[:lo] + probed + entries[hi:]
    out = job.out
    part = out if d.world == 1 else out.with_name(f".{out.name}.rank{d.rank}of{d.world}")
    if part != out and part.exists() and not (job.resume and _part_fits(part, job.fmt, ids[lo:hi])):
        part.unlink()  # this rank's share from a killed run: not resumed, or cut for another share
    d.barrier()
    mine = dataclasses.replace(job, entries=entries, ids=ids, out=part, resume=job.resume or d.world > 1,
                               progress=job.progress and d.main)
    with OutputLock(part):
        result = score(mine, runner, (d.rank, d.world), "gpu" if d.device.type == "cuda" else "cpu")
    if d.world > 1:
        d.barrier()
        totals = d.gather((result.ok, result.failed, result.skipped, result.clips))
        if not d.main:
            return None
        parts = [out.with_name(f".{out.name}.rank{r}of{d.world}") for r in range(d.world)]
        texts = [p.read_bytes().decode("utf-8", "surrogateescape") for p in parts]
        with OutputLock(out):
            atomic_write_text(out, (head or (CSV_HEADER if job.fmt == "csv" else ""))
                              + "".join(t.removeprefix(CSV_HEADER) if job.fmt == "csv" else t for t in texts))
        for p in parts:
            p.unlink()
        result.ok, result.failed, result.skipped, result.clips = (sum(t[i] for t in totals) for i in range(4))
        result.skipped += done
    return result


def _part_fits(part: Path, fmt: str, ids: list[str]) -> bool:
    """Whether a rank's part file from a killed run holds the first rows of this rank's share (a
    part cut for another share, after OUT moved on, is stale: it is only a cache of rows)."""
    try:
        resume_point(part, fmt, ids)
    except DataError:
        return False
    return True
