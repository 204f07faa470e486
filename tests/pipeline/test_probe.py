"""pipeline.probe: every bad file named with its reason; the manifest, its cache, and the probe
command."""
import os
import shutil

import av
import pytest

from apt_video.cli import main
from apt_video.pipeline.data import read_manifest
from apt_video.pipeline.probe import default_paths
from apt_video.pipeline.video import probe_video, write_video

from videos import index_frames


@pytest.fixture
def bad_files(tmp_path, index_videos):
    d = tmp_path / "bad"
    d.mkdir()
    good = index_videos["vp9"].read_bytes()
    (d / "zero.webm").write_bytes(b"")
    (d / "text.mp4").write_text("not a video at all\n" * 50)
    (d / "random.webm").write_bytes(os.urandom(5000))
    (d / "truncated.webm").write_bytes(good[: len(good) // 2])
    mp4 = index_videos["h264"].read_bytes()
    (d / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])  # index at the end: cannot open
    write_video(d / "short.webm", index_frames(5, 32, 32), "vp9")
    with av.open(str(d / "audio.mka"), "w") as c:  # a container with no video stream
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 8000
        for packet in s.encode(frame):
            c.mux(packet)
    return d


def test_probe_names_every_bad_file(bad_files):
    got = {p.name: probe_video(p) for p in sorted(bad_files.iterdir())}
    got["missing.webm"] = probe_video(bad_files / "missing.webm")
    status = {k: v.status for k, v in got.items()}
    assert status == {"zero.webm": "empty", "text.mp4": "unreadable", "random.webm": "unreadable",
                      "truncated.webm": "ok", "truncated.mp4": "unreadable", "short.webm": "ok",
                      "audio.mka": "no-video-stream", "missing.webm": "missing"}
    assert got["truncated.webm"].reason.startswith("damaged: ") and got["truncated.webm"].damaged
    assert got["short.webm"].reason.startswith("short: 5 frames < 16")
    assert all(v.reason for v in got.values())


def test_probe_cli_summary_manifest_and_cache(tmp_path, bad_files, index_videos, capsys):
    shutil.copy(index_videos["mjpeg"], bad_files / "good.avi")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"bad/{p.name} {i}\n" for i, p in enumerate(sorted(bad_files.iterdir()))))
    assert main(["probe", str(lst), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "8 videos: 3 ok" in out and "unreadable" in out and "no-video-stream" in out
    manifest, cache = default_paths(lst)
    rows = read_manifest(manifest)
    assert [os.path.basename(r.path) for r in rows] == sorted(p.name for p in bad_files.iterdir())
    assert [r.label for r in rows] == list(range(8))
    assert main(["probe", str(lst)]) == 0
    assert "(0 probed, 8 from cache)" in capsys.readouterr().out
    os.utime(bad_files / "good.avi", ns=(1, 1))  # changed file: probed again
    assert main(["probe", str(lst), "--out", str(tmp_path / "m.csv")]) == 0
    assert "(1 probed, 7 from cache)" in capsys.readouterr().out
    assert (tmp_path / "m.csv").is_file()


def test_probe_fails_when_nothing_is_usable(tmp_path, bad_files, capsys):
    lst = tmp_path / "l.csv"
    lst.write_text("bad/zero.webm 0\nbad/text.mp4 1\n")
    assert main(["probe", str(lst)]) == 1
    assert "no usable video" in capsys.readouterr().out


def test_read_only_dataset_caches_elsewhere(tmp_path, index_videos, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(index_videos["vp9"], ro / "a.webm")
    (ro / "train.csv").write_text("a.webm 0\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
    finally:
        pass
    manifest, cache = default_paths(ro / "train.csv")
    assert str(manifest).startswith(str(tmp_path / "cache"))
    os.chmod(ro, 0o755)
