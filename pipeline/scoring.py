"""Batch scoring: every video of a folder, list or manifest gets one output row, in input order.

Each usable video is decoded once by the DALI test pipeline into its segments x crops views; the
views of consecutive videos are packed into full engine batches; each view's softmax is averaged
per video (VideoMAE merge). Rows are appended and flushed as soon as they are complete, so a
killed run loses nothing it wrote and ``--resume`` carries on after the last complete row.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import DataError, VideoEntry, open_dataset, read_list_file
from .sampling import ClipSpec

log = logging.getLogger("apt_video")
COLUMNS = ("video", "status", "pred", "prob", "top_k", "error")


def clip_spec_from_meta(meta: dict, views: tuple[int, int] | None = None) -> ClipSpec:
    """The clip geometry recorded at training time (checkpoint metadata or model.json)."""
    segments, crops = views or (meta["test_num_segment"], meta["test_num_crop"])
    return ClipSpec(num_frames=meta["num_frames"], sampling_rate=meta["sampling_rate"],
                    input_size=meta["input_size"], sampler=meta.get("sampler", "dense"),
                    test_num_segment=segments, test_num_crop=crops, mean=tuple(meta["mean"]), std=tuple(meta["std"]))


# -- inputs -------------------------------------------------------------------------------------------
def scoring_inputs(source: str | Path, data_root: str | Path | None = None) -> tuple[list[VideoEntry], list[str]]:
    """Entries in input order and their identities (paths relative to INPUT, or as listed)."""
    source = Path(source)
    ds = open_dataset(source, data_root)
    if source.is_dir():
        base = source.resolve()
        ids = [os.path.relpath(e.path, base) for e in ds.entries]
    else:
        base = Path(data_root).resolve() if data_root else source.resolve().parent
        ids = [os.path.relpath(e.path, base) if Path(e.path).is_relative_to(base) else e.path for e in ds.entries]
    return ds.entries, ids


def read_labels(path: str | Path, data_root: str | Path | None = None) -> dict[str, int]:
    """Absolute video path -> label, from a VideoMAE list file or a manifest (keyed by full path,
    never by basename: two folders may hold the same file name)."""
    entries = open_dataset(path, data_root).entries if Path(path).suffix == ".csv" else read_list_file(path, data_root)
    return {str(Path(e.path).resolve()): e.label for e in entries}


# -- output rows ---------------------------------------------------------------------------------------
@dataclass
class Row:
    video: str
    status: str
    pred: str = ""
    prob: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""

    def csv_line(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [self.video, self.status, self.pred, "" if self.prob is None else f"{self.prob:.6f}",
             ";".join(f"{lab}:{p:.6f}" for lab, p in self.top_k), self.error])
        return buf.getvalue()

    def json_line(self) -> str:
        return json.dumps({"video": self.video, "status": self.status, "pred": self.pred or None,
                           "prob": None if self.prob is None else round(self.prob, 6),
                           "top_k": [{"label": lab, "prob": round(p, 6)} for lab, p in self.top_k],
                           "error": self.error or None}) + "\n"


def prediction_row(video: str, probs: np.ndarray, classes: list[str], k: int) -> Row:
    order = np.argsort(-probs)[:k]
    names = [classes[i] if i < len(classes) else str(i) for i in order]
    return Row(video, "ok", names[0], float(probs[order[0]]), [(n, float(probs[i])) for n, i in zip(names, order)])


def done_videos(out: Path, fmt: str) -> set[str]:
    """Videos already written to ``out``; a torn last line (a kill mid-write) is cut off first."""
    if not out.is_file():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(out, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    text = data.decode("utf-8")
    if fmt == "jsonl":
        return {json.loads(line)["video"] for line in text.splitlines() if line.strip()}
    rows = list(csv.reader(io.StringIO(text)))
    return {r[0] for r in rows[1:] if r}


class RowWriter:
    """Appends rows in input order as soon as every earlier row is known; flushes each batch."""

    def __init__(self, path: Path, fmt: str, ids: list[str], skip: set[str]):
        self.path, self.fmt, self.ids = path, fmt, ids
        self.skip = skip
        new = not path.is_file() or path.stat().st_size == 0
        self.file = open(path, "a", encoding="utf-8", newline="")
        if new and fmt == "csv":
            self.file.write(",".join(COLUMNS) + "\n")
        self.ready: dict[int, Row] = {}
        self.next = 0
        self.written: list[Row] = []
        self._advance()

    def put(self, index: int, row: Row) -> None:
        self.ready[index] = row
        self._advance()

    def _advance(self) -> None:
        wrote = False
        while self.next < len(self.ids):
            if self.ids[self.next] in self.skip:
                self.next += 1
                continue
            row = self.ready.pop(self.next, None)
            if row is None:
                break
            self.file.write(row.csv_line() if self.fmt == "csv" else row.json_line())
            self.written.append(row)
            self.next += 1
            wrote = True
        if wrote:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


# -- the scoring loop ---------------------------------------------------------------------------------
@dataclass
class ScoreResult:
    rows: list[Row]
    ok: int
    failed: int
    skipped: int
    clips: int
    seconds: float
    backend: str


def score(entries: list[VideoEntry], ids: list[str], runner, spec: ClipSpec, out: Path, fmt: str = "csv",
          batch: int = 30, top_k: int = 5, resume: bool = False, workers: int = 2, shard: tuple[int, int] = (0, 1),
          device: str = "cpu", progress: bool = True) -> ScoreResult:
    """Score this shard's share of ``entries`` (already probed) into ``out``."""
    from tqdm import tqdm

    from .loader import VideoLoader

    rank, world = shard
    per = -(-len(entries) // world)
    lo, hi = rank * per, min(len(entries), (rank + 1) * per)
    mine = list(range(lo, hi))
    skip = done_videos(out, fmt) if resume else set()
    writer = RowWriter(out, fmt, [ids[i] for i in mine], skip)
    todo = [i for i in mine if ids[i] not in skip]
    classes = runner.classes
    usable = []
    for i in todo:
        e = entries[i]
        if e.ok:
            usable.append(i)
        else:
            writer.put(i - lo, Row(ids[i], "error", error=f"{e.status}: {e.reason}"))
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
            logits.append(runner(clips).float())
            clips_done += len(clips)
            merged = torch.cat(logits)
            while pending and len(merged) >= views:
                k = pending.popleft()
                probs = torch.softmax(merged[:views], dim=-1).mean(0).numpy()
                merged = merged[views:]
                i = usable[k]
                writer.put(i - lo, prediction_row(ids[i], probs, classes, top_k))
                bar.update()
            logits.clear()
            if len(merged):
                logits.append(merged)
            elapsed = time.perf_counter() - t0
            bar.set_postfix(videos_s=f"{bar.n / elapsed:.2f}", clips_s=f"{clips_done / elapsed:.1f}")

        by_path = {entries[i].path: k for k, i in enumerate(usable)}  # built once, not per batch

        def report_failures():
            nonlocal reported
            for path, reason in loader.failures[reported:]:
                k = by_path[path]
                writer.put(usable[k] - lo, Row(ids[usable[k]], "error", error=f"decode: {reason}"))
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
    bar.close()
    writer.close()
    rows = writer.written
    return ScoreResult(rows, sum(r.status == "ok" for r in rows), sum(r.status != "ok" for r in rows), len(skip),
                       clips_done, time.perf_counter() - t0, getattr(runner, "name", "?"))


def read_rows(out: Path, fmt: str) -> list[dict]:
    """The rows of a finished output file, as dicts with ``top_k`` as a list of (label, prob)."""
    text = out.read_text(encoding="utf-8")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        for r in rows:
            r["top_k"] = [(t["label"], t["prob"]) for t in r["top_k"]]
        return rows
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        r["top_k"] = [(t.rsplit(":", 1)[0], float(t.rsplit(":", 1)[1])) for t in r["top_k"].split(";") if t]
    return rows


def label_metrics(rows: list[dict], entries: list[VideoEntry], ids: list[str], labels: dict[str, int],
                  classes: list[str]) -> dict:
    """Top-1 / top-5 (percent of labelled, scored videos), per-class top-1 and the confusion matrix,
    from the merged predictions in the output rows. Videos are matched to labels by full path."""
    path_of = {vid: str(Path(e.path).resolve()) for vid, e in zip(ids, entries)}
    index = {c: i for i, c in enumerate(classes)}
    c = len(classes)
    confusion = np.zeros((c, c), np.int64)
    top1 = top5 = n = 0
    unlabelled = []
    for r in rows:
        if r["status"] != "ok":
            continue
        lab = labels.get(path_of.get(r["video"], ""))
        if lab is None:
            unlabelled.append(r["video"])
            continue
        names = [t[0] for t in r["top_k"]]
        n += 1
        top1 += names[0] == classes[lab]
        top5 += classes[lab] in names[:5]
        confusion[lab, index[names[0]]] += 1
    if n == 0:
        raise DataError("no scored video has a label in --labels (paths are matched in full, not by file name)")
    per_class = {name: {"videos": int(confusion[k].sum()),
                        "top1": 100.0 * confusion[k, k] / confusion[k].sum() if confusion[k].sum() else None}
                 for k, name in enumerate(classes)}
    return {"videos": n, "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "per_class": per_class,
            "confusion_matrix": confusion.tolist(), "classes": classes, "unlabelled": unlabelled}
