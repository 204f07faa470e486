"""Score output files: one row per input video, CSV (RFC 4180) or JSON lines, resumable and locked.

A score output is recognised by its first line: the CSV header ``video,status,pred,prob,top_k,error``
or a JSON object with exactly those keys. Nothing else is ever appended to, truncated or replaced.
Rows are written in input order, each as one write, flushed and fsynced per batch, so a killed run
leaves complete rows and at most one torn row at the end; ``Resume`` cuts that torn row (whatever it
holds, quoted newlines included) and reports how many input rows are done. ``OutputLock`` keeps a
second run off the same file.

File names are bytes on Linux: a name that is not UTF-8 is written back as the same bytes
(``surrogateescape``) in CSV, and as ``\\udcXX`` escapes in JSON lines (the JSON stays valid).
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from apt_video.models.files import TEXT
from apt_video.pipeline.data import DataError

COLUMNS = ("video", "status", "pred", "prob", "top_k", "error")
FORMATS = ("csv", "jsonl")
CSV_HEADER = ",".join(COLUMNS) + "\r\n"


@dataclass
class Row:
    """One output row. ``top_k``: ``[(class name, probability), ...]``, best first; written in both
    formats as the JSON list ``[["name", prob], ...]``."""

    video: str
    status: str
    pred: str = ""
    prob: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""

    def fields(self) -> list[str]:
        """The CSV fields: ``top_k`` as a JSON list of ``[name, prob]`` (names may hold any character)."""
        top = json.dumps([[name, round(p, 6)] for name, p in self.top_k], ensure_ascii=False) if self.top_k else ""
        return [self.video, self.status, self.pred, "" if self.prob is None else f"{self.prob:.6f}", top, self.error]

    def csv_line(self) -> str:
        return _csv_line(self.fields())

    def json_line(self) -> str:
        return json.dumps({"video": self.video, "status": self.status, "pred": self.pred or None,
                           "prob": None if self.prob is None else round(self.prob, 6),
                           "top_k": [[name, round(p, 6)] for name, p in self.top_k],  # the CSV cell's shape
                           "error": self.error or None}) + "\n"

    def line(self, fmt: str) -> str:
        return self.csv_line() if fmt == "csv" else self.json_line()


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)  # quotes fields holding , " \r or \n
    return buf.getvalue()


def format_of(path: Path) -> str | None:
    """``csv`` or ``jsonl`` when ``path`` begins as a score output does, else None."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if not head:
        return None
    text = head.decode("utf-8", "surrogateescape")
    if text.startswith(CSV_HEADER) or text == CSV_HEADER[:len(text)]:
        return "csv"
    first = text.split("\n", 1)[0]
    if "\n" not in text and first.startswith('{"video": '):
        return "jsonl"  # a first row torn by a kill: resumable (Resume cuts it)
    try:
        obj = json.loads(first)
    except ValueError:
        return None
    return "jsonl" if isinstance(obj, dict) and set(obj) == set(COLUMNS) else None


def choose_format(out: Path, asked: str | None) -> str:
    """The format to write ``out`` in: the existing file's, else ``asked``, else from the suffix.
    A file that exists and is not a score output is refused (it is never written to)."""
    if asked is not None and asked not in FORMATS:
        raise DataError(f"--format {asked!r}: choose one of {', '.join(FORMATS)}")
    if out.exists() and out.stat().st_size > 0:
        found = format_of(out)
        if found is None:
            raise DataError(f"{out}: exists and is not an apt-video score output; it is left as it is: "
                            f"choose another output file")
        if asked is not None and asked != found:
            raise DataError(f"{out}: holds {found} rows but --format {asked} was asked; drop --format or choose "
                            f"another output file")
        return found
    return asked or ("jsonl" if out.suffix.lower() in (".jsonl", ".json") else "csv")


@dataclass
class Resume:
    """What a previous run left in ``out``: the videos of its complete rows, in order, and the
    byte length they take (anything after it is a torn row)."""

    videos: list[str]
    length: int
    torn: int  # bytes after the complete rows

    @classmethod
    def read(cls, out: Path, fmt: str) -> Resume:
        if not out.is_file():
            return cls([], 0, 0)
        data = out.read_bytes()
        text = data.decode("utf-8", "surrogateescape")
        videos, pos = (_complete_csv if fmt == "csv" else _complete_jsonl)(text)
        length = len(text[:pos].encode("utf-8", "surrogateescape"))
        return cls(videos, length, len(data) - length)

    def check(self, out: Path, ids: list[str]) -> None:
        """The rows must be the first inputs, in order: otherwise ``out`` is another run's."""
        if len(self.videos) > len(ids):
            raise DataError(f"{out}: holds {len(self.videos)} rows but the input has {len(ids)} videos; it was "
                            f"written for another input: choose another output file")
        for n, (have, want) in enumerate(zip(self.videos, ids)):
            if have != want:
                raise DataError(f"{out}: row {n + 1} is for {have!r} but input video {n + 1} is {want!r}; it "
                                f"was written for another input or order: choose another output file")

    def cut_torn_row(self, out: Path) -> None:
        """Drop the torn row a killed run left at the end (only bytes after our complete rows)."""
        if self.torn:
            with open(out, "r+b") as f:
                f.truncate(self.length)


