"""Datasets and manifests: VideoMAE list files, class folders, SSv2 JSON, and the probed manifest.

A manifest is a CSV with one row per video: ``path,label,frames,fps,codec,width,height,duration,
status,reason``. ``status`` is ``ok`` for a usable video; any other value names why the video is
not used, and ``reason`` says it in words. Paths in a manifest are absolute.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from apt_video.models.card import class_names  # noqa: F401  (the data layer's users take it from here)
from apt_video.models.files import TEXT, atomic_write_text  # noqa: F401  (re-exported for the data layer's users)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
                    ".ogv", ".3gp", ".ts")
MANIFEST_COLUMNS = ("path", "label", "frames", "fps", "codec", "width", "height", "duration", "status",
                    "reason", "rotation", "pix_fmt")
OPTIONAL_COLUMNS = ("rotation", "pix_fmt")  # manifests written before these columns existed still read


class DataError(ValueError):
    """Bad dataset input: the message names the file, line or key and what to do."""


@dataclass
class VideoEntry:
    """One video of a dataset, as probed. ``label`` is -1 when unknown (scoring)."""

    path: str
    label: int = -1
    frames: int = 0
    fps: float = 0.0
    codec: str = ""
    width: int = 0
    height: int = 0
    duration: float = 0.0
    status: str = "unprobed"
    reason: str = ""
    rotation: int = 0  # degrees counter-clockwise to turn the decoded frames upright (display matrix)
    pix_fmt: str = ""  # FFmpeg's pixel format of the decoded frames (chroma and bit depth: pipeline.nvdec)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def damaged(self) -> bool:
        """Usable, but decoding stops early: only the frames counted are read, through PyAV."""
        return self.reason.startswith("damaged")

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row["fps"] = f"{self.fps:.6g}"
        row["duration"] = f"{self.duration:.6g}"
        return row

    @classmethod
    def from_row(cls, row: dict, where: str) -> VideoEntry:
        try:
            return cls(path=row["path"], label=int(row["label"]), frames=int(row["frames"]),
                       fps=float(row["fps"]), codec=row["codec"], width=int(row["width"]),
                       height=int(row["height"]), duration=float(row["duration"]),
                       status=row["status"], reason=row.get("reason") or "", rotation=int(row.get("rotation") or 0),
                       pix_fmt=row.get("pix_fmt") or "")
        except (KeyError, ValueError) as exc:
            raise DataError(f"{where}: not a manifest row ({exc}); expected columns "
                            f"{','.join(MANIFEST_COLUMNS)}") from exc


@dataclass
class Dataset:
    """Videos with labels and the class names they index."""

    entries: list[VideoEntry]
    classes: list[str]
    source: str = ""

    def usable(self) -> list[VideoEntry]:
        return [e for e in self.entries if e.ok]


def shard_bounds(n: int, shard: int, num_shards: int) -> tuple[int, int]:
    """``[lo, hi)`` of shard ``shard`` of ``num_shards`` contiguous shards of ``n`` items (the last
    shards may be short or empty)."""
    per = -(-n // num_shards)
    return min(n, shard * per), min(n, (shard + 1) * per)


def write_manifest(path: str | Path, entries: list[VideoEntry]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS)
    w.writeheader()
    for e in entries:
        w.writerow(e.to_row())
    atomic_write_text(path, buf.getvalue())


def read_manifest(path: str | Path) -> list[VideoEntry]:
    """The rows of a manifest; its columns may come in any order."""
    path = Path(path)
    required = set(MANIFEST_COLUMNS) - set(OPTIONAL_COLUMNS)
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not required <= set(reader.fieldnames):
            raise DataError(f"{path}: not a manifest: the header must hold {','.join(sorted(required))}")
        return [VideoEntry.from_row(row, f"{path}:{i + 2}") for i, row in enumerate(reader)]


def is_manifest(path: Path) -> bool:
    """A CSV whose header names the manifest columns (in any order)."""
    if path.suffix != ".csv" or not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = {c.strip() for c in f.readline().strip().split(",")}
    return {"path", "label", "frames", "status"} <= header




def read_classes(path: str | Path) -> list[str]:
    """``classes.txt``: one class name per line, line i is label i."""
    names = [ln.strip() for ln in read_text_file(path, "class list").splitlines() if ln.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: class names repeat; each line must name a distinct class")
    return names


# -- dataset sources ----------------------------------------------------------------------------------
def read_text_file(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped); one clear error for other encodings."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: the {what} is not UTF-8 (byte 0x{data[exc.start]:02x}); save it as "
                        f"UTF-8 (for example: iconv -f latin1 -t utf-8)") from None


def read_list_file(path: str | Path, data_root: str | Path | None = None) -> list[VideoEntry]:
    """VideoMAE list file: ``<path> <int label>`` per line, space separated, no header.

    Paths are relative to ``data_root`` (default: the list file's folder) and kept as written
    (made absolute, symbolic links not followed). The path may contain spaces: the label is the
    last field, a whole number >= 0.
    """
    path = Path(path)
    root = Path(data_root) if data_root else path.parent
    entries = []
    for n, line in enumerate(read_text_file(path, "list file").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rstrip().rsplit(" ", 1)
        if len(parts) != 2 or not re.fullmatch(r"-?[0-9]+", parts[1]):
            raise DataError(f"{path}:{n}: expected '<path> <int label>', got {line.strip()!r}")
        if int(parts[1]) < 0:
            raise DataError(f"{path}:{n}: label {parts[1]} is negative; labels are class numbers 0, 1, 2, ...")
        entries.append(VideoEntry(path=os.path.abspath(root / parts[0]), label=int(parts[1])))
    if not entries:
        raise DataError(f"{path}: the list file holds no videos")
    return entries


def walk_videos(folder: str | Path) -> tuple[list[Path], list[str]]:
    """Video files under ``folder``, sorted, following linked folders once: ``(paths, problems)``.

    Paths are as found (absolute, links not resolved). A link to a missing target is kept (probing
    reports it); a folder named like a video is not a video; a link loop is reported once and not
    followed.
    """
    folder = Path(os.path.abspath(folder))
    found, problems, seen = [], [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        st = os.stat(top)
        if (st.st_dev, st.st_ino) in seen:  # reached twice through links: walked once already
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        keep = []
        for d in sorted(dirs):
            path = os.path.join(top, d)
            if d.startswith(".") or not os.path.exists(path):
                continue
            target = os.path.realpath(path)
            if os.path.islink(path) and (real == target or real.startswith(target.rstrip(os.sep) + os.sep)):
                problems.append(f"{path}: a link loop (it leads back to {target}); not followed")
                continue
            keep.append(d)
        dirs[:] = keep
        found += [Path(top, f) for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
    return sorted(found), problems


def scan_folder(folder: str | Path, labelled: bool = True) -> tuple[list[VideoEntry], list[str]]:
    """Videos under ``folder``. With ``labelled``, one sub-folder per class (sorted names = labels);
    otherwise every video file found recursively, label -1, sorted by path. Link loops are
    reported once (``log.warning``) and not followed."""
    folder = Path(os.path.abspath(folder))
    if labelled:
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        entries = []
        for i, c in enumerate(classes):
            paths, problems = walk_videos(folder / c)
            _report(problems)
            entries += [VideoEntry(path=str(p), label=i) for p in paths]
        return entries, classes
    paths, problems = walk_videos(folder)
    _report(problems)
    return [VideoEntry(path=str(p)) for p in paths], []


def _report(problems: list[str]) -> None:
    for problem in problems:
        logging.getLogger(__name__).warning("%s", problem)


def read_ssv2(labels_json: str | Path, split_json: str | Path, video_dir: str | Path,
              ext: str = ".webm") -> Dataset:
    """Something-Something v2: ``labels.json`` maps template -> id; a split file lists
    ``{"id": ..., "template": "Pushing [something] ..."}``. Brackets are removed from templates."""
    labels = json.loads(Path(labels_json).read_text(encoding="utf-8"))
    classes = [name for name, _ in sorted(labels.items(), key=lambda kv: int(kv[1]))]
    index = {name: int(i) for name, i in labels.items()}
    entries = []
    for n, item in enumerate(json.loads(Path(split_json).read_text(encoding="utf-8"))):
        template = item.get("template", "").replace("[", "").replace("]", "")
        if template not in index:
            raise DataError(f"{split_json}: item {n} (id {item.get('id')}) has template {template!r}, "
                            f"which is not in {labels_json}")
        entries.append(VideoEntry(path=str(Path(video_dir, f"{item['id']}{ext}").resolve()),
                                  label=index[template]))
    return Dataset(entries, classes, str(split_json))


def find_classes_file(start: Path) -> Path | None:
    for d in (start, *start.parents[:2]):
        if (d / "classes.txt").is_file():
            return d / "classes.txt"
    return None
