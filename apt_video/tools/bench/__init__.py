"""``apt-video bench``: apt-video's paths against named baselines, measured in the same run on the
same files and model, printed with the ratio (ours / baseline): ``loader``, ``infer``, ``train``,
``score``, ``startup`` (``common`` holds what they share), and ``gpu``, every GPU figure in one run."""
from __future__ import annotations

import importlib
import json
import tempfile
from pathlib import Path

from apt_video.errors import UserError
from apt_video.models.files import atomic_write_text, unwritable

from .common import machine

BENCHES = ("loader", "infer", "train", "score", "startup")


def run_bench(which: str, json_path: str | None, **kw) -> dict:
    """Bench ``which`` (one of ``BENCHES``) with its keyword arguments; its figures, with the
    machine's description, are written to ``json_path`` too."""
    if json_path and (why := unwritable(json_path)):
        raise UserError(f"--json {why}")

    fn = getattr(importlib.import_module(f"{__name__}.{which}"), f"bench_{which}")
    with tempfile.TemporaryDirectory(prefix="apt-video-bench-") as tmp:
        work = Path(kw.pop("work", None) or tmp)
        work.mkdir(parents=True, exist_ok=True)
        res = fn(**kw) if which == "train" else fn(work, **kw)
    res = {"bench": which, "machine": machine(), **res}
    if json_path:
        atomic_write_text(json_path, json.dumps(res, indent=1))
    return res
