"""Datasets as people download them: UCF101, HMDB51 and Kinetics in their official layouts.

- **UCF101**: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and ``ucfTrainTestlist/`` with
  ``classInd.txt`` (``1 ApplyEyeMakeup``, 1-based), ``trainlist0{1,2,3}.txt`` (``Class/file.avi 1``)
  and ``testlist0{1,2,3}.txt`` (``Class/file.avi``; the label comes from the folder and classInd).
  Class names are matched without regard to case (the official lists write ``HandStandPushups``
  for the folder ``HandstandPushups``).
- **HMDB51**: ``hmdb51_org/<class>/<video>.avi`` and ``testTrainMulti_7030_splits/`` with
  ``<class>_test_split{1,2,3}.txt`` (``<video>.avi <flag>``: 1 train, 2 test, 0 unused). Classes are
  the split files' class names in sorted order (the class folders' names), as MMAction2's and
  VideoMAE's lists number them; other folders beside the classes change nothing.
- **Kinetics-400/600/700**: annotation CSVs ``train.csv``, ``validate.csv``, ``test.csv`` with
  columns ``label,youtube_id,time_start,time_end,split``; videos named
  ``<youtube_id>_<start:06d>_<end:06d>.<ext>``, flat or under class (and part) folders. Classes
  are the train CSV's labels in sorted order. A video that was never downloaded (normal for
  Kinetics) becomes an entry whose file is missing: probing reports it, training lists it in
  ``skipped.csv``, nothing stops.

The parts are ``train``, ``val`` and ``test``; as VideoMAE's lists do, UCF101's and HMDB51's ``val``
is the split's test list (they have no other), Kinetics' ``val`` is ``validate.csv``. SSv2 needs no
reader here: its split JSON files are read as list files are (``pipeline.data``).

``open_dataset`` opens any source (list file, manifest, folder, one video, SSv2 JSON, or a part of
one of these layouts); ``RunData`` says where a run's train, val and test parts come from.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .data import (
    VIDEO_EXTENSIONS,
    DataError,
    Dataset,
    VideoEntry,
    class_names,
    find_classes_file,
    is_manifest,
    read_classes,
    read_list_file,
    read_manifest,
    read_ssv2,
    read_text_file,
    scan_folder,
    walk_videos,
)

LAYOUTS = ("ucf101", "hmdb51", "kinetics")
PARTS = ("train", "val", "test")
HELD_OUT = PARTS[1:]  # the parts a run is measured on, never trained on
SPLIT_FOLDERS = ("ucfTrainTestlist", "testTrainMulti_7030_splits", "annotations", "splits")
KINETICS_FILES = {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
ASCII_INT = re.compile(r"[0-9]+")  # str.isdigit() also takes '¹' and other digits int() refuses


def _kind(folder: Path) -> set[str]:
    """Which datasets' split files ``folder`` holds."""
    if not folder.is_dir():
        return set()
    kinds = set()
    if (folder / "classInd.txt").is_file():
        kinds.add("ucf101")
    if any(folder.glob("*_test_split1.txt")):
        kinds.add("hmdb51")
    train = folder / "train.csv"
    if train.is_file():
        with open(train, encoding="utf-8-sig", errors="replace") as f:
            if "youtube_id" in _header(f.readline()):  # its columns checked when read
                kinds.add("kinetics")
    return kinds


def _header(line: str) -> list[str]:
    """The column names of a CSV header line, quoted or not, spaces around them dropped."""
    return [c.strip().strip('"').strip() for c in next(csv.reader([line], skipinitialspace=True), [])]


