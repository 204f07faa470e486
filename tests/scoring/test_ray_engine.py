"""``score --engine ray``: the local engine's contract on a real local Ray cluster (bound to
127.0.0.1, started and shut down by each test): the same rows, bad videos as error rows, an actor
killed mid-job, a driver killed and resumed; and the torchrun engine's resume."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apt_video.cli import main
from apt_video.export import describe_model
from apt_video.pipeline.video import write_video
from apt_video.scoring.ray_engine import ViewDecoder, ViewScorer
from apt_video.tools.synth import make_motion_dataset, motion_clip

from videos import write_broken_videos

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def videos(tmp_path_factory, index_videos):
    """Task-B videos in nested folders, a video shorter than a clip (padded as VideoMAE pads), and
    files that fail at each stage: an empty file, text, a truncated MP4, random bytes, and a VP9
    stream whose middle was overwritten (the decoder meets the damage mid-stream)."""
    root = tmp_path_factory.mktemp("ray") / "ds"
    make_motion_dataset(root, classes=4, per_class=2, frames=24, size=(64, 48), offset_deg=45, split=(0, 0, 1),
                        seed=11)
    bad = root / "videos" / "zz_bad"
    write_broken_videos(bad, index_videos["h264"].read_bytes())
    rng = np.random.default_rng(2)
    write_video(root / "videos" / "short" / "three_frames.webm", motion_clip(45, 3, 64, 48, rng), "vp9")  # padded
    write_video(bad / "scrambled.webm", motion_clip(45, 24, 64, 48, rng), "vp9")
    data = bytearray((bad / "scrambled.webm").read_bytes())
    mid = len(data) // 3
    data[mid:mid + len(data) // 3] = np.random.default_rng(3).integers(0, 256, len(data) // 3, np.uint8).tobytes()
    (bad / "scrambled.webm").write_bytes(bytes(data))
    return root


@pytest.fixture(scope="module")
def local_rows(videos, exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "local.csv"
    main(["score", str(videos / "videos"), "--model", str(exported), "-o", str(out), "--no-progress",
          "--labels", str(videos / "test.csv")])
    return out


def _same_rows(a, b):
    assert [r["video"] for r in a] == [r["video"] for r in b]
    for x, y in zip(a, b):
        assert (x["video"], x["status"], x["pred"], x["error"]) == (y["video"], y["status"], y["pred"], y["error"])
        if x["prob"]:
            assert float(x["prob"]) == pytest.approx(float(y["prob"]), abs=1e-5)
            assert [n for n, _ in json.loads(x["top_k"])] == [n for n, _ in json.loads(y["top_k"])]


def test_ray_engine_gives_the_local_engines_rows(tmp_path, videos, exported, local_rows, capsys):
    out = tmp_path / "ray.csv"
    code = main(["score", str(videos / "videos"), "--model", str(exported), "-o", str(out), "--no-progress",
                 "--engine", "ray", "--labels", str(videos / "test.csv")])
    assert code == 1  # the broken files are error rows, as in the local engine; nothing aborted
    printed = capsys.readouterr().out
    assert "ray: first row after" in printed and "scored 14 videos:" in printed
    rows = read_csv(out)
    _same_rows(read_csv(local_rows), rows)
    errors = {r["video"]: r["error"] for r in rows if r["status"] == "error"}
    assert {f"zz_bad/{n}" for n in ("zero.webm", "random.avi", "notes.mp4", "truncated.mp4")} <= set(errors)
    assert next(r for r in rows if r["video"] == "short/three_frames.webm")["status"] == "ok"
    assert all(errors.values())
    ours = json.loads(Path(str(out) + ".metrics.json").read_text())
    theirs = json.loads(Path(str(local_rows) + ".metrics.json").read_text())
    assert ours == theirs
    import ray
    assert not ray.is_initialized()  # the cluster this run started is shut down


def _ray_workers(name: str) -> list[int]:
    """PIDs of Ray Data's actor processes of stage ``name`` (their process title names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and b"ray::" in cmd and name.encode() in cmd:
            pids.append(int(proc.name))
    return pids


