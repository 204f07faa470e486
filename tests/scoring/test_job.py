"""apt_video.scoring.job: what every engine shares. A row per video, in input order; a prediction
row holds the k best classes; a non-finite output is an error row; ``finish`` gives each video no
engine delivered an error row saying why (never a gap) and counts what was written."""
import time

import numpy as np

from apt_video.scoring.job import finish, prediction_row
from apt_video.scoring.rows import Row, open_writer, read_rows


def test_a_prediction_row_holds_the_k_best_classes():
    row = prediction_row("v.mp4", np.array([0.1, 0.6, 0.05, 0.25]), ["a", "b", "c", "d"], k=3)
    assert (row.status, row.pred, row.prob) == ("ok", "b", 0.6)
    assert [n for n, _ in row.top_k] == ["b", "d", "a"]
    assert prediction_row("v.mp4", np.array([0.5, np.nan]), ["a", "b"], 2).status == "error"


def test_finish_fills_every_video_no_engine_delivered(tmp_path):
    out, ids = tmp_path / "o.csv", ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    writer = open_writer(out, "csv", ids)
    writer.put(2, prediction_row("c.mp4", np.array([0.2, 0.8]), ["x", "y"], 2))
    writer.put(0, Row("a.mp4", "error", error="decode: broken"))
    result = finish(writer, done=0, clips=30, t0=time.perf_counter(), backend="ort", why="the engine stopped")
    rows = read_rows(out, "csv")
    assert [r["video"] for r in rows] == ids  # input order, one row each
    assert [r["status"] for r in rows] == ["error", "error", "ok", "error"]
    assert rows[1]["error"] == rows[3]["error"] == "the engine stopped"
    assert (result.ok, result.failed, result.skipped, result.total) == (1, 3, 0, 4)
