"""Scoring folders of videos with an exported engine (filled in by the scoring issue)."""
from __future__ import annotations

from .sampling import ClipSpec


def clip_spec_from_meta(meta: dict, views: tuple[int, int] | None = None) -> ClipSpec:
    """The clip geometry recorded at training time (checkpoint metadata or model.json)."""
    segments, crops = views or (meta["test_num_segment"], meta["test_num_crop"])
    return ClipSpec(num_frames=meta["num_frames"], sampling_rate=meta["sampling_rate"],
                    input_size=meta["input_size"], sampler=meta.get("sampler", "dense"),
                    test_num_segment=segments, test_num_crop=crops, mean=tuple(meta["mean"]), std=tuple(meta["std"]))
