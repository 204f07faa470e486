"""Synthetic videos: a motion-direction action dataset (``apt-video synth``) and frames with their
index painted in, so that tests can read back which frame and which pixels a pipeline delivered."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CODECS = {  # name -> (PyAV encoder, file extension, pixel format)
    "vp9": ("libvpx-vp9", ".webm", "yuv420p"),
    "vp8": ("libvpx", ".webm", "yuv420p"),
    "mjpeg": ("mjpeg", ".avi", "yuvj420p"),
    "h264": ("libx264", ".mp4", "yuv420p"),
    "hevc": ("libx265", ".mp4", "yuv420p"),
    "mpeg4": ("mpeg4", ".avi", "yuv420p"),
}


def write_video(path: str | Path, frames: np.ndarray, codec: str = "vp9", fps: float = 25,
                gop: int = 16, pts: list[int] | None = None) -> Path:
    """Encode FHWC uint8 RGB ``frames`` with PyAV. ``gop`` is the keyframe interval; ``pts`` (in
    1/1000 s) gives variable frame timing. Returns the path written."""
    from fractions import Fraction

    import av

    encoder, _, pix = CODECS[codec]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(encoder, rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt, stream.gop_size = pix, gop
        if codec in ("vp9", "vp8"):
            stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}
        elif codec in ("h264", "hevc"):
            stream.options = {"preset": "ultrafast", "crf": "18"}
            if codec == "hevc":
                stream.options["x265-params"] = "log-level=error"
        else:
            stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
            stream.bit_rate = 4_000_000
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# -- frames that carry their index ----------------------------------------------------------------
def index_frames(n: int, width: int, height: int) -> np.ndarray:
    """``n`` frames; frame i is flat in R and G, which encode i (16 levels each, so up to 256 frames
    survive lossy codecs), and B is a ramp 0..255 along the long side (left to right, or top to
    bottom for portrait frames) that tells crop positions."""
    i = np.arange(n)
    frames = np.empty((n, height, width, 3), np.uint8)
    frames[..., 0] = ((i % 16) * 16 + 8)[:, None, None]
    frames[..., 1] = ((i // 16) * 16 + 8)[:, None, None]
    if height > width:
        frames[..., 2] = np.round(np.linspace(0, 255, height))[None, :, None]
    else:
        frames[..., 2] = np.round(np.linspace(0, 255, width))[None, None, :]
    return frames


def read_index(frame: np.ndarray) -> int:
    """The index painted by ``index_frames``, from an HWC uint8 (or 0..255 float) frame."""
    h, w = frame.shape[:2]
    core = frame[h // 4: 3 * h // 4 + 1, w // 4: 3 * w // 4 + 1].reshape(-1, frame.shape[2])
    r, g = np.median(core[:, 0]), np.median(core[:, 1])
    return int(np.clip(np.round((g - 8) / 16), 0, 15)) * 16 + int(np.clip(np.round((r - 8) / 16), 0, 15))


# -- the motion-direction dataset -----------------------------------------------------------------------
def motion_clip(direction_deg: float, frames: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random texture in two random colours sliding in ``direction_deg`` (0 = right,
    90 = down), wrapping around, so that every patch of every frame shows the motion. Colours,
    texture grain, start and speed are random; only the direction tells the classes apart."""
    grain = rng.uniform(0.08, 0.14) * min(width, height)  # size of the texture's blobs, in pixels
    speed = rng.uniform(0.4, 0.6) * grain / 2  # pixels per frame: blobs stay recognisable between frames
    gy, gx = int(np.ceil(height / grain)) + 1, int(np.ceil(width / grain)) + 1
    coarse = rng.random((gy, gx))
    ux, uy = math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))
    x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
    c0, c1 = rng.integers(0, 100, 3).astype(np.float32), rng.integers(156, 256, 3).astype(np.float32)
    ys, xs = np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        # sample the periodic coarse grid bilinearly at positions shifted by the motion
        fy = ((ys - y0 - uy * speed * t) / grain) % (gy - 1)
        fx = ((xs - x0 - ux * speed * t) / grain) % (gx - 1)
        iy, ix = fy.astype(int), fx.astype(int)
        wy, wx = fy - iy, fx - ix
        v = (coarse[iy, ix] * (1 - wy) * (1 - wx) + coarse[iy + 1, ix] * wy * (1 - wx)
             + coarse[iy, ix + 1] * (1 - wy) * wx + coarse[iy + 1, ix + 1] * wy * wx)
        out[t] = (c0 + (c1 - c0) * v[..., None]).astype(np.uint8)
    return out


def direction_names(classes: int, offset_deg: float) -> list[tuple[str, float]]:
    return [(f"move_{(offset_deg + 360 * k / classes) % 360:05.1f}deg", offset_deg + 360 * k / classes)
            for k in range(classes)]


def make_motion_dataset(out: str | Path, classes: int = 4, per_class: int = 20, frames: int = 32,
                        size: tuple[int, int] = (128, 96), codec: str = "vp9", offset_deg: float = 0.0,
                        split: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0) -> dict[str, Path]:
    """Write ``classes`` x ``per_class`` videos of a square moving in one of ``classes`` directions
    (starting at ``offset_deg``), with VideoMAE list files ``train.csv``, ``val.csv``, ``test.csv``
    (paths relative to ``out``) and ``classes.txt``. Returns the paths of those files."""
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r}; choose one of {', '.join(CODECS)}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    names = direction_names(classes, offset_deg)
    width, height = size
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    ext = CODECS[codec][1]
    for label, (name, angle) in enumerate(names):
        n_train = int(round(per_class * split[0]))
        n_val = int(round(per_class * split[1]))
        for i in range(per_class):
            rel = Path("videos") / name / f"{name}_{i:03d}{ext}"
            write_video(out / rel, motion_clip(angle, frames, width, height, rng), codec)
            part = "train" if i < n_train else "val" if i < n_train + n_val else "test"
            lists[part].append(f"{rel.as_posix()} {label}")
    paths = {}
    for part, lines in lists.items():
        paths[part] = out / f"{part}.csv"
        paths[part].write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    paths["classes"] = out / "classes.txt"
    paths["classes"].write_text("\n".join(n for n, _ in names) + "\n", encoding="utf-8")
    return paths
