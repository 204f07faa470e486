"""tools.demo: the reduced demo end to end (APT leads the linear probe on two seeds) and its checks
of the work folder."""
import dataclasses
import json
import shutil

import pytest

from apt_video.cli import main
from apt_video.pipeline.data import DataError
from apt_video.tools.demo import QUICK, compare_ways, make_data, run_ablation, run_demo


@pytest.mark.slow
def test_demo_reduced_shows_prompts_beat_a_linear_probe_on_two_seeds(tmp_path, capsys, task_data, backbone_run):
    """The reduced demo end to end (its task A and backbone are the session's: the same videos and
    preset), then task B on a second seed: APT leads the linear probe by at least 10 points on
    both, close to end2end with a few percent of its trainable parameters."""
    work, second = tmp_path / "demo", tmp_path / "seed1"
    for folder in (work, second):
        shutil.copytree(task_data / "A", folder / "taskA")
        shutil.copytree(backbone_run[0], folder / "runs" / "backbone")
    result = run_demo(work, quick=True, progress=False)
    out = capsys.readouterr().out
    assert "[6/6]" in out and "videos/s" in out
    table = out[out.index("task B, 24 held-out videos"):].splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["linear", "APT", "end2end"]
    for f in ("curves.png", "heldout_predictions.csv", "heldout_predictions.csv.metrics.json", "export/model.onnx",
              "runs/B_prompt/test_metrics.json"):
        assert (work / f).is_file(), f
    metrics = json.loads((work / "heldout_predictions.csv.metrics.json").read_text())
    apt = json.loads((work / "runs" / "B_prompt" / "test_metrics.json").read_text())
    assert metrics["videos"] == apt["videos"] == 24 and result.heldout_top1 == metrics["top1"]
    assert metrics["top1"] == pytest.approx(apt["top1"], abs=100 / 24 + 1e-9)  # the package scores as training tested

    ways = {w.transfer_type: w for w in result.ways}
    assert ways["prompt"].top1 == apt["top1"]
    make_data(second, QUICK, seed=1)
    again = {w.transfer_type: w for w in compare_ways(second, QUICK, seed=1, progress=False,
                                                      transfers=("linear", "prompt"))}
    for run in (ways, again):
        assert run["prompt"].top1 >= run["linear"].top1 + 10, (run["linear"].top1, run["prompt"].top1)
    assert ways["prompt"].trainable < 0.05 * ways["end2end"].trainable
    assert ways["end2end"].top1 >= ways["prompt"].top1 - 15

    figure = run_ablation(work, dataclasses.replace(QUICK, epochs=1), progress=False, say=lambda _: None)
    assert figure == work / "ablation" / "sweep.png" and figure.is_file()
    assert sorted(p.name for p in figure.parent.iterdir() if p.is_dir()) == [
        "prompt_dropout=0.0", "prompt_dropout=0.1", "prompt_dropout=0.2"]


def test_demo_refuses_a_work_folder_of_another_task_b(tmp_path):
    """Task B made with another seed or held-out count is refused, not trained on (its runs would
    be of another task); the refusal is one line, exit 2."""
    (tmp_path / "taskA").mkdir()
    (tmp_path / "taskA" / "classes.txt").write_text("a\n")
    (tmp_path / "lines").mkdir()
    (tmp_path / "lines" / "made.txt").write_text("seed 1, 6 held-out videos per class\n")
    with pytest.raises(DataError, match="made with seed 1, 6 held-out videos per class, not seed 0, 6"):
        make_data(tmp_path, QUICK)
    assert main(["demo", "--work", str(tmp_path), "--no-progress"]) == 2  # 10 held-out videos per class