def _wait(cond, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and not cond():
        time.sleep(0.1)
    return cond()


def _rows_in(out: Path) -> int:
    return out.read_text().count("\n") - 1 if out.is_file() else 0


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    data = tmp_path_factory.mktemp("many")
    make_motion_dataset(data, classes=4, per_class=6, frames=24, size=(64, 48), offset_deg=45, split=(0, 0, 1), seed=5)
    return data / "videos"


def _cmd(many, exported, out, *extra):
    return [sys.executable, "-m", "apt_video.cli", "score", str(many), "--model", str(exported), "-o", str(out),
            "--no-progress", "--views", "4x3", "--engine", "ray", *extra]


def test_actors_killed_mid_job_are_replaced_and_their_videos_scored(tmp_path, many, exported):
    out = tmp_path / "k.csv"
    proc = subprocess.Popen(_cmd(many, exported, out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        # a scoring actor, and the decoding actors while they run (they may be done with every video
        # before the second row is out)
        assert _wait(lambda: (_rows_in(out) >= 2 and _ray_workers("ViewScorer")) or proc.poll() is not None)
        victims = _ray_workers("ViewScorer") + _ray_workers("ViewDecoder")
        assert proc.poll() is None and victims, "the job ended before its actors could be killed"
        for pid in victims:  # as an OOM kill or a lost node would
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err.decode()[-2000:]
    rows = read_csv(out)
    expect = sorted(os.path.relpath(p, many) for p in many.rglob("*.webm"))
    assert [r["video"] for r in rows] == expect and all(r["status"] == "ok" for r in rows)
    local = tmp_path / "local.csv"
    assert main(["score", str(many), "--model", str(exported), "-o", str(local), "--no-progress", "--views",
                 "4x3"]) == 0
    _same_rows(read_csv(local), rows)


def test_a_killed_driver_resumes_without_loss_or_duplicates(tmp_path, many, exported):
    out = tmp_path / "r.csv"
    cmd = _cmd(many, exported, out, "--resume")
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert _wait(lambda: _rows_in(out) >= 3 or proc.poll() is not None)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its local cluster must go with it
        proc.wait()
        assert _wait(lambda: not _ray_workers("ViewScorer"), 60), "the cluster outlived its driver"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = read_csv(out)
    assert 3 <= len(before) < 24
    with open(out, "a") as f:
        f.write('"half written,ok')  # the torn row a kill can leave
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(before)} already done" in res.stdout
    after = read_csv(out)
    expect = sorted(os.path.relpath(p, many) for p in many.rglob("*.webm"))
    assert [r["video"] for r in after] == expect  # each once, in order
    assert after[:len(before)] == before


def test_a_plan_the_cluster_cannot_hold_is_refused_in_one_line(tmp_path, videos, exported, capsys):
    out = tmp_path / "g.csv"
    assert main(["score", str(videos / "videos"), "--model", str(exported), "-o", str(out), "--engine", "ray",
                 "--gpus-per-actor", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GPUs" in err[0] and "--gpus-per-actor" in err[0]
    assert _rows_in(out) == 0


def test_without_ray_the_message_names_the_extra(tmp_path, videos, exported):
    code = ("import sys; sys.modules['ray'] = None; from apt_video.cli import main; "
            f"sys.exit(main(['score', {str(videos / 'videos')!r}, '--model', {str(exported)!r}, '-o', "
            f"{str(tmp_path / 'n.csv')!r}, '--engine', 'ray']))")
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["apt-video score: error: --engine ray needs Ray Data: pip install "
                                                     "'apt-video[ray]'"]


def test_torchrun_resume_skips_the_rows_already_in_out(tmp_path, many, exported):
    out = tmp_path / "t.csv"
    assert main(["score", str(many), "--model", str(exported), "-o", str(out), "--no-progress", "--views",
                 "4x3"]) == 0
    full = out.read_bytes()
    rows = read_csv(out)
    keep = len(b"".join(line + b"\r\n" for line in full.split(b"\r\n")[:10]))  # the header and 9 rows
    out.write_bytes(full[:keep] + b"videos/torn,")
    stale = tmp_path / ".t.csv.rank0of2"  # rank 0's part from a run killed when OUT held no rows yet
    stale.write_bytes(b"".join(line + b"\r\n" for line in full.split(b"\r\n")[:3]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           "-m", "apt_video.cli", "score", str(many), "--model", str(exported), "-o", str(out), "--no-progress",
           "--views", "4x3", "--workers", "1", "--resume"]
    res = subprocess.run(cmd, env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "9 already done" in res.stdout
    after = read_csv(out)
    assert [r["video"] for r in after] == [r["video"] for r in rows]
    _same_rows(rows, after)
    assert out.read_bytes()[:keep] == full[:keep]
    assert not stale.exists()


def test_a_model_the_actors_cannot_load_is_refused_before_any_row(tmp_path, videos, exported, capsys):
    out = tmp_path / "m.csv"
    assert main(["score", str(videos / "videos"), "--model", str(exported), "-o", str(out), "--engine", "ray",
                 "--backend", "trt", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TensorRT" in err[0], err
    assert not out.exists()  # no header-only file that would block the next run
    out.touch()  # a file the user made is kept as it was
    assert main(["score", str(videos / "videos"), "--model", str(exported), "-o", str(out), "--engine", "ray",
                 "--backend", "trt", "--no-progress"]) == 2
    assert out.is_file() and out.stat().st_size == 0


def test_the_gpu_plan_decoding_in_the_scoring_actor_gives_the_same_rows(videos, exported):
    """With GPUs the scoring actor decodes its videos itself (``decode=True``): here its stage code
    runs on the CPU, in this process, against the two-stage plan's (decoder, then scorer)."""
    card, _ = describe_model(exported)
    paths = np.array(sorted(str(p) for p in (videos / "videos").rglob("*") if p.is_file())[-7:], dtype=object)
    batch = {"pos": np.arange(len(paths)), "path": paths}
    kw = dict(model=str(exported), backend="auto", pretrained=None, task=None, spec=card.clip, batch=30)
    fused = ViewScorer(**kw, decode=True)(batch)
    staged = ViewScorer(**kw, decode=False)(ViewDecoder(card.clip)(batch))
    assert list(fused["pos"]) == list(staged["pos"]) and list(fused["error"]) == list(staged["error"])
    assert sum(not e for e in fused["error"]) >= 2 and sum(bool(e) for e in fused["error"]) >= 4
    np.testing.assert_allclose(fused["probs"], staged["probs"], atol=1e-6)
