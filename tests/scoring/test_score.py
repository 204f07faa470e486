"""Scoring folders: one row per video in input order, errors reported, predictions equal to
PyTorch on the same views, resume after a kill, labels, formats, torchrun shards, the demo."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from apt_video import models
from apt_video.cli import main
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import probe_dataset
from apt_video.pipeline.video import write_video
from apt_video.tools.synth import make_motion_dataset, motion_clip

from scoring_kit import score_cli

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folder_rows_in_order_with_statuses(tmp_path, folder, exported, capsys):
    out = tmp_path / "p.csv"
    code = main(["score", str(folder / "videos"), "--model", str(exported), "-o", str(out), "--no-progress"])
    assert code == 1  # some videos failed
    rows = read_csv(out)
    videos = [r["video"] for r in rows]
    expect = sorted(os.path.relpath(p, folder / "videos") for p in (folder / "videos").rglob("*") if p.is_file())
    assert not any(v.startswith(".") or "manifest" in v for v in expect)  # nothing written into the input
    assert videos == expect
    status = {r["video"]: (r["status"], r["error"]) for r in rows}
    for name in ("zz_bad/zero.webm", "zz_bad/notes.mp4", "zz_bad/truncated.mp4", "zz_bad/random.avi"):
        assert status[name][0] == "error" and status[name][1], name
    assert status["zz_bad/zero.webm"][1].startswith("empty")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 14
    for r in ok:
        top = json.loads(r["top_k"])
        assert top[0][0] == r["pred"] and float(top[0][1]) == pytest.approx(float(r["prob"]))
        assert len(top) == 4 and abs(sum(float(p) for _, p in top) - 1) < 1e-3
    assert "scored 18 videos: 14 ok, 4 failed" in capsys.readouterr().out


def test_predictions_equal_pytorch_on_the_same_views(tmp_path, folder, exported, prompt_run):
    out = tmp_path / "t.csv"
    main(["score", str(folder / "test.csv"), "--model", str(prompt_run[0]), "-o", str(out), "--backend", "torch",
          "--no-progress", "--batch", "7"])
    rows = read_csv(out)
    model, card = models.build_from_trained(prompt_run[0] / "checkpoints" / "best.safetensors")
    entries, _ = probe_dataset(open_dataset(folder / "test.csv"), None, progress=False)
    loader = VideoLoader(entries, card.clip, mode="test", batch_size=1, num_workers=1)
    for b in loader.epoch(0):
        with torch.no_grad():
            probs = torch.softmax(model(b.video[0]), -1).mean(0)
        row = rows[b.ids[0]]
        assert row["pred"] == card.classes[int(probs.argmax())]
        assert float(row["prob"]) == pytest.approx(float(probs.max()), abs=2e-6)
    ort_out = tmp_path / "o.csv"
    main(["score", str(folder / "test.csv"), "--model", str(exported), "-o", str(ort_out), "--no-progress"])
    for a, b in zip(rows, read_csv(ort_out)):
        assert a["pred"] == b["pred"] and float(a["prob"]) == pytest.approx(float(b["prob"]), abs=1e-4)


def test_labels_accuracy_matches_a_hand_count(tmp_path, folder, exported):
    out = tmp_path / "l.csv"
    main(["score", str(folder / "videos"), "--model", str(exported), "-o", str(out), "--labels",
          str(folder / "test.csv"), "--no-progress"])
    classes = (folder / "classes.txt").read_text().split()
    truth = {line.rsplit(" ", 1)[0].removeprefix("videos/"): classes[int(line.rsplit(" ", 1)[1])]
             for line in (folder / "test.csv").read_text().splitlines()}
    rows = [r for r in read_csv(out) if r["video"] in truth]
    hand = 100 * sum(r["pred"] == truth[r["video"]] for r in rows) / len(rows)
    metrics = json.loads((tmp_path / "l.csv.metrics.json").read_text())
    assert metrics["videos"] == 12 and metrics["top1"] == pytest.approx(hand)
    assert metrics["top5"] == 100.0
    assert sum(v["videos"] for v in metrics["per_class"].values()) == 12
    assert len(metrics["unlabelled"]) == 2  # the two extra videos have no label


def test_jsonl_and_csv_agree(tmp_path, folder, exported):
    main(["score", str(folder / "videos"), "--model", str(exported), "-o", str(tmp_path / "a.csv"), "--no-progress"])
    main(["score", str(folder / "videos"), "--model", str(exported), "-o", str(tmp_path / "a.jsonl"), "--no-progress"])
    rows = read_csv(tmp_path / "a.csv")
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["video"] for r in rows] == [j["video"] for j in lines]
    for r, j in zip(rows, lines):
        assert r["status"] == j["status"] and (r["pred"] or None) == j["pred"]
        if j["prob"] is not None:
            assert float(r["prob"]) == pytest.approx(j["prob"], abs=1e-6)
        assert json.loads(r["top_k"] or "[]") == j["top_k"]  # one shape: [["class", prob], ...] in both


def test_output_never_overwrites(tmp_path, folder, exported, capsys):
    assert main(["score", str(folder / "test.csv"), "--model", str(exported), "-o", str(folder / "test.csv")]) == 2
    assert "not an apt-video score output" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("keep me\n")
    for resume in ([], ["--resume"]):
        assert main(["score", str(folder / "test.csv"), "--model", str(exported), "-o", str(tmp_path / "x.csv")]
                    + resume) == 2
        assert (tmp_path / "x.csv").read_text() == "keep me\n"
    # the exported graph itself, named as OUT with --resume, is refused and left intact
    graph = exported / "model.onnx"
    before = graph.read_bytes()
    assert main(["score", str(folder / "test.csv"), "--model", str(exported), "-o", str(graph), "--resume"]) == 2
    assert "not an apt-video score output" in capsys.readouterr().err
    assert graph.read_bytes() == before


def test_resume_after_kill_loses_nothing(tmp_path, exported, prompt_run, kill_when):
    data = tmp_path / "many"
    make_motion_dataset(data, classes=4, per_class=8, frames=24, size=(64, 48), offset_deg=45, split=(0, 0, 1), seed=5)
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "apt_video.cli", "score", str(data / "videos"), "--model", str(exported),
           "-o", str(out), "--no-progress", "--views", "4x3", "--batch", "12", "--workers", "1", "--resume"]
    kill_when(cmd, lambda: out.is_file() and out.read_text().count("\n") >= 4, ENV)
    before = read_csv(out)
    assert 3 <= len(before) < 32
    with open(out, "a") as f:
        f.write('"videos/half\nwritten-row",o')  # a torn last row with a quoted newline, as a kill leaves
    assert subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    after = read_csv(out)
    expect = sorted(os.path.relpath(p, data / "videos") for p in (data / "videos").rglob("*.webm"))
    assert [r["video"] for r in after] == expect  # each once, in order
    assert after[:len(before)] == before


@pytest.mark.slow
def test_two_torchrun_ranks_give_the_same_rows(tmp_path, folder, exported):
    single = tmp_path / "one.csv"
    main(["score", str(folder / "videos"), "--model", str(exported), "-o", str(single), "--no-progress"])
    multi = tmp_path / "two.csv"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "apt_video.cli", "score", str(folder / "videos"), "--model", str(exported), "-o", str(multi),
           "--no-progress", "--workers", "1"]
    res = subprocess.run(cmd, env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stderr[-2000:]  # the broken files fail in both
    a, b = read_csv(single), read_csv(multi)
    assert [r["video"] for r in a] == [r["video"] for r in b]
    for x, y in zip(a, b):
        assert (x["status"], x["pred"]) == (y["status"], y["pred"])
        if x["prob"]:
            assert float(x["prob"]) == pytest.approx(float(y["prob"]), abs=1e-5)
    assert not list(tmp_path.glob(".two.csv.rank*"))


def test_a_file_broken_after_probing_and_listed_twice_gives_every_row(tmp_path, exported, capsys):
    """A video listed twice that fails at decode (after its probe was cached) used to stop every
    later row, with exit 0 and '1 ok, 0 failed'."""
    rng = np.random.default_rng(0)
    for name in ("a", "bad", "c", "d"):
        write_video(tmp_path / f"{name}.webm", motion_clip(45, 24, 64, 48, rng), "vp9")
    (tmp_path / "list.txt").write_text("a.webm 0\nbad.webm 1\nc.webm 2\nbad.webm 1\nd.webm 0\n")
    assert score_cli(tmp_path / "list.txt", "--model", exported, "-o", tmp_path / "first.csv") == 0
    bad = tmp_path / "bad.webm"
    st = bad.stat()
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, st.st_size, dtype=np.uint8).tobytes())
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))  # the cached probe still matches
    capsys.readouterr()
    assert score_cli(tmp_path / "list.txt", "--model", exported, "-o", tmp_path / "second.csv") == 1
    rows = read_csv(tmp_path / "second.csv")
    assert [(r["video"], r["status"]) for r in rows] == [("a.webm", "ok"), ("bad.webm", "error"), ("c.webm", "ok"),
                                                         ("bad.webm", "error"), ("d.webm", "ok")]
    assert "scored 5 videos: 3 ok, 2 failed" in capsys.readouterr().out


def test_links_keep_their_own_names_and_dangling_links_get_rows(tmp_path, exported):
    write_video(tmp_path / "v" / "real.webm", motion_clip(0, 24, 64, 48, np.random.default_rng(0)), "vp9")
    (tmp_path / "v" / "link.webm").symlink_to("real.webm")
    (tmp_path / "v" / "gone.webm").symlink_to("nowhere.webm")
    (tmp_path / "v" / "sub").mkdir()
    (tmp_path / "v" / "sub" / "loop").symlink_to("..")
    (tmp_path / "v" / "folder.mp4").mkdir()  # a folder named like a video is not one
    assert score_cli(tmp_path / "v", "--model", exported, "-o", tmp_path / "l.csv") == 1
    rows = {r["video"]: r for r in read_csv(tmp_path / "l.csv")}
    assert sorted(rows) == ["gone.webm", "link.webm", "real.webm"]
    assert rows["gone.webm"]["status"] == "error" and "link" in rows["gone.webm"]["error"]
    assert rows["link.webm"]["pred"] == rows["real.webm"]["pred"]


@pytest.mark.parametrize("args,message", [
    (["--batch", "-5"], "--batch: '-5': must be at least 1"),
    (["--top-k", "0"], "--top-k: '0': must be at least 1"),
    (["--workers", "0"], "--workers: '0': must be at least 1"),
    (["--views", "0x3"], "both numbers must be >= 1"),
])
def test_numeric_options_are_range_checked(tmp_path, folder, exported, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        score_cli(folder / "test.csv", "--model", exported, "-o", tmp_path / "o.csv", *args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_workers_under_the_ray_engine_are_refused_not_ignored(tmp_path, folder, exported, capsys):
    assert score_cli(folder / "test.csv", "--model", exported, "-o", tmp_path / "r.csv", "--engine", "ray",
                  "--workers", "4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--decode-cpus" in err[0] and not (tmp_path / "r.csv").exists()


def test_output_problems_are_one_line(tmp_path, folder, exported, capsys):
    assert score_cli(folder / "test.csv", "--model", exported, "-o", tmp_path / "no" / "such" / "o.csv") == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert score_cli(folder / "test.csv", "--model", exported, "-o", "/dev/full") == 2  # a full disk
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_single_video_is_scored(tmp_path, folder, exported):
    video = next((folder / "videos").rglob("*.webm"))
    assert score_cli(video, "--model", exported, "-o", tmp_path / "one.csv") == 0
    (row,) = read_csv(tmp_path / "one.csv")
    assert row["video"] == video.name and row["status"] == "ok"


def test_decode_workers_die_with_a_killed_scorer(tmp_path, exported):
    data = tmp_path / "many"
    make_motion_dataset(data, classes=4, per_class=6, frames=24, size=(64, 48), offset_deg=45, split=(0, 0, 1), seed=5)
    proc = subprocess.Popen([sys.executable, "-m", "apt_video.cli", "score", str(data / "videos"), "--model",
                             str(exported), "-o", str(tmp_path / "o.csv"), "--no-progress", "--workers", "2"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def children():
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    out = tmp_path / "o.csv"
    deadline = time.time() + 120  # scoring has begun (rows written): DALI's decode workers are up
    while time.time() < deadline and proc.poll() is None and not (out.is_file() and out.read_text().count("\n") >= 2
                                                                  and len(children()) >= 2):
        time.sleep(0.1)
    workers = children()
    assert len(workers) >= 2, "the scorer ended before its decode workers started"
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, as an OOM kill does
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, f"orphaned decode workers: {alive}"


def test_labels_are_read_before_any_scoring(tmp_path, folder, exported, capsys):
    out = tmp_path / "o.csv"
    assert score_cli(folder / "videos", "--model", exported, "-o", out, "--labels", tmp_path / "nope.txt") == 2
    assert not out.exists()
    (tmp_path / "far.txt").write_text("videos/x.webm 9\n")
    assert score_cli(folder / "videos", "--model", exported, "-o", out, "--labels", tmp_path / "far.txt") == 2
    assert "beyond the model's 4 classes" in capsys.readouterr().err and not out.exists()


def test_ctrl_c_prints_one_line_and_the_run_resumes(tmp_path, exported, kill_when):
    """Ctrl-C reaches the command and its loader workers: one line says how to go on, exit 130,
    and ``--resume`` completes the rows."""
    data = tmp_path / "many"
    make_motion_dataset(data, classes=4, per_class=8, frames=24, size=(64, 48), offset_deg=45, split=(0, 0, 1), seed=6)
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "apt_video.cli", "score", str(data / "videos"), "--model", str(exported),
           "-o", str(out), "--no-progress", "--views", "4x3", "--batch", "4", "--workers", "1", "--resume"]
    code, err = kill_when(cmd, lambda: out.is_file() and out.read_text().count("\n") >= 3, ENV, sig=signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "\r" not in err  # stderr is a file, not a terminal: no progress bar frames
    assert [line for line in err.splitlines() if "interrupted" in line] == [
        "apt-video score: interrupted; the same command with --resume continues after the rows written"]
    assert subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    expect = sorted(os.path.relpath(p, data / "videos") for p in (data / "videos").rglob("*.webm"))
    assert [r["video"] for r in read_csv(out)] == expect
