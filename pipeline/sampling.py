"""Frame samplers and view geometry of the VideoMAE protocol: the one place these formulas live.

Two samplers, as VideoMAE's datasets define them:

- ``dense`` (kinetics.py: Kinetics, UCF101, HMDB51). Training: ``dense_indices``, ``clip_len``
  frames over a random window of ``clip_len * rate``. Test: ``dense_view_indices``, segments over
  every ``rate``-th frame of the whole video.
- ``segment`` (ssv2.py, TSN style). Training and validation: ``segment_indices``, one frame from
  each of ``clip_len`` equal segments. Test: ``segment_view_indices``, view ``k`` of ``S`` takes
  frame ``int(tick * x + tick * k / S)`` of segment ``x``, ``tick = N / clip_len``.

``view_indices(spec, num_frames)`` picks the test views of either sampler; ``resize_short_side`` and
``crop_offsets`` give the crops along the long side. The test pipeline, the scorer and the engine
metadata all use these.
"""
from __future__ import annotations

import numpy as np

from apt_video.models.card import ClipSpec


def dense_indices(num_frames: int, clip_len: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """VideoMAE training sampler: ``clip_len`` indices evenly spread over a random window of
    ``clip_len * rate`` frames. A video no longer than the window is spread over its whole length
    at ``rate`` and padded with its last frame."""
    window = clip_len * rate
    if num_frames <= window:
        idx = np.linspace(0, num_frames, num=num_frames // rate)
        idx = np.concatenate([idx, np.full(clip_len - len(idx), num_frames)])
        return np.clip(idx, 0, num_frames - 1).astype(np.int64)
    end = int(rng.integers(window, num_frames))
    start = end - window
    return np.clip(np.linspace(start, end, num=clip_len), start, end - 1).astype(np.int64)


def segment_indices(num_frames: int, clip_len: int, rng: np.random.Generator | None) -> np.ndarray:
    """SSv2 (TSN) sampler of ssv2.py: ``avg = N // clip_len``; frame ``x * avg + r`` of segment ``x``,
    ``r`` uniform in ``[0, avg)`` in training (``rng`` given), ``avg // 2`` otherwise. A video of
    fewer than ``clip_len`` frames gives frame 0 ``clip_len`` times, as the reference does (its
    third branch, sorted random frames when ``N > clip_len``, cannot be reached with ``avg == 0``)."""
    avg = num_frames // clip_len
    if avg == 0:
        return np.zeros(clip_len, dtype=np.int64)
    offset = rng.integers(avg, size=clip_len) if rng is not None else avg // 2
    return (np.arange(clip_len) * avg + offset).astype(np.int64)


def dense_view_indices(num_frames: int, clip_len: int, rate: int, segments: int) -> np.ndarray:
    """Frame indices of the dense test segments, ``(segments, clip_len)``.

    Every ``rate``-th frame of the whole video, padded with its last to at least ``clip_len``;
    segment ``k`` starts at ``int(k * (L - clip_len) / (segments - 1))`` (0 for one segment).
    """
    frames = list(range(0, max(num_frames, 1), rate))
    frames += [frames[-1]] * (clip_len - len(frames))
    step = max((len(frames) - clip_len) / (segments - 1), 0.0) if segments > 1 else 0.0
    starts = [int(k * step) for k in range(segments)]
    return np.asarray([frames[s:s + clip_len] for s in starts], dtype=np.int64)


def segment_view_indices(num_frames: int, clip_len: int, segments: int) -> np.ndarray:
    """Frame indices of the SSv2 test views, ``(segments, clip_len)``: ``tick = N / clip_len``,
    view ``k`` takes frame ``int(tick * x + tick * k / segments)`` for ``x`` in ``0..clip_len-1``.
    For two views these are ssv2.py's segment starts and midpoints."""
    tick = max(num_frames, 1) / clip_len
    return np.asarray([[int(tick * x + tick * k / segments) for x in range(clip_len)] for k in range(segments)],
                      dtype=np.int64)


def resize_short_side(height: int, width: int, size: int) -> tuple[int, int]:
    """Output ``(h, w)`` when the short side is resized to ``size``, the long side truncated."""
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def crop_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Top-left ``(y, x)`` of the ``crops`` test crops of a ``height x width`` frame whose short side
    is ``size``: spread along the long side at ``int(j * (long - size) / (crops - 1))`` (kinetics.py's
    test crops); one crop is VideoMAE's CenterCrop, at ``int(round((long - size) / 2))`` (Python's
    round: a half margin goes to the even neighbour)."""
    long = max(height, width)
    if crops == 1:
        starts = [int(round((long - size) / 2.0))]
    else:
        step = (long - size) / (crops - 1)
        starts = [int(j * step) for j in range(crops)]
    return [(s, 0) if height >= width else (0, s) for s in starts]


def train_indices(spec: ClipSpec, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """One random training clip of ``spec.num_frames`` frame indices."""
    if spec.sampler == "segment":
        return segment_indices(num_frames, spec.num_frames, rng)
    return dense_indices(num_frames, spec.num_frames, spec.sampling_rate, rng)


def eval_indices(spec: ClipSpec, num_frames: int) -> np.ndarray:
    """One deterministic clip for per-epoch validation: the middle of three dense test segments, or
    the segment middles (SSv2). (The reference draws a random training clip for validation.)"""
    if spec.sampler == "segment":
        return segment_indices(num_frames, spec.num_frames, None)
    return dense_view_indices(num_frames, spec.num_frames, spec.sampling_rate, 3)[1]


def view_indices(spec: ClipSpec, num_frames: int) -> np.ndarray:
    """Frame indices of the ``spec.test_num_segment`` test views of a video of ``num_frames``
    frames, ``(segments, clip_len)``, for either sampler (each view is then cut into crops)."""
    if spec.sampler == "segment":
        return segment_view_indices(num_frames, spec.num_frames, spec.test_num_segment)
    return dense_view_indices(num_frames, spec.num_frames, spec.sampling_rate, spec.test_num_segment)
