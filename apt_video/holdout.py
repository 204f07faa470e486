"""Validation and test videos held out of a run's training videos (``val_split``, ``test_split``):
a folder of one's own class folders becomes train, val and test with no list files.

The split is stratified (each class gives its share, at least one video where the share is not 0)
and seeded (``seed``): the same folder and seed give the same split on every host. It is written
beside the run (``holdout/``: one VideoMAE list per part, absolute paths, and ``classes.txt``) once
every input has been checked, and a resumed or repeated run reads it back, so videos added to the
folder later never move a video between the parts.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from apt_video.models.files import atomic_write_text
from apt_video.pipeline.data import DataError, VideoEntry
from apt_video.pipeline.datasets import PARTS, open_dataset

log = logging.getLogger(__name__)
FOLDER = "holdout"


def folder_config(folder: bool, val_split: float | None, test_split: float | None) -> list[str]:
    """The config overrides (``key=value``) that train's ``--data FOLDER`` (``folder``),
    ``--val-split`` and ``--test-split`` stand for: the folder is the training part, its class
    folders the classes, and val and test are held out of it (0.1 each unless given)."""
    if not folder:
        return [f"{key}={value}" for key, value in (("val_split", val_split), ("test_split", test_split))
                if value is not None]
    return ["nb_classes=0", "train_list=.", "val_list=''", "test_list=''",
            f"val_split={0.1 if val_split is None else val_split}",
            f"test_split={0.1 if test_split is None else test_split}"]


def split_entries(entries: list[VideoEntry], classes: list[str], val: float, test: float,
                  seed: int) -> dict[str, list[VideoEntry]]:
    """``{part: entries}``: of each class's videos (sorted by path, then shuffled with ``seed``),
    ``round(n * val)`` go to val and ``round(n * test)`` to test (at least 1 each where the share
    is above 0), the rest to train. ``DataError`` naming a class too small to give them."""
    by_label: dict[int, list[VideoEntry]] = {}
    for e in entries:
        by_label.setdefault(e.label, []).append(e)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[VideoEntry]] = {part: [] for part in PARTS}
    for label in sorted(by_label):
        videos = sorted(by_label[label], key=lambda e: e.path)
        videos = [videos[i] for i in rng.permutation(len(videos))]
        n_val, n_test = (max(1, round(len(videos) * f)) if f > 0 else 0 for f in (val, test))
        name = classes[label] if 0 <= label < len(classes) else str(label)
        if len(videos) - n_val - n_test < 1:
            raise DataError(f"class {name!r} has {len(videos)} usable videos: too few to hold out {n_val} for "
                            f"validation and {n_test} for test and still train; add videos or lower "
                            f"val_split/test_split")
        parts["val"] += videos[:n_val]
        parts["test"] += videos[n_val:n_val + n_test]
        parts["train"] += videos[n_val + n_test:]
    return {part: sorted(v, key=lambda e: e.path) for part, v in parts.items()}


def kept_split(run_dir: Path, entries: list[VideoEntry]) -> dict[str, list[VideoEntry]] | None:
    """The split ``run_dir`` keeps, applied to ``entries`` (the training folder as probed now), or
    None when it keeps none. A kept video that is no longer usable is a ``DataError``; videos added
    since are left out, with a warning."""
    folder = run_dir / FOLDER
    if not all((folder / f"{part}.txt").is_file() for part in PARTS):
        return None
    now = {str(Path(e.path).resolve()): e for e in entries}
    parts, used = {}, set()
    for part in PARTS:
        text = (folder / f"{part}.txt").read_text(encoding="utf-8", errors="surrogateescape")
        listed = open_dataset(folder / f"{part}.txt", "/").entries if text.strip() else []
        missing = [e.path for e in listed if str(Path(e.path).resolve()) not in now]
        if missing:
            raise DataError(f"{missing[0]}: in the split kept in {folder} but no longer a usable video of the "
                            f"training folder ({len(missing)} such); restore it, or start a new run")
        parts[part] = [now[str(Path(e.path).resolve())] for e in listed]
        used |= {str(Path(e.path).resolve()) for e in listed}
    if len(now) > len(used):
        log.warning("%d videos were added to the training folder after %s was split; this run does not use "
                    "them (a new run would)", len(now) - len(used), run_dir)
    return parts


def write_split(run_dir: Path, parts: dict[str, list[VideoEntry]], classes: list[str]) -> None:
    """Keep the split beside the run: ``holdout/{train,val,test}.txt`` and ``classes.txt``."""
    folder = run_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "classes.txt", "".join(f"{c}\n" for c in classes))
    for part in PARTS:
        atomic_write_text(folder / f"{part}.txt",
                          "".join(f"{Path(e.path).resolve()} {e.label}\n" for e in parts[part]))