def find_splits(root: str | Path, splits: str | Path | None = None) -> tuple[str, Path]:
    """``(layout, folder of the split files)`` of the dataset at ``root``: ``splits`` if given,
    else the first of the usual split folders inside or beside ``root`` (or ``root`` itself)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder")
    if splits is not None:
        candidates = [Path(splits)]
        if not candidates[0].is_dir():
            raise DataError(f"--splits {splits}: no such folder")
    else:
        candidates = [base / name for base in (root, root.parent) for name in SPLIT_FOLDERS] + [root, root.parent]
    for folder in candidates:
        kinds = _kind(folder)
        if len(kinds) > 1:
            raise DataError(f"{folder}: holds the split files of {' and '.join(sorted(kinds))}; keep each "
                            f"dataset's in its own folder and pass it with --splits")
        if kinds:
            return kinds.pop(), folder
    looked = candidates[0] if splits is not None else f"{root} and beside it ({', '.join(SPLIT_FOLDERS)})"
    raise DataError(f"{looked}: no UCF101 (classInd.txt), HMDB51 (*_test_split1.txt) or Kinetics (train.csv) "
                    f"split files found; pass their folder with --splits")


def open_layout(root: str | Path, split: int = 1, part: str = "train", splits: str | Path | None = None) -> Dataset:
    """The entries of ``part`` (train, val, test) of split ``split`` of the dataset at ``root``, with
    its class names. Videos the split names but the folder lacks are entries whose file is missing."""
    if part not in PARTS:
        raise DataError(f"part {part!r}: choose one of {', '.join(PARTS)}")
    layout, folder = find_splits(root, splits)
    read = {"ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics}[layout]
    return read(Path(os.path.abspath(root)), folder, split, part)


def has_part(root: str | Path, split: int, part: str, splits: str | Path | None = None) -> bool:
    """Whether the layout has ``part`` (Kinetics' test annotations are not always there)."""
    layout, folder = find_splits(root, splits)
    return layout != "kinetics" or (folder / KINETICS_FILES[part]).is_file()


@dataclass(frozen=True)
class RunData:
    """Where a run's data comes from: split ``split`` of the official layout at ``root`` (its split
    files in ``splits``, else found there), or one list file per part (``lists``: part -> file,
    relative to ``root``; a part missing or ``""`` has none)."""

    root: Path
    lists: dict = field(default_factory=dict)
    split: int | None = None
    splits: str | None = None

    def source(self, part: str) -> tuple[Path, dict]:
        """``(source, open_dataset keywords)`` of ``part`` (train, val, test)."""
        if self.split:
            return Path(self.root), {"split": self.split, "part": part, "splits": self.splits or None}
        return Path(self.root) / (self.lists.get(part) or ""), {}

    def has(self, part: str) -> bool:
        """Whether there is ``part``: the layout's (``has_part``), or a list file named for it that exists."""
        if self.split:
            return has_part(self.root, self.split, part, self.splits or None)
        return bool(self.lists.get(part)) and self.source(part)[0].exists()


def _ucf101(root: Path, folder: Path, split: int, part: str) -> Dataset:
    classes = []
    ind = folder / "classInd.txt"
    for n, line in enumerate(read_text_file(ind, "class list").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not ASCII_INT.fullmatch(fields[0]) or int(fields[0]) != len(classes) + 1:
            raise DataError(f"{ind}:{n}: expected '<index> <Class>' numbered from 1, got {line.strip()!r}")
        if fields[1] in classes:
            raise DataError(f"{ind}:{n}: class {fields[1]!r} is listed twice")
        classes.append(fields[1])
    name = f"{'train' if part == 'train' else 'test'}list0{split}.txt"
    listed = folder / name
    if not listed.is_file():
        have = sorted(p.name[-5] for p in folder.glob("trainlist0*.txt"))
        raise DataError(f"{listed}: no such split file; UCF101 has splits {', '.join(have) or 'none here'} (--split)")
    folders = [d.name for d in root.iterdir() if d.is_dir()]
    entries = []
    for n, line in enumerate(read_text_file(listed, "split file").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2 or "/" not in fields[0] or (len(fields) == 2 and not ASCII_INT.fullmatch(fields[1])):
            raise DataError(f"{listed}:{n}: expected '<Class>/<video>.avi' and, in train lists, its 1-based label; "
                            f"got {line.strip()!r}")
        rel = fields[0]
        cls = rel.split("/")[0]
        found = match_name(cls, classes)
        if found is None:
            raise DataError(f"{listed}:{n}: class {cls!r} is not in {ind}"
                            + (" (it matches several classes there when case is ignored)"
                               if sum(c.lower() == cls.lower() for c in classes) > 1 else ""))
        label = classes.index(found)
        if len(fields) == 2 and int(fields[1]) - 1 != label:
            raise DataError(f"{listed}:{n}: label {fields[1]} does not match class {cls!r} "
                            f"({label + 1} in {ind.name})")
        path = root / rel
        if not path.exists() and (real := match_name(cls, folders)):  # the lists' case is not always the folders'
            path = root / real / rel.split("/", 1)[1]
        entries.append(VideoEntry(path=str(path), label=label))
    return Dataset(entries, classes, str(listed))


def match_name(name: str, names: list[str]) -> str | None:
    """The entry of ``names`` that is ``name``, else the one entry equal to it without regard to
    case (UCF101's lists write ``HandStandPushups`` for ``HandstandPushups``); None when there is
    none, or when several differ from it only in case (then case decides nothing)."""
    if name in names:
        return name
    folded = [n for n in names if n.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _hmdb51(root: Path, folder: Path, split: int, part: str) -> Dataset:
    suffix = f"_test_split{split}.txt"
    files = sorted(folder.glob(f"*{suffix}"))
    if not files:
        have = sorted({m.group(1) for p in folder.glob("*_test_split*.txt")
                       if (m := re.search(r"_test_split(\d+)\.txt$", p.name))})
        raise DataError(f"{folder}: no *{suffix}; HMDB51 has splits {', '.join(have) or 'none here'} (--split)")
    classes = [f.name[: -len(suffix)] for f in files]  # one file per class, sorted: the classes' numbering
    if "" in classes:
        raise DataError(f"{folder / suffix}: a split file without a class name; remove it, or name it "
                        f"<class>{suffix}")
    every = {m.group(1) for p in folder.glob("*_test_split*.txt")
             if (m := re.fullmatch(r"(.+)_test_split\d+\.txt", p.name))}
    if missing := sorted(every - set(classes)):
        raise DataError(f"{folder}: split {split} has no {missing[0]}{suffix} (other splits have class "
                        f"{missing[0]!r}); every split lists every class: restore the split files")
    flag = "1" if part == "train" else "2"
    entries = []
    for label, (cls, f) in enumerate(zip(classes, files)):
        if not (root / cls).is_dir():
            raise DataError(f"{f}: class {cls!r} has no folder in {root}; the split files and the videos are of "
                            f"different datasets or versions")
        for n, line in enumerate(read_text_file(f, "split file").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise DataError(f"{f}:{n}: expected '<video>.avi <0|1|2>', got {line.strip()!r}")
            if fields[1] == flag:
                entries.append(VideoEntry(path=str(root / cls / fields[0]), label=label))
    return Dataset(entries, classes, str(folder))


def _kinetics(root: Path, folder: Path, split: int, part: str) -> Dataset:
    if split != 1:
        raise DataError(f"--split {split}: Kinetics has one split (train.csv, validate.csv, test.csv); use --split 1")
    train = folder / KINETICS_FILES["train"]
    classes = sorted({label for _, _, label in _kinetics_rows(train, labelled=True)})
    index = {c: i for i, c in enumerate(classes)}
    found = {p.stem: p for p in walk_videos(root)[0]}
    entries = []
    src = folder / KINETICS_FILES[part]
    for n, stem, label in _kinetics_rows(src, labelled=False):
        if label and label not in index:
            raise DataError(f"{src}:{n}: label {label!r} is not a class of {train}")
        path = found.get(stem) or root / label / f"{stem}.mp4"  # not downloaded: reported when probed
        entries.append(VideoEntry(path=str(path), label=index[label] if label else -1))
    return Dataset(entries, classes, str(src))


def _kinetics_rows(path: Path, labelled: bool) -> list[tuple[int, str, str]]:
    """``(line, video stem, label)`` of each row of a Kinetics annotation CSV; ``labelled``: the
    label column must be there and filled (train.csv)."""
    if not path.is_file():
        raise DataError(f"{path}: no such Kinetics annotation file (train.csv, validate.csv, test.csv)")
    lines = read_text_file(path, "annotation file").splitlines()
    reader = csv.DictReader(lines[1:], fieldnames=_header(lines[0]) if lines else None)
    need = KINETICS_COLUMNS if labelled else KINETICS_COLUMNS[1:]
    missing = [c for c in need if c not in (reader.fieldnames or ())]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)}; expected the header "
                        f"{','.join(KINETICS_COLUMNS)},split")
    rows = []
    for row in reader:
        n = reader.line_num + 1
        try:
            start, end = float(row["time_start"]), float(row["time_end"])
            if not (0 <= start <= end < 10**6):  # also NaN and infinity
                raise ValueError
            stem = f"{row['youtube_id'].strip()}_{int(start):06d}_{int(end):06d}"
        except (TypeError, ValueError, AttributeError):
            raise DataError(f"{path}:{n}: expected a youtube_id and whole-second time_start, time_end; got "
                            f"{','.join(v for v in row.values() if isinstance(v, str))!r}") from None
        label = (row.get("label") or "").strip()
        if labelled and not label:
            raise DataError(f"{path}:{n}: no label; every row of the training annotations names its class")
        rows.append((n, stem, label))
    return rows


# -- any source ---------------------------------------------------------------------------------------
def open_dataset(source: str | Path, data_root: str | Path | None = None, classes: list[str] | None = None,
                 split: int | None = None, part: str = "train", splits: str | Path | None = None) -> Dataset:
    """A dataset from a list file, a manifest, a class-folder tree, a plain folder of videos, one
    video, or (``split`` given) part ``part`` of split ``split`` of an official dataset layout at
    ``source`` (``pipeline.datasets``: UCF101, HMDB51, Kinetics; ``splits``: their split files).

    Class names come from ``classes``, else a ``classes.txt`` beside the list (or its parents), else
    the sub-folder names; failing all of these, ``class_<i>``.
    """
    if split:
        return open_layout(source, split, part, splits)
    source = Path(source)
    if not source.exists() and not source.is_symlink():
        raise DataError(f"{source}: no such file or folder")
    if source.suffix.lower() in VIDEO_EXTENSIONS and not source.is_dir():  # one video
        return Dataset([VideoEntry(path=os.path.abspath(source))], classes or [], str(source))
    if source.suffix == ".json":  # SSv2: a split file, its labels file beside it, videos in data_root
        labels = [p for p in sorted(source.parent.glob("*labels*.json")) if p != source]
        if not labels:
            raise DataError(f"{source}: SSv2 split file without a labels file (*labels*.json) beside it")
        return read_ssv2(labels[0], source, data_root or source.parent)
    if source.is_dir():
        entries, names = scan_folder(source, labelled=_has_class_folders(source))
        if not entries:
            raise DataError(f"{source}: no video files found (looked for {', '.join(VIDEO_EXTENSIONS)})")
        if not names and (cf := find_classes_file(source)):
            names = read_classes(cf)
        return Dataset(entries, classes or names, str(source))
    entries = read_manifest(source) if is_manifest(source) else read_list_file(source, data_root)
    if classes is None:
        cf = find_classes_file(source.parent)
        if cf is None and data_root:
            cf = find_classes_file(Path(data_root))
        classes = read_classes(cf) if cf else []
    top = max((e.label for e in entries), default=-1)
    if classes and top >= len(classes):
        raise DataError(f"{source}: label {top} is out of range for {len(classes)} classes")
    if not classes and top >= 0:
        classes = class_names(top + 1)
    return Dataset(entries, classes, str(source))


def _has_class_folders(folder: Path) -> bool:
    subdirs = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    return bool(subdirs) and not loose
