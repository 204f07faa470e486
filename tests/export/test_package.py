"""export.package and export.build: a package is checked against its graph before use, and is
written whole or not at all."""
import errno
import json
import shutil
import subprocess

import pytest

from apt_video import models
from apt_video.cli import main
from apt_video.export import (
    BackendUnavailable,
    PackageError,
    load_runner,
    verify,
    write_package,
)
from apt_video.export.package import _tidy


# -- an export folder is one thing: written whole, checked whole ------------------------------------------
def _edit_model_json(folder, change):
    data = json.loads((folder / "model.json").read_text())
    change(data)
    (folder / "model.json").write_text(json.dumps(data))


def test_a_package_that_does_not_match_its_graph_is_refused(tmp_path, exported):
    fewer = tmp_path / "fewer"
    shutil.copytree(exported, fewer)
    overrides = {**json.loads((fewer / "model.json").read_text())["card"]["model_overrides"], "num_classes": 2}
    _edit_model_json(fewer, lambda d: d["card"].update(classes=d["card"]["classes"][:2], model_overrides=overrides))
    with pytest.raises(PackageError, match="output width 4 does not match model.json"):
        load_runner(fewer)
    other = tmp_path / "other"
    shutil.copytree(exported, other)
    (other / "model.onnx").write_bytes((other / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(PackageError, match="sha256 differs"):
        load_runner(other)
    garbage = tmp_path / "garbage"
    shutil.copytree(exported, garbage)
    (garbage / "model.onnx").write_bytes(b"not a graph")
    _edit_model_json(garbage, lambda d: d["sha256"].update({"model.onnx": models.sha256_file(garbage / "model.onnx")}))
    with pytest.raises(BackendUnavailable, match="ONNX Runtime cannot load this graph"):
        load_runner(garbage)
    bf16 = tmp_path / "bf16"
    shutil.copytree(exported, bf16)
    _edit_model_json(bf16, lambda d: d.update(precision="bf16"))
    with pytest.raises(BackendUnavailable, match="no bf16 kernels on the CPU"):
        load_runner(bf16)


def test_re_export_replaces_the_folder_whole_and_a_failure_keeps_the_old_one(tmp_path, prompt_run, capsys):
    run, _ = prompt_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "-o", str(out), "--onnx-only", "--verify-clips", "0"]) == 0
    (out / "stale.txt").write_text("from an earlier export\n")
    first = (out / "model.json").read_bytes()
    assert main(["export", str(run), "-o", str(out), "--onnx-only", "--verify-clips", "0", "--attention",
                 "matmul"]) == 0
    assert not (out / "stale.txt").exists() and (out / "model.json").read_bytes() != first
    assert not list(tmp_path.glob(".exp.*"))  # no temporary or old folder left
    kept = (out / "model.json").read_bytes()

    verify.THRESHOLDS["fp32"] = (-1.0, -1.0, 2.0)  # a verification nothing can pass
    try:
        assert main(["export", str(run), "-o", str(out), "--onnx-only", "--verify-clips", "0"]) == 1
    finally:
        verify.THRESHOLDS["fp32"] = (1e-3, 1e-3, 1.0)
    assert "for inspection" in capsys.readouterr().out
    assert (out / "model.json").read_bytes() == kept and (tmp_path / "exp.rejected" / "model.json").is_file()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    assert main(["export", str(run), "-o", str(tmp_path / "notes"), "--onnx-only"]) == 2
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine\n"


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def full_disk(folder):
        (folder / "model.onnx").write_bytes(b"half a graph")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.onnx"))

    with pytest.raises(OSError, match="No space left"):
        write_package(tmp_path / "out", full_disk)
    assert list(tmp_path.iterdir()) == []  # no temporary folder, no half package


def test_an_export_killed_between_its_renames_is_put_back(tmp_path):
    """The folders of a killed export are put back or removed; those of one still running are not."""
    finished = [subprocess.Popen(["true"]) for _ in range(2)]
    dead = [p.pid for p in finished if p.wait() == 0]
    running = subprocess.Popen(["sleep", "60"])
    try:
        out = tmp_path / "exp"
        old = tmp_path / f".exp.old-{dead[0]}"
        old.mkdir()
        (old / "model.json").write_text("{}")
        (tmp_path / f".exp.tmp-{dead[1]}").mkdir()
        (tmp_path / f".exp.tmp-{running.pid}").mkdir()  # another export, building now
        _tidy(out)
        assert (out / "model.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".exp.tmp-{running.pid}", "exp"]
    finally:
        running.kill()
