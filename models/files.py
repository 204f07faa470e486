"""Writing files atomically: the one way apt-video replaces a file (weights, states, graphs,
manifests, metrics). A reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: how text files are encoded: UTF-8, with file-name bytes that are not UTF-8 written back as the
#: same bytes (Python decodes such names with surrogate escapes): names survive a round trip
TEXT = dict(encoding="utf-8", errors="surrogateescape")


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; on success it is flushed to disk and renamed over
    ``path`` (readable by all, as a plain file would be); on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, names' bytes kept)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", **TEXT) as f:
        f.write(text)


def unwritable(path: str | Path) -> str | None:
    """Why a file cannot be written at ``path`` (checked before any work whose result goes there),
    or None: its folder must exist and be writable, and ``path`` must not be a folder."""
    path = Path(path)
    if path.is_dir():
        return f"{path}: is a folder; name a file"
    if not path.parent.is_dir():
        return f"{path}: the folder {path.parent} does not exist; create it first"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"{path}: the folder {path.parent} is not writable"
    return None