def _complete_csv(text: str) -> tuple[list[str], int]:
    """Videos of the complete CSV rows and where they end. A row is complete when it parses into
    the six columns and writing those fields again gives back exactly its text."""
    if not text.startswith(CSV_HEADER):
        return [], 0
    pos, videos = len(CSV_HEADER), []
    reader = csv.reader(io.StringIO(text[pos:], newline=""), strict=True)
    try:
        for fields in reader:
            line = _csv_line(fields)
            if len(fields) != len(COLUMNS) or not text.startswith(line, pos):
                break
            videos.append(fields[0])
            pos += len(line)
    except csv.Error:
        pass  # a torn quoted field at the end
    return videos, pos


def _complete_jsonl(text: str) -> tuple[list[str], int]:
    pos, videos = 0, []
    while True:
        end = text.find("\n", pos)
        if end < 0:
            break
        try:
            obj = json.loads(text[pos:end])
        except ValueError:
            break
        if not isinstance(obj, dict) or set(obj) != set(COLUMNS):
            break
        videos.append(obj["video"])
        pos = end + 1
    return videos, pos


def read_rows(out: Path, fmt: str | None = None) -> list[dict]:
    """The complete rows of a score output as dicts, ``top_k`` as a list of ``(label, prob)``."""
    fmt = fmt or format_of(out)
    text = out.read_bytes().decode("utf-8", "surrogateescape")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        for r in rows:
            # [name, prob] pairs; {"label", "prob"} objects in files written before the shapes were one
            r["top_k"] = [(t["label"], t["prob"]) if isinstance(t, dict) else (t[0], t[1]) for t in r["top_k"]]
        return rows
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for r in rows:
        r["top_k"] = [(name, float(p)) for name, p in json.loads(r["top_k"])] if r["top_k"] else []
    return rows


class RowWriter:
    """Appends rows in input order as soon as every earlier row is known; flushes and fsyncs each
    batch of rows. Rows ``0..start-1`` are already in the file (a resumed run)."""

    def __init__(self, path: Path, fmt: str, ids: list[str], start: int = 0):
        self.path, self.fmt, self.ids = path, fmt, ids
        new = not path.exists() or path.stat().st_size == 0
        self.file = open(path, "a", newline="", **TEXT)
        if new and fmt == "csv":
            self._write(CSV_HEADER)
        self.ready: dict[int, Row] = {}
        self.next = start
        self.written: list[Row] = []
        self.times: list[float] = []  # time.perf_counter() when each row of this run was written

    def put(self, index: int, row: Row) -> None:
        if index < self.next or index in self.ready:
            raise RuntimeError(f"row {index} ({row.video}) was given twice")
        self.ready[index] = row
        lines = []
        while self.next in self.ready:
            row = self.ready.pop(self.next)
            lines.append(row.line(self.fmt))
            self.written.append(row)
            self.next += 1
        if lines:
            self._write("".join(lines))
            self.times += [time.perf_counter()] * len(lines)

    def _write(self, text: str) -> None:
        try:
            self.file.write(text)
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as exc:  # a full disk: say which file
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    @property
    def first_at(self) -> float | None:
        """When this run's first row was written (None: none yet)."""
        return self.times[0] if self.times else None

    def missing(self) -> list[int]:
        """Positions that have no row yet."""
        return [i for i in range(self.next, len(self.ids)) if i not in self.ready]

    def close(self) -> None:
        self.file.close()


def resume_point(out: Path, fmt: str, ids: list[str], cut: bool = False) -> Resume:
    """What a previous run left in ``out`` for inputs ``ids``: its complete rows, checked to be the
    first of ``ids`` in order (else ``DataError``); with ``cut``, its torn last row removed."""
    previous = Resume.read(out, fmt)
    previous.check(out, ids)
    if cut:
        previous.cut_torn_row(out)
    return previous


def open_writer(out: Path, fmt: str, ids: list[str], resume: bool = False) -> RowWriter:
    """The writer of ``out`` for inputs ``ids``; with ``resume`` after the rows a previous run left
    (``resume_point``). ``writer.next``: the rows already done."""
    done = len(resume_point(out, fmt, ids, cut=True).videos) if resume else 0
    return RowWriter(out, fmt, ids, start=done)


class OutputLock:
    """An exclusive lock on a sibling ``.<name>.lock`` file while ``out`` is written; a second run on
    the same output is refused. The lock goes with the process (a killed run leaves no lock)."""

    def __init__(self, out: Path):
        self.path = out.with_name(f".{out.name}.lock")
        self.file = None

    def __enter__(self) -> OutputLock:
        while True:
            self.file = open(self.path, "a+")
            try:
                fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.file.seek(0)
                owner = self.file.read().strip() or "?"
                self.file.close()
                raise DataError(f"{self.path.with_name(self.path.name[1:-5])}: another apt-video run (pid {owner}) "
                                f"is writing it; wait for it to end, or choose another output file") from None
            try:  # the lock file may have been removed by a run that just ended: lock the one in place
                if os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            self.file.close()
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.file.close()
