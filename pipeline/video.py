"""Video files with PyAV: probing one file, decoding chosen frames, writing frames as a video, and
which route decodes each file on each device (``decode_route``): DALI's own decoder where it takes
the file (DALI's CPU build: VP8, VP9 and MJPEG; on a GPU, what NVDEC takes: ``pipeline.nvdec``),
else PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import nvdec
from .data import VideoEntry

#: codecs (FFmpeg names) that ``fn.decoders.video`` opens, per DALI device (on the GPU, NVDEC's
#: limits decide per file)
DALI_CODECS = {
    "cpu": frozenset({"vp8", "vp9", "mjpeg"}),
    "gpu": frozenset(nvdec.CUVID_CODECS),
}
#: the longest side decoded at its native size, by either route (the reference decodes every video
#: at its native size): a video larger than this is decoded by PyAV, which scales its frames down to
#: it while decoding, so that a batch of 4K clips never holds full-resolution frames. What it bounds:
#: a 1920x1080 RGB frame is 6.2 MB, a 16-frame training clip 100 MB in a decode worker before the
#: crop, the 10 test segments of 16 frames 1 GB. ``VideoLoader(max_side=)``, config ``decode_max_side``.
MAX_SIDE = 1920


def decode_route(entry: VideoEntry, device: str, limits: dict | None = None, max_side: int = MAX_SIDE) -> str | None:
    """None when DALI's own decoder reads this file on ``device`` ('cpu' or 'gpu'), else why PyAV
    decodes it instead (one line). ``limits``: NVDEC's, as ``pipeline.nvdec.host_limits`` reads
    them from the driver (default: the Video Codec SDK's table). ``max_side``: see ``MAX_SIDE``."""
    if entry.damaged:
        return "damaged: PyAV reads the frames that decode"
    if entry.rotation:
        return "rotated: PyAV turns the frames upright"
    if max(entry.width, entry.height) > max_side:
        return f"longer than {max_side} px: PyAV scales it down to {max_side} while decoding"
    if device == "cpu":
        return None if entry.codec in DALI_CODECS["cpu"] else f"DALI's CPU decoder has no {entry.codec} decoder"
    return nvdec.refusal(entry.codec, entry.width, entry.height, entry.pix_fmt, limits)


def dali_can_decode(entry: VideoEntry, device: str, limits: dict | None = None) -> bool:
    """True when DALI's own decoder should read this file on ``device`` ('cpu' or 'gpu')."""
    return decode_route(entry, device, limits) is None


def probe_video(path: str | Path, label: int = -1, clip_frames: int = 16, full: bool = True) -> VideoEntry:
    """Open a video once and describe it. Never raises for a bad file: the status says what is wrong.

    With ``full`` every frame is decoded, which counts frames exactly (DALI indexes frames in decode
    order too) and finds truncated or corrupt streams; otherwise packets are only demuxed and the
    first frame decoded.
    """
    e = VideoEntry(path=str(path), label=label)
    p = Path(path)
    if not p.is_file():
        if p.is_symlink():
            return _bad(e, "missing", "a link whose target does not exist (or a link loop)")
        if p.is_dir():
            return _bad(e, "missing", "a folder, not a video file")
        return _bad(e, "missing", "file not found")
    if p.stat().st_size == 0:
        return _bad(e, "empty", "zero-byte file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        return _bad(e, "unreadable", f"not a video container FFmpeg can open ({_msg(exc)})")
    with container:
        if not container.streams.video:
            return _bad(e, "no-video-stream", "the container holds no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        e.codec = ctx.codec.canonical_name if ctx is not None else ""  # av1, not the decoder's name (libdav1d)
        e.width, e.height = int(stream.width or 0), int(stream.height or 0)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        e.fps = float(rate) if rate else 0.0
        stream.thread_type = "AUTO"
        count, error = 0, None
        try:
            if full:
                for frame in container.decode(stream):
                    if count == 0:
                        e.width, e.height, e.rotation = frame.width, frame.height, _rotation(frame)
                        e.pix_fmt = frame.format.name
                    count += 1
            else:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    if count == 0:
                        frames = packet.decode()
                        if not frames:
                            continue
                        e.width, e.height, e.rotation = frames[0].width, frames[0].height, _rotation(frames[0])
                        e.pix_fmt = frames[0].format.name
                    count += 1
        except av.error.DecoderNotFoundError:
            return _bad(e, "unsupported-codec", f"no decoder here for codec {e.codec or '?'}")
        except (av.error.FFmpegError, ValueError, MemoryError) as exc:
            error = _msg(exc)
        if ctx is None or (count == 0 and error and "decoder" in error.lower()):
            return _bad(e, "unsupported-codec", f"no decoder here for codec {e.codec or '?'}")
        if count == 0:
            return _bad(e, "undecodable", f"no decodable frame ({error or 'empty stream'})")
        e.frames = count
        e.duration = count / e.fps if e.fps else 0.0
        declared = container.duration / 1e6 if container.duration else 0.0
    notes = []
    if full and not error and e.fps and declared and count < declared * e.fps - 2:
        error = f"truncated: {count} frames decode but the container declares {declared:.2f} s"
    if error:
        notes.append(f"damaged: decoding stops after frame {count} ({error}); those frames are used")
    if count < clip_frames:
        notes.append(f"short: {count} frames < {clip_frames}; padded by repeating frames")
    if e.rotation:
        notes.append(f"rotated: the display matrix turns it {e.rotation} degrees; decoded upright by PyAV")
        if e.rotation in (90, 270):
            e.width, e.height = e.height, e.width  # the upright frame's size
    e.status, e.reason = "ok", "; ".join(notes)
    return e


def _rotation(frame) -> int:
    """Counter-clockwise degrees (0, 90, 180 or 270) the display matrix turns this frame."""
    return int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4 * 90


def _bad(e: VideoEntry, status: str, reason: str) -> VideoEntry:
    e.status, e.reason = status, reason
    return e


def _msg(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def decode_frames(path: str | Path, indices, max_side: int = MAX_SIDE, frames: int | None = None,
                  threads: bool = True) -> np.ndarray:
    """Frames at ``indices`` (decode order, any order, repeats allowed) as FHWC uint8 RGB, upright.

    Decodes up to the largest index once; an index past the last decodable frame
    takes the last frame (VideoMAE's padding). Frames larger than ``max_side`` are scaled down while
    decoding, keeping the aspect ratio; a display matrix's rotation is applied. Raises
    ``RuntimeError`` when no frame decodes.

    ``frames``: how many frames the whole file decodes to (``probe_video``'s count, for a video that
    is not damaged). With it, decoding starts at the last keyframe at or before the first wanted
    frame (as decord and DALI's decoder do) when the stream's packets index exactly that many
    frames: frame ``i`` is then the one with the ``i``-th smallest timestamp, the same frame as the
    ``i``-th one decoded from the start, and every frame after the seek is checked to come with the
    index its timestamp has (if one does not, the file is decoded from the start, then and for the
    rest of the process). The index is kept per file for the process's later clips.

    ``threads``: FFmpeg's frame and slice threads (for one decode at a time; a loader whose workers
    already fill the cores decodes without them: about 20% less CPU per clip).
    """
    indices = [int(i) for i in indices]
    wanted, last = set(indices), max(indices)

    def rgb(frame) -> np.ndarray:
        w, h = frame.width, frame.height
        if max(w, h) > max_side:
            s = max_side / max(w, h)
            w, h = max(2, round(w * s / 2) * 2), max(2, round(h * s / 2) * 2)
        return np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24", width=w, height=h),
                                             k=_rotation(frame) // 90))

    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads else "NONE"
        order = _seek_point(path, container, stream, min(indices), frames) if frames and min(indices) > 0 else None
        if order is not None:
            try:
                got, last_frame, last_i = _collect(_from_keyframe(container, stream, *order), wanted, last, rgb)
            except _Unindexed:  # the frames after the seek are not the indexed ones: from the start,
                container.seek(0, stream=stream, backward=True)  # now and for the process's later clips
                _remember((str(path), frames), None)
                order = None
        if order is None:
            got, last_frame, last_i = _collect(enumerate(container.decode(stream)), wanted, last, rgb)
    if last_frame is None:
        raise RuntimeError(f"{path}: no frame could be decoded")
    tail = got[last_i] if last_i in got else rgb(last_frame)
    return np.stack([got.get(i, tail) for i in indices])


class _Unindexed(Exception):
    """Decoding after a seek gave a frame the timestamp index does not place."""


def _collect(frames, wanted: set[int], last: int, rgb) -> tuple[dict, object, int]:
    """The wanted ones of ``(index, frame)`` pairs as RGB, the last frame seen and its index, up to
    index ``last`` or the first decoding error (a damaged tail: the frames so far are used)."""
    got, last_frame, last_i = {}, None, -1
    try:
        for i, frame in frames:
            if i in wanted:
                got[i] = rgb(frame)
            last_frame, last_i = frame, i
            if i >= last:
                break
    except av.error.FFmpegError:
        pass
    return got, last_frame, last_i


def _from_keyframe(container, stream, pts: np.ndarray, start: int):
    """``(index, frame)`` from the keyframe at timestamp ``start`` on, checking that every frame
    comes, in order, with the index its timestamp has in ``pts``; raises ``_Unindexed`` if not."""
    first = expected = int(np.searchsorted(pts, start))
    try:  # an error here is the seek's (the file decodes whole from its start)
        container.seek(start, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            t = frame.pts
            i = int(np.searchsorted(pts, t)) if t is not None else -1
            if i < 0 or i >= len(pts) or pts[i] != t:
                raise _Unindexed
            if i < first:
                continue  # an earlier keyframe's frames, or an open GOP's leading frames
            if i != expected:
                raise _Unindexed
            expected += 1
            yield i, frame
    except av.error.FFmpegError:
        raise _Unindexed from None


def _seek_point(path, container, stream, first: int, frames: int) -> tuple[np.ndarray, int] | None:
    """The stream's frame timestamps in display order and the timestamp of the last keyframe at or
    before frame ``first``; None when the packets do not index ``frames`` frames by distinct
    timestamps, or that keyframe is the first frame (nothing to skip)."""
    key = (str(path), frames)
    if key not in _INDEX:
        pts, keys = [], []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                pts = []
                break
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        container.seek(0, stream=stream, backward=True)  # the demuxer read on; decoding starts over
        pts = np.unique(np.asarray(pts, np.int64))  # sorted; repeats would shorten it
        _remember(key, (pts, np.asarray(keys, np.int64)) if len(pts) == frames else None)
    index = _INDEX[key]
    if index is None or first >= frames:
        return None
    pts, keys = index
    before = keys[keys <= pts[first]]
    start = int(before.max()) if len(before) else None
    return None if start is None or start == pts[0] else (pts, start)


#: per-process timestamp index of the files decoded with a frame count, up to ``_INDEX_BUDGET``
#: timestamps in all (8 bytes each), the oldest files dropped first
_INDEX: dict[tuple[str, int], tuple[np.ndarray, np.ndarray] | None] = {}
_INDEX_BUDGET = 4_000_000
_indexed = 0  # timestamps held in _INDEX


def _remember(key, index) -> None:
    global _indexed
    _indexed += _timestamps(index) - _timestamps(_INDEX.get(key))
    _INDEX[key] = index
    while len(_INDEX) > 1 and _indexed > _INDEX_BUDGET:
        _indexed -= _timestamps(_INDEX.pop(next(iter(_INDEX))))


def _timestamps(index) -> int:
    return len(index[0]) + len(index[1]) if index else 0


# -- writing videos ----------------------------------------------------------------------------------
CODECS = {  # name -> (PyAV encoder, file extension, pixel format)
    "vp9": ("libvpx-vp9", ".webm", "yuv420p"),
    "vp8": ("libvpx", ".webm", "yuv420p"),
    "mjpeg": ("mjpeg", ".avi", "yuvj420p"),
    "h264": ("libx264", ".mp4", "yuv420p"),
    "hevc": ("libx265", ".mp4", "yuv420p"),
    "mpeg4": ("mpeg4", ".avi", "yuv420p"),
    "av1": ("libsvtav1", ".mkv", "yuv420p"),
}


def write_video(path: str | Path, frames: np.ndarray, codec: str = "vp9", fps: float = 25,
                gop: int = 16, pts: list[int] | None = None, pix_fmt: str | None = None) -> Path:
    """Encode FHWC uint8 RGB ``frames`` with PyAV. ``gop`` is the keyframe interval; ``pts`` (in
    1/1000 s) gives variable frame timing; ``pix_fmt`` replaces the codec's usual pixel format
    (``yuv444p``, ``yuv420p10le``, ...). Returns the path written."""
    encoder, _, pix = CODECS[codec]
    pix = pix_fmt or pix
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
