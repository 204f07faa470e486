"""``apt-video bench gpu``: refused in one line where there is no GPU; the stage runner reports a
stage that raises, runs the next, and leaves valid JSON after every stage; the stages themselves run
the library's own loader, runners, training step and scoring (here at toy sizes, on the CPU)."""
import json

import pytest
import torch

from apt_video.cli import main
from apt_video.tools.bench.gpu import run_gpu_bench
from apt_video.tools.bench.gpu_runner import Deadline, Plan, Stage, measurements, run_stages

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU: the bench would run")


@NO_GPU
def test_refused_in_one_line_without_a_gpu(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--json", str(out), "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU is visible" in err[0]
    assert not out.exists() and not (tmp_path / "w").exists()


def test_bad_stages_and_json_folder_are_refused_first(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:  # the option's own type: refused while parsing
        main(["bench", "gpu", "--stages", "loader,bogus"])
    assert refused.value.code == 2
    assert "--stages: 'bogus': choose from loader, infer, train, score" in capsys.readouterr().err
    assert main(["bench", "gpu", "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_stage_that_raises_is_reported_the_next_runs_and_the_json_is_valid_after_each(tmp_path, capsys):
    path = tmp_path / "gpu.json"
    seen = []

    def first(plan, work, deadline, state):
        state["first"] = True
        return {"one": {"clips_per_s": 1.0}}

    def broken(plan, work, deadline, state):
        seen.append(json.loads(path.read_text()))  # written after the first stage
        raise RuntimeError("the device went away")

    def last(plan, work, deadline, state):
        seen.append(json.loads(path.read_text()))  # and after the broken one
        return {"state": {"kept": state["first"]}}

    result = run_stages([Stage("first", first), Stage("broken", broken), Stage("last", last)], Plan.micro(),
                        tmp_path, path, say=lambda _: None)
    assert list(seen[0]["stages"]) == ["first"] and seen[0]["stages"]["first"]["status"] == "ok"
    assert seen[1]["stages"]["broken"]["status"] == "failed"
    assert "the device went away" in seen[1]["stages"]["broken"]["error"]
    assert "Traceback" in seen[1]["stages"]["broken"]["traceback"]
    assert result["stages"]["last"] == {**json.loads(path.read_text())["stages"]["last"]}
    assert result["stages"]["last"]["state"] == {"kept": True}
    assert "the device went away" in capsys.readouterr().err  # the traceback is printed


def test_measurements_stop_at_the_deadline_and_survive_a_failure():
    def fails():
        raise ValueError("no such codec")

    deadline = Deadline(60)
    out = measurements([("a", lambda: {"x_per_s": 2.0}), ("b", fails), ("a", lambda: {"x_per_s": 9.0})], deadline,
                       say=lambda _: None)
    assert out == {"a": {"x_per_s": 2.0}, "b": {"error": "ValueError: no such codec"}}
    spent = Deadline(0)
    assert measurements([("c", lambda: {})], spent, say=lambda _: None) == {
        "c": {"skipped": "the stage's 0 s were spent"}}


@pytest.mark.slow
def test_every_stage_runs_the_library_at_toy_sizes(tmp_path):
    plan = Plan.micro()
    result = run_gpu_bench(tmp_path / "gpu.json", tmp_path, plan=plan, say=lambda _: None)
    stages = result["stages"]
    assert [s["status"] for s in stages.values()] == ["ok"] * 4, {k: v.get("error") for k, v in stages.items()}
    loader = stages["loader"]
    for name in ("vp9 ours b2 pool 2", "vp9 decode only b2", "vp9 crop+normalise b2", "vp9 videomae decord b2"):
        assert loader[name]["clips_per_s"] > 0, name
    assert loader["vp9 ours b2 pool 2"]["routes"] == {"dali": 4, "pyav": 0}  # VP9: DALI's CPU decoder
    assert "GPU only" in loader["vp9 dali reader b2"]["skipped"]
    infer = stages["infer"]
    for name in ("vit_micro_patch16_112 torch fp32", "vit_micro_patch16_112 ort fp32"):
        assert infer[name]["clips_per_s"] > 0 and 0 < infer[name]["fraction_of_floor"]
    assert "skipped" in infer["vit_micro_patch16_112 tensorrt fp16"]
    train = stages["train"]
    assert all(train[f"{t} b2"]["clips_per_s"] > 0 for t in ("prompt", "linear", "end2end"))
    assert train["loop prompt"]["share"] > 0 and train["loop prompt"]["clips_per_step"] == 2
    for backend in ("ort fp32", "torch fp32"):
        s = stages["score"][backend]
        assert s["ok"] == s["rows"] == plan.score_videos and s["first_row_s"] > 0
    assert json.loads((tmp_path / "gpu.json").read_text())["stages"].keys() == stages.keys()
