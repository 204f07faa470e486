"""The bench commands run end to end on small inputs and write their figures (no timing asserted)."""
import json
import subprocess
import sys

import pytest

from apt_video.cli import main as cli


def test_bench_loader_writes_ratios(tmp_path):
    out = tmp_path / "loader.json"
    assert cli(["bench", "loader", "--codecs", "vp9", "--videos", "8", "--batches", "2", "--interps",
                "nearest,bilinear", "--executors", "dynamic,pipelined", "--work", str(tmp_path / "w"),
                "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    r = res["vp9"]
    assert res["num_sample"] == 2 and r["ratio"] == r["ratio_nearest"]
    for key in ("ours_nearest_clips_per_s", "ours_bilinear_clips_per_s", "ours_bilinear_pipelined_clips_per_s",
                "baseline_clips_per_s", "decode_only_clips_per_s", "peak_pss_mb_nearest",
                "peak_pss_mb_nearest_pipelined"):
        assert r[key] > 0, key
    assert r["ratio_bilinear"] == pytest.approx(r["ours_bilinear_clips_per_s"] / r["baseline_clips_per_s"])


def test_bench_infer_times_int8_and_fp32_in_turn(tmp_path):
    out = tmp_path / "infer.json"
    assert cli(["bench", "infer", "--model", "vit_micro_patch16_112", "--reps", "1", "--precisions", "fp32,int8",
                "--rounds", "3", "--work", str(tmp_path / "w"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["int8_vs_fp32_by_round"]) == 3
    assert res["int8_vs_fp32"] == pytest.approx(res["int8_clips_per_s"] / res["fp32_clips_per_s_same_run"])
    assert min(res["int8_vs_fp32_by_round"]) > 0 and res["onnxruntime_clips_per_s"] > 0


def test_bench_score_agrees_with_the_baseline(tmp_path):
    out = tmp_path / "score.json"
    assert cli(["bench", "score", "--model", "vit_micro_patch16_112", "--videos", "2", "--frames", "24",
                "--work", str(tmp_path / "w"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ours_backend"] == "ort" and res["top1_agreement"] == 1.0
    assert res["ratio"] == pytest.approx(res["ours_videos_per_s"] / res["baseline_videos_per_s"])


@pytest.mark.slow
def test_bench_score_ray_against_the_local_engine(tmp_path):
    pytest.importorskip("ray.data", reason="the ray extra (make test installs it)")
    out = tmp_path / "ray.json"
    assert cli(["bench", "score", "--engine", "ray", "--model", "vit_micro_patch16_112", "--videos", "3",
                "--frames", "24", "--work", str(tmp_path / "w"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    local, ray = res["engines"]["local"], res["engines"]["ray"]
    assert res["same_predictions"] and local["ok"] == ray["ok"] == 3
    for e in (local, ray):
        assert e["startup_s"] > 0 and e["peak_pss_mb"] > 0
    assert res["ratio"] == pytest.approx(ray["steady_videos_per_s"] / local["steady_videos_per_s"])


def test_bench_score_int8_keeps_the_fp32_top1(tmp_path):
    out = tmp_path / "score8.json"
    assert cli(["bench", "score", "--precisions", "fp32,int8", "--model", "vit_micro_patch16_112", "--videos", "2",
                "--frames", "24", "--work", str(tmp_path / "w"), "--json", str(out)]) == 0
    r = json.loads(out.read_text())["int8"]
    assert r["passed"] and r["videos_per_s"] > 0 and r["calibration_clips"] >= 4
    assert r["top1_same_as_fp32"] == 1.0


def test_bench_startup_times_each_answer_against_import_torch(tmp_path):
    assert cli(["bench", "startup", "--runs", "1", "--json", str(tmp_path / "s.json")]) == 0
    res = json.loads((tmp_path / "s.json").read_text())
    assert res["baseline"] == "python -c 'import torch'" and res["slowest"].startswith("apt-video")
    assert set(res["commands"]) >= {"apt-video --help", "apt-video score (argument error)", "python (bare interpreter)"}
    assert res["ratio"] == pytest.approx(res["commands"][res["slowest"]] / res["commands"][res["baseline"]])


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["export", "--help"], ["train", "--help"],
                                  ["synth", "--help"], ["bench", "gpu", "--help"], ["score"]])
def test_help_and_argument_errors_import_no_torch(argv):
    """What keeps ``--help`` under a second (``bench startup`` measures it): no heavy module on that path."""
    code = ("import sys\nfrom apt_video.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'timm', 'nvidia.dali', 'onnxruntime', 'ray', 'transformers')\n"
            "         if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120).stdout
    assert "HEAVY []" in out, out[-500:]
