"""apt_video.runfolder: what a run writes besides its weights, what --overwrite removes, and the
check that a resume keeps the settings that shape the trained tensors."""
import pytest

from apt_video.config import ConfigError, load_config
from apt_video.runfolder import (
    RUN_OUTPUTS,
    check_resumable,
    load_state,
    remove_run,
    save_state,
    write_metrics,
    write_skipped,
)


def test_metrics_and_skipped_files(tmp_path):
    write_metrics(tmp_path, [{"epoch": 0, "train_loss": 1.23456789, "val_top1": 50.0}, {"epoch": 1, "extra": 3}])
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "epoch,train_loss,val_loss,val_top1,val_top5,lr,clips_per_s", "0,1.23457,,50,,,", "1,,,,,,"]
    rows = [("train", "b.mp4", "decode-error", "x"), ("val", "a.mp4", "missing", "y"), ("train", "b.mp4",
                                                                                        "decode-error", "x")]
    write_skipped(tmp_path, rows)  # each once, sorted
    assert (tmp_path / "skipped.csv").read_text().splitlines() == [
        "split,path,status,reason", "train,b.mp4,decode-error,x", "val,a.mp4,missing,y"]


def test_overwrite_removes_what_a_run_wrote_and_nothing_else(tmp_path):
    for name in RUN_OUTPUTS:
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    remove_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt"]


def test_a_resume_keeps_the_shaping_settings_and_a_bad_state_file_is_named(tmp_path):
    cfg = load_config("demo")
    save_state(tmp_path / "s.pt", {"config": cfg.to_dict()})
    check_resumable(load_state(tmp_path / "s.pt"), cfg)
    other = load_config("demo", sets=["prompt_num_tokens=16", "clip.num_frames=4", "lr=0.5"])  # lr may change
    with pytest.raises(ConfigError, match=r"clip.num_frames: 8 -> 4; prompt_num_tokens: 8 -> 16\)"):
        check_resumable({"config": cfg.to_dict()}, other)
    (tmp_path / "bad.pt").write_bytes(b"not a state")
    with pytest.raises(Exception, match="bad.pt: cannot resume from this file"):
        load_state(tmp_path / "bad.pt")
