"""pipeline.video: PyAV's decoding: rotated videos upright, the keyframe seek against decoding from
the start, the timestamp index and its budget."""
import av
import numpy as np
import pytest

from apt_video.pipeline import video
from apt_video.pipeline.video import decode_frames, probe_video, write_video

from videos import index_frames, read_index


def test_rotated_video_is_decoded_upright(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:8, :8] = 255  # a white top-left corner
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)  # shown turned 90 degrees counter-clockwise
        for _ in range(20):
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    e = probe_video(path, clip_frames=8)
    assert e.ok and e.rotation == 90 and (e.width, e.height) == (48, 64) and "rotated" in e.reason
    upright = decode_frames(path, [0, 5])
    assert upright.shape == (2, 64, 48, 3)
    assert upright[0, -8:, :8].mean() > 200 and upright[0, :8, :8].mean() < 50  # the corner is now bottom-left


def _h264_with_b_frames(path, frames, gop):
    """x264 at its medium preset: B-frames, so packets come in another order than the frames show."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt, s.gop_size = frames.shape[2], frames.shape[1], "yuv420p", gop
        s.options = {"preset": "medium", "crf": "18", "bf": "3"}
        for f in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("kind", ["h264 b-frames", "h264", "hevc", "mpeg4", "h264 vfr"])
def test_decoding_from_a_keyframe_gives_the_frames_of_decoding_from_the_start(tmp_path, kind):
    n, frames = 60, index_frames(60, 64, 48)
    if kind == "h264 b-frames":
        path = _h264_with_b_frames(tmp_path / "b.mp4", frames, gop=8)
    elif kind == "h264 vfr":
        pts = np.cumsum(np.random.default_rng(0).integers(20, 60, n)).tolist()  # ms, irregular
        path = write_video(tmp_path / "v.mp4", frames, "h264", gop=8, pts=pts)
    else:
        path = write_video(tmp_path / f"x{video.CODECS[kind][1]}", frames, kind, gop=8)
    e = probe_video(path, clip_frames=16)
    assert e.ok and e.frames == n
    for indices in (range(20, 52, 2), range(8, 24), [33, 9, 33, 41], [57, 58, 59, 60, 75], [17], [44, 12]):
        whole = decode_frames(path, indices)  # every frame from the first: the reference
        seeked = decode_frames(path, indices, frames=n, threads=False)
        assert np.array_equal(seeked, whole), (kind, list(indices))
        assert [read_index(f) for f in seeked] == [min(i, n - 1) for i in indices]
    assert video._INDEX[(str(path), n)] is not None  # the timestamp index was taken: decoding did seek
    # a frame count the packets do not give: no index, decoded from the start
    assert np.array_equal(decode_frames(path, [30, 40], frames=n + 1), decode_frames(path, [30, 40]))
    assert video._INDEX[(str(path), n + 1)] is None


def test_the_timestamp_index_keeps_to_its_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "_INDEX", {})
    monkeypatch.setattr(video, "_indexed", 0)
    monkeypatch.setattr(video, "_INDEX_BUDGET", 100)
    paths = [write_video(tmp_path / f"{k}.mp4", index_frames(40, 32, 32), "h264", gop=8) for k in range(3)]
    for path in paths:
        decode_frames(path, [30], frames=40)
    sizes = [len(pts) + len(keys) for pts, keys in video._INDEX.values()]
    assert list(video._INDEX) == [(str(p), 40) for p in paths[1:]]  # the oldest went
    assert video._indexed == sum(sizes) <= 100 and sizes[0] > 40


def test_a_keyframe_seek_that_lands_off_the_index_decodes_from_the_start(tmp_path):
    n = 60
    path = _h264_with_b_frames(tmp_path / "b.mp4", index_frames(n, 64, 48), gop=8)
    decode_frames(path, [30], frames=n)
    pts, keys = video._INDEX[(str(path), n)]
    video._INDEX[(str(path), n)] = (pts + 1, keys + 1)  # every timestamp off by a tick
    assert np.array_equal(decode_frames(path, range(30, 46), frames=n), decode_frames(path, range(30, 46)))
    assert video._INDEX[(str(path), n)] is None  # not tried again: later clips decode from the start at once
