"""tools.sweep: one run per varied value, then the plot and the summary across runs."""
import csv
import json

import pytest
import yaml

from apt_video.cli import main
from apt_video.tools.synth import make_motion_dataset


@pytest.mark.slow
def test_sweep_runs_each_value_then_plots(tmp_path, task_data, backbone_run, capsys):
    code = main(["sweep", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(tmp_path / "sw"),
                 "--vary", "prompt_dropout=0.0,0.3", "--set", "epochs=1", "--set", "num_workers=1",
                 "--set", "final_test=false", "--no-progress",
                 "--finetune", str(backbone_run[0] / "checkpoints" / "last.safetensors")])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == ["prompt_dropout=0.0", "prompt_dropout=0.3",
                                                                    "summary.csv", "summary.png", "sweep.png"]
    assert main(["sweep", "--preset", "demo", "--data-root", ".", "-o", str(tmp_path / "x"),
                 "--vary", "prompt_dropout=0.1,2"]) == 2


#: the seed's three ablation figures, as the README gives them (the values varied, nothing else)
ABLATIONS = {"prompt_dropout": "prompt_dropout=0,0.1,0.2",
             "aa": "aa=rand-m2-n2-mstd0.2-inc1,rand-m4-n2-mstd0.2-inc1,rand-m7-n4-mstd0.5-inc1",
             "weight_decay": "weight_decay=0,1e-4,1e-2"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    make_motion_dataset(root / "data", classes=2, per_class=5, frames=20, size=(48, 36), seed=7)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("key", list(ABLATIONS))
def test_the_three_ablations_write_a_summary_across_runs(tiny, tmp_path, key):
    """Each ablation of the README, 2 epochs on the micro model: summary.csv has one row per value,
    in the order given, with each run's final test top-1, top-5 and loss as its test_metrics.json
    holds them, and its best validation epoch as its metrics.csv says; summary.png is drawn."""
    out = tmp_path / key
    assert main(["sweep", "--preset", "demo", "--data-root", str(tiny / "data"), "-o", str(out),
                 "--vary", ABLATIONS[key], "--set", "epochs=2", "--set", "num_workers=0", "--set", "batch_size=4",
                 "--no-progress"]) == 0
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    values = ABLATIONS[key].split("=", 1)[1].split(",")
    assert [r[key] for r in rows] == values
    for row in rows:
        run = out / row["run"]
        test = json.loads((run / "test_metrics.json").read_text())
        assert float(row["test_top1"]) == test["top1"] and float(row["test_top5"]) == test["top5"]
        assert float(row["test_loss"]) == pytest.approx(test["loss"]) and test["loss"] > 0
        with open(run / "metrics.csv", newline="") as f:
            val = [(float(r["val_top1"]), -int(r["epoch"])) for r in csv.DictReader(f)]
        assert int(row["best_val_epoch"]) == -max(val)[1]
        written = yaml.safe_load((run / "config.yaml").read_text())[key]
        assert written == (row[key] if key == "aa" else pytest.approx(float(row[key])))
    assert (out / "summary.png").stat().st_size > 0 and (out / "sweep.png").is_file()
