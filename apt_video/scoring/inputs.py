"""What a scoring job reads: the videos to score and their row identities, the labels to measure
them against, and the label metrics of the rows written."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from apt_video.evaluate import accuracy_from_ranks
from apt_video.models.card import ClipSpec, ModelCard
from apt_video.pipeline.data import DataError, VideoEntry, class_names, find_classes_file, read_classes, read_list_file
from apt_video.pipeline.datasets import match_name, open_dataset


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


def read_labels(path: str | Path, data_root: str | Path | None = None,
                layout: dict | None = None) -> tuple[dict[str, int], list[str] | None]:
    """``(absolute video path -> label, the labels' class names)`` from a VideoMAE list file, a
    manifest or an official dataset layout (keyed by full path, never by basename: two folders may
    hold the same file name). The names are None when the labels come as bare numbers (a list
    file or manifest without a ``classes.txt``)."""
    if layout or Path(path).suffix in (".csv", ".json") or Path(path).is_dir():
        ds = open_dataset(path, data_root, **(layout or {}))
        entries, names = ds.entries, ds.classes
    else:
        entries = read_list_file(path, data_root)
        cf = find_classes_file(Path(path).parent) or (find_classes_file(Path(data_root)) if data_root else None)
        names = read_classes(cf) if cf else None
    if names == class_names(len(names or [])):  # made up from the numbers: nothing to compare
        names = None
    return {str(Path(e.path).resolve()): e.label for e in entries}, names


def to_model_labels(truth: dict[str, int], names: list[str] | None, classes: list[str], where: str) -> dict[str, int]:
    """``truth`` numbered as the model numbers its ``classes``: the labels' class names are
    matched to the model's by name (without regard to case only where that is unambiguous), so a
    split whose classes come in another order is measured right. ``DataError`` names the first
    class the model lacks; bare-number labels must lie within the model's classes."""
    if names is None:
        if truth and max(truth.values()) >= len(classes):
            raise DataError(f"{where}: label {max(truth.values())} is beyond the model's {len(classes)} classes")
        return truth
    if names == classes:
        return truth
    index = {}
    for i, name in enumerate(names):
        found = match_name(name, classes)
        if found is None or (found != name and sum(n.casefold() == name.casefold() for n in names) > 1):
            raise DataError(f"{where}: class {name!r} of the labels is not a class of the model (its classes: "
                            f"{', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); score with labels "
                            f"of the classes the model was trained on")
        index[i] = classes.index(found)
    return {path: index[label] if label >= 0 else label for path, label in truth.items()}


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
