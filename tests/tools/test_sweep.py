"""tools.sweep: one run per varied value, then the plot."""
import pytest

from apt_video.cli import main


@pytest.mark.slow
def test_sweep_runs_each_value_then_plots(tmp_path, task_data, backbone_run, capsys):
    code = main(["sweep", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(tmp_path / "sw"),
                 "--vary", "prompt_dropout=0.0,0.3", "--set", "epochs=1", "--set", "num_workers=1",
                 "--set", "final_test=false", "--no-progress",
                 "--finetune", str(backbone_run[0] / "checkpoints" / "last.safetensors")])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == ["prompt_dropout=0.0", "prompt_dropout=0.3",
                                                                    "sweep.png"]
    assert main(["sweep", "--preset", "demo", "--data-root", ".", "-o", str(tmp_path / "x"),
                 "--vary", "prompt_dropout=0.1,2"]) == 2
