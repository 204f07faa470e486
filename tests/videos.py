"""Test videos whose frames carry their own index, so that a test can read back which frame and
which pixels a pipeline delivered."""
import os

import numpy as np


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


# -- broken files -------------------------------------------------------------------------------------------
def write_broken_videos(folder, mp4: bytes) -> list[str]:
    """Files that fail at each stage of probing, in ``folder``: an empty file, text named like a
    video, an MP4 cut in half (``mp4``: a whole one's bytes) and random bytes. Returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.webm").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video\n")
    (folder / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    (folder / "random.avi").write_bytes(os.urandom(3000))
    return ["zero.webm", "notes.mp4", "truncated.mp4", "random.avi"]
