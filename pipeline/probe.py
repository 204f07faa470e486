"""Probing a dataset into a manifest (cached by file size and mtime) and transcoding it for DALI."""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from apt_video.models.files import atomic_path

from .data import Dataset, VideoEntry, atomic_write_text, write_manifest
from .datasets import open_dataset
from .source import pool_worker, start_method
from .video import CODECS, decode_frames, probe_video, write_video

log = logging.getLogger(__name__)
CACHE_VERSION = 3  # 2: entries carry the display rotation; 3: and the pixel format


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "apt-video"


def default_paths(source: Path, beside: bool = True, tag: str = "") -> tuple[Path, Path]:
    """``(manifest, cache)`` beside the source (``train.csv`` -> ``train.manifest.csv``; a folder ->
    ``<folder>/manifest.csv``, ``manifest.<tag>.csv`` for one part of a dataset layout), or in
    ``~/.cache/apt-video`` when that place is read-only or ``beside`` is False (scoring leaves its
    input folders untouched)."""
    source = source.resolve()
    if source.is_dir():
        here, stem = source, "manifest" + (f".{tag}" if tag else "")
    else:
        here, stem = source.parent, f"{source.stem}.manifest"
    if not beside or not os.access(here, os.W_OK):
        here = _cache_dir()
        stem = f"{stem}-{hashlib.sha1(str(source).encode()).hexdigest()[:12]}"
    return here / f"{stem}.csv", here / f".{stem}.probe.json"


def _key(path: str) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _probe_one(args) -> VideoEntry:
    path, label, clip, full = args
    return probe_video(path, label, clip, full)


def probe_dataset(ds: Dataset, cache_path: Path | None, clip_frames: int = 16, workers: int = 1,
                  full: bool = True, progress: bool = True, save: bool = True) -> tuple[list[VideoEntry], int]:
    """Probe every entry, reusing cached rows whose file size and mtime are unchanged.
    Returns ``(entries in input order, number probed afresh)``."""
    cache: dict = {}
    if cache_path is not None and cache_path.is_file():
        try:
            data = json.loads(cache_path.read_text(encoding="utf-8"))
            if data.get("version") == CACHE_VERSION and data.get("clip") == clip_frames and data.get("full") == full:
                cache = data["files"]
        except (ValueError, KeyError):
            log.warning("%s: unreadable probe cache, probing afresh", cache_path)
    out: list[VideoEntry | None] = [None] * len(ds.entries)
    todo = []
    for i, e in enumerate(ds.entries):
        hit = cache.get(e.path)
        key = _key(e.path)
        if hit and key is not None and hit["key"] == key:
            out[i] = VideoEntry(**{**hit["entry"], "label": e.label})
        else:
            todo.append(i)
    args = [(ds.entries[i].path, ds.entries[i].label, clip_frames, full) for i in todo]

    bar = tqdm(total=len(todo), desc="probe", unit="video", disable=not progress or not todo)
    if workers > 1 and len(todo) > 1:
        # fork (spawn once CUDA is up here): the workers' parent must be this process for
        # pool_worker's parent-death signal (a forkserver's children are the server's)
        context = multiprocessing.get_context(start_method("cpu"))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=pool_worker,
                                 initargs=(os.getpid(),)) as pool:
            for i, entry in zip(todo, pool.map(_probe_one, args, chunksize=4)):
                out[i] = entry
                bar.update()
    else:
        for i, a in zip(todo, args):
            out[i] = _probe_one(a)
            bar.update()
    bar.close()
    entries = [e for e in out if e is not None]
    if cache_path is not None and save:
        files = {e.path: {"key": _key(e.path), "entry": e.__dict__} for e in entries if _key(e.path)}
        try:
            atomic_write_text(cache_path, json.dumps({"version": CACHE_VERSION, "clip": clip_frames,
                                                      "full": full, "files": files}))
        except OSError as exc:
            log.warning("%s: cannot write the probe cache (%s)", cache_path, exc)
    return entries, len(todo)


def summarize(entries: list[VideoEntry]) -> str:
    by_status = Counter(e.status for e in entries)
    lines = [f"{len(entries)} videos: " + ", ".join(f"{n} {s}" for s, n in by_status.most_common())]
    reasons = Counter(e.reason.split(":")[0] if e.ok else f"{e.status}: {e.reason.split('(')[0].strip()}"
                      for e in entries if e.reason)
    for reason, n in reasons.most_common():
        lines.append(f"  {n:6d}  {reason}")
    codecs = Counter(e.codec for e in entries if e.ok)
    if codecs:
        lines.append("  codecs: " + ", ".join(f"{c} {n}" for c, n in codecs.most_common()))
    return "\n".join(lines)


def load_manifest(source: str | Path, data_root=None, clip_frames: int = 16, workers: int = 1,
                  progress: bool = False, write: bool = True, split: int | None = None, part: str = "train",
                  splits: str | Path | None = None) -> tuple[Dataset, Path]:
    """The probed dataset of ``source`` (probing what the cache lacks) and its manifest path;
    ``split``, ``part``, ``splits``: one part of an official dataset layout (``open_dataset``)."""
    ds = open_dataset(source, data_root, split=split, part=part, splits=splits)
    manifest, cache = default_paths(Path(source), tag=f"split{split}.{part}" if split else "")
    entries, _ = probe_dataset(ds, cache, clip_frames, workers, progress=progress, save=write)
    if write:
        write_manifest(manifest, entries)
    return Dataset(entries, ds.classes, str(source)), manifest


# -- transcoding for DALI ---------------------------------------------------------------------------------
def transcode_dataset(ds: Dataset, out: Path, codec: str, root: Path, gop: int = 8,
                      max_side: int | None = None) -> list[VideoEntry]:
    """Re-encode the usable videos of ``ds`` under ``out`` (same relative layout, constant frame
    rate, a keyframe every ``gop`` frames), with list files and classes.txt. Existing outputs are kept
    (a re-run resumes). Returns the new entries."""
    ext = CODECS[codec][1]
    new = []
    lines = []
    for e in ds.entries:
        if not e.ok:
            continue
        try:
            rel = Path(e.path).resolve().relative_to(root.resolve())
        except ValueError:
            rel = Path(Path(e.path).name)
        target = (out / rel).with_suffix(ext)
        if not target.is_file():
            frames = decode_frames(e.path, range(e.frames), max_side=max_side or 10**6)
            h, w = (frames.shape[1] // 2) * 2, (frames.shape[2] // 2) * 2
            with atomic_path(target, suffix=ext) as tmp:  # the container is chosen by the suffix
                write_video(tmp, np.ascontiguousarray(frames[:, :h, :w]), codec, fps=e.fps or 25, gop=gop)
        new.append(VideoEntry(path=str(target), label=e.label))
        lines.append(f"{target.relative_to(out).as_posix()} {e.label}")
    list_name = Path(ds.source).name if Path(ds.source).is_file() else "all.csv"
    atomic_write_text(out / list_name, "\n".join(lines) + "\n")
    if ds.classes:
        atomic_write_text(out / "classes.txt", "\n".join(ds.classes) + "\n")
    return new
