"""What a scoring job reads: the videos to score and their row identities, the labels to measure
them against, and the label metrics of the rows written."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from apt_video.evaluate import accuracy_from_ranks
from apt_video.models.card import ClipSpec, ModelCard
from apt_video.pipeline.data import DataError, VideoEntry, read_list_file
from apt_video.pipeline.datasets import open_dataset


def scoring_spec(card: ModelCard, views: tuple[int, int] | None = None) -> ClipSpec:
    """The clip geometry recorded at training time, with other test views if asked."""
    return card.clip.with_views(*views) if views else card.clip


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
