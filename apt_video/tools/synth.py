"""Synthetic videos: a motion-direction action dataset (``apt-video synth``), for the demo, the
benchmarks and ``apt-video doctor``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from apt_video.pipeline.video import CODECS, write_video


def motion_clip(direction_deg: float, frames: int, width: int, height: int, rng: np.random.Generator,
                reverse: bool = False, bottom_deg: float | None = None) -> np.ndarray:
    """A smooth random texture in two random colours sliding in ``direction_deg`` (0 = right,
    90 = down), wrapping around, so that every patch of every frame shows the motion. Colours,
    texture grain, start and speed are random; only the direction tells the classes apart.
    ``reverse``: the motion turns back half way through (the same directions, in another order).
    ``bottom_deg``: the bottom half of the frame slides in this direction instead."""
    grain = rng.uniform(0.08, 0.14) * min(width, height)  # size of the texture's blobs, in pixels
    speed = rng.uniform(0.4, 0.6) * grain / 2  # pixels per frame: blobs stay recognisable between frames
    gy, gx = int(np.ceil(height / grain)) + 1, int(np.ceil(width / grain)) + 1
    coarse = rng.random((gy, gx))
    ux, uy = math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))
    if bottom_deg is not None:  # per row: the top half one way, the bottom half the other
        bottom = np.arange(height)[:, None] >= height // 2
        ux = np.where(bottom, math.cos(math.radians(bottom_deg)), ux).astype(np.float32)
        uy = np.where(bottom, math.sin(math.radians(bottom_deg)), uy).astype(np.float32)
    x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
    c0, c1 = rng.integers(0, 100, 3).astype(np.float32), rng.integers(156, 256, 3).astype(np.float32)
    ys, xs = np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        travelled = speed * (t if not reverse or t < frames / 2 else frames - t)
        # sample the periodic coarse grid bilinearly at positions shifted by the motion
        fy = ((ys - y0 - uy * travelled) / grain) % (gy - 1)
        fx = ((xs - x0 - ux * travelled) / grain) % (gx - 1)
        iy, ix = fy.astype(int), fx.astype(int)
        wy, wx = fy - iy, fx - ix
        v = (coarse[iy, ix] * (1 - wy) * (1 - wx) + coarse[iy + 1, ix] * wy * (1 - wx)
             + coarse[iy, ix + 1] * (1 - wy) * wx + coarse[iy + 1, ix + 1] * wy * wx)
        out[t] = (c0 + (c1 - c0) * v[..., None]).astype(np.uint8)
    return out


def direction_names(classes: int, offset_deg: float, reverse: bool = False,
                    axis: bool = False) -> list[tuple[str, float]]:
    """Each class's name and angle: ``classes`` directions over the circle, or with ``axis``
    ``classes`` lines of motion over half of it (a video then slides either way along its line)."""
    if axis:
        return [(f"along_{(offset_deg + 180 * k / classes) % 180:05.1f}deg", offset_deg + 180 * k / classes)
                for k in range(classes)]
    suffix = "_and_back" if reverse else ""
    return [(f"move_{(offset_deg + 360 * k / classes) % 360:05.1f}deg{suffix}", offset_deg + 360 * k / classes)
            for k in range(classes)]


SPLIT = (0.6, 0.2, 0.2)  # the fractions of each class's videos in train, val and test


def split_counts(per_class: int, split: tuple[float, float, float]) -> tuple[int, int, int]:
    """Videos of each class in train, val and test for the fractions ``split``."""
    n_train = int(round(per_class * split[0]))
    n_val = min(int(round(per_class * split[1])), per_class - n_train)
    return n_train, n_val, per_class - n_train - n_val


def make_motion_dataset(out: str | Path, classes: int = 4, per_class: int = 20, frames: int = 32,
                        size: tuple[int, int] = (128, 96), codec: str = "vp9", offset_deg: float = 0.0,
                        split: tuple[float, float, float] = SPLIT, seed: int = 0,
                        reverse: bool = False, distractor: bool = False, axis: bool = False) -> dict[str, Path]:
    """Write ``classes`` x ``per_class`` videos of a texture moving in one of ``classes`` directions
    (starting at ``offset_deg``), with VideoMAE list files ``train.csv``, ``val.csv``, ``test.csv``
    (paths relative to ``out``) and ``classes.txt``. Returns the paths of those files. ``reverse``:
    every motion turns back half way (opposite directions then differ only in their order).
    ``distractor``: the class is the top half's direction; the bottom half slides in a random one
    of the same directions (a frame-wide average of the motion mixes the two; attending to the top
    half separates them). ``axis``: the class is the line of motion (``classes`` lines from
    ``offset_deg`` over 180 degrees), each video sliding one way or the other along it at random:
    features that tell 4 directions apart hold the 4 lines of 8 directions only as an XOR (the
    diagonals' two lines are sums of the same direction features), which no linear probe separates."""
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r}; choose one of {', '.join(CODECS)}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    names = direction_names(classes, offset_deg, reverse, axis)
    width, height = size
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    ext = CODECS[codec][1]
    for label, (name, angle) in enumerate(names):
        n_train, n_val, _ = split_counts(per_class, split)
        for i in range(per_class):
            rel = Path("videos") / name / f"{name}_{i:03d}{ext}"
            bottom = names[int(rng.integers(len(names)))][1] if distractor else None
            way = angle + 180 * int(rng.integers(2)) if axis else angle
            write_video(out / rel, motion_clip(way, frames, width, height, rng, reverse, bottom), codec)
            part = "train" if i < n_train else "val" if i < n_train + n_val else "test"
            lists[part].append(f"{rel.as_posix()} {label}")
    paths = {}
    for part, lines in lists.items():
        paths[part] = out / f"{part}.csv"
        paths[part].write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    paths["classes"] = out / "classes.txt"
    paths["classes"].write_text("\n".join(n for n, _ in names) + "\n", encoding="utf-8")
    return paths
