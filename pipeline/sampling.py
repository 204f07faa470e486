"""Frame samplers and view geometry of the VideoMAE protocol: the one place these formulas live.

Training: ``dense_indices`` (Kinetics / UCF101 / HMDB51: ``clip_len`` frames over a random window of
``clip_len * rate``) and ``segment_indices`` (SSv2, TSN style). Test: ``test_view_indices`` (segments
over every ``rate``-th frame of the whole video), ``resize_short_side`` and ``crop_offsets`` (crops
along the long side). The scorer, the test pipeline and the engine metadata all use these.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ImageNet statistics used by VideoMAE for normalisation, on 0..1 pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipSpec:
    """What one clip is: frames, temporal sampling, input size, test views and normalisation."""

    num_frames: int = 16
    sampling_rate: int = 4
    input_size: int = 224
    sampler: str = "dense"  # 'dense' or 'segment' (SSv2)
    test_num_segment: int = 10
    test_num_crop: int = 3
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        for name in ("num_frames", "sampling_rate", "input_size", "test_num_segment", "test_num_crop"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.sampler not in ("dense", "segment"):
            raise ValueError(f"sampler={self.sampler!r}; choose 'dense' or 'segment'")

    @property
    def num_views(self) -> int:
        return self.test_num_segment * self.test_num_crop


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
    """SSv2 (TSN) sampler: one frame from each of ``clip_len`` equal segments, random in training
    (``rng`` given), the segment middle otherwise."""
    seg = (num_frames - 1) / clip_len
    out = []
    for i in range(clip_len):
        start, end = int(np.round(seg * i)), int(np.round(seg * (i + 1)))
        out.append(int(rng.integers(start, end + 1)) if rng is not None else (start + end) // 2)
    return np.asarray(out, dtype=np.int64)


def test_view_indices(num_frames: int, clip_len: int, rate: int, segments: int) -> np.ndarray:
    """Frame indices of the test segments, ``(segments, clip_len)``.

    Every ``rate``-th frame of the whole video, padded with its last to at least ``clip_len``;
    segment ``k`` starts at ``int(k * (L - clip_len) / (segments - 1))`` (0 for one segment).
    """
    frames = list(range(0, max(num_frames, 1), rate))
    frames += [frames[-1]] * (clip_len - len(frames))
    step = max((len(frames) - clip_len) / (segments - 1), 0.0) if segments > 1 else 0.0
    starts = [int(k * step) for k in range(segments)]
    return np.asarray([frames[s:s + clip_len] for s in starts], dtype=np.int64)


def resize_short_side(height: int, width: int, size: int) -> tuple[int, int]:
    """Output ``(h, w)`` when the short side is resized to ``size``, the long side truncated."""
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def crop_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Top-left ``(y, x)`` of the ``crops`` test crops of a ``height x width`` frame whose short side
    is ``size``: spread along the long side at ``int(j * (long - size) / (crops - 1))``; one crop is
    centred."""
    long = max(height, width)
    if crops == 1:
        starts = [(long - size) // 2]
    else:
        step = (long - size) / (crops - 1)
        starts = [int(j * step) for j in range(crops)]
    return [(s, 0) if height >= width else (0, s) for s in starts]


def train_indices(spec: ClipSpec, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    if spec.sampler == "segment":
        return segment_indices(num_frames, spec.num_frames, rng)
    return dense_indices(num_frames, spec.num_frames, spec.sampling_rate, rng)


def eval_indices(spec: ClipSpec, num_frames: int) -> np.ndarray:
    """One deterministic clip for per-epoch validation: the middle test segment (dense) or the
    segment middles (SSv2)."""
    if spec.sampler == "segment":
        return segment_indices(num_frames, spec.num_frames, None)
    return test_view_indices(num_frames, spec.num_frames, spec.sampling_rate, 3)[1]
