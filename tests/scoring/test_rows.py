"""scoring.rows: the output files: class names survive the top-k column, torn rows resume, odd file
names are written losslessly, a second run is refused, the existing file's format is kept."""
import json
import os

import numpy as np
import pytest

from apt_video.pipeline.video import write_video
from apt_video.scoring.rows import OutputLock, Resume, Row, RowWriter, choose_format, read_rows
from apt_video.tools.synth import motion_clip

from scoring_kit import score_cli


@pytest.mark.parametrize("name", [b"caf\xe9.webm", b"two\rlines.webm", b"comma, \"quote\".webm"])
def test_odd_file_names_are_written_losslessly_and_resume(tmp_path, exported, name):
    folder = tmp_path / "v"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in (b"a.webm", name, b"z.webm"):
        write_video(os.fsdecode(os.path.join(os.fsencode(folder), n)), motion_clip(0, 24, 64, 48, rng), "vp9")
    out = tmp_path / "o.csv"
    assert score_cli(folder, "--model", exported, "-o", out) == 0
    videos = [r["video"] for r in read_rows(out)]
    assert os.fsencode(videos[1]) == name and len(videos) == 3
    data = out.read_bytes()
    assert name.replace(b'"', b'""') in data  # the very bytes of the name
    assert score_cli(folder, "--model", exported, "-o", out, "--resume") == 0
    assert out.read_bytes() == data  # nothing to add, nothing changed
    jl = tmp_path / "o.jsonl"
    assert score_cli(folder, "--model", exported, "-o", jl) == 0
    assert os.fsencode(json.loads(jl.read_text().splitlines()[1])["video"]) == name


def test_resume_refuses_rows_of_another_input(tmp_path, folder, exported, capsys):
    out = tmp_path / "o.csv"
    assert score_cli(folder / "test.csv", "--model", exported, "-o", out) == 0
    before = out.read_bytes()
    assert score_cli(folder / "videos", "--model", exported, "-o", out, "--resume") == 2
    assert "written for another input" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_a_second_run_on_the_same_output_is_refused(tmp_path, folder, exported, capsys):
    out = tmp_path / "o.csv"
    with OutputLock(out):
        assert score_cli(folder / "test.csv", "--model", exported, "-o", out, "--resume") == 2
    assert "another apt-video run" in capsys.readouterr().err
    assert score_cli(folder / "test.csv", "--model", exported, "-o", out, "--resume") == 0  # the lock is gone


def test_format_is_the_existing_files(tmp_path, folder, exported):
    out = tmp_path / "x.csv"
    assert score_cli(folder / "test.csv", "--model", exported, "-o", out, "--format", "jsonl") == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:5]) + "\n")
    assert score_cli(folder / "test.csv", "--model", exported, "-o", out, "--resume") == 0
    assert [json.loads(x)["video"] for x in out.read_text().splitlines()] == [json.loads(x)["video"] for x in lines]


def test_class_names_with_separators_survive_the_top_k_column(tmp_path):
    out = tmp_path / "r.csv"
    w = RowWriter(out, "csv", ["v"])
    w.put(0, Row("v", "ok", "a;b:c", 0.75, [("a;b:c", 0.75), ('x,"y"', 0.25)]))
    w.close()
    (row,) = read_rows(out)
    assert row["top_k"] == [("a;b:c", 0.75), ('x,"y"', 0.25)]


def test_a_jsonl_output_torn_in_its_first_row_resumes(tmp_path, folder, exported):
    out = tmp_path / "o.jsonl"
    out.write_text('{"video": "videos/move_045.0deg/mo')
    assert choose_format(out, None) == "jsonl"
    r = Resume.read(out, "jsonl")
    assert r.videos == [] and r.torn > 0
    assert score_cli(folder / "test.csv", "--model", exported, "-o", out, "--resume") == 0
    assert len(out.read_text().splitlines()) == 12


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_output_is_an_error_row_never_ok(bad):
    from apt_video.scoring.job import prediction_row
    probs = np.array([0.2, bad, 0.5], dtype=np.float32)
    row = prediction_row("v.mp4", probs, ["a", "b", "c"], k=2)
    assert (row.status, row.pred, row.prob, row.top_k) == ("error", "", None, [])
    assert "non-finite" in row.error
    good = prediction_row("v.mp4", np.array([0.2, 0.3, 0.5], dtype=np.float32), ["a", "b", "c"], k=2)
    assert good.status == "ok" and good.pred == "c" and [n for n, _ in good.top_k] == ["c", "b"]
