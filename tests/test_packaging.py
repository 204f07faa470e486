"""A regular (non-editable) install carries everything the commands read at run time."""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_installed_copy_finds_its_presets(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("models", "pipeline", "export", "apt_video", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    assert sorted(p.name for p in (site / "apt_video" / "presets").glob("*.yaml")) == \
        sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    # every module of the source tree, under its import name (a package left out of pyproject's list
    # installs nothing and fails only when a command imports it)
    want = {f"apt_video/{top}/{p.relative_to(src / top)}" if top != "apt_video" else
            f"apt_video/{p.relative_to(src / top)}"
            for top in ("models", "pipeline", "export", "apt_video") for p in (src / top).rglob("*.py")}
    have = {str(p.relative_to(site)) for p in (site / "apt_video").rglob("*.py")}
    assert want - have == set(), f"missing from a regular install: {sorted(want - have)}"
    shutil.rmtree(src)  # nothing may be read from the source tree any more
    # -S: no site hooks, so the editable install of the checkout cannot shadow the installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    code = ("import apt_video.config as c; cfg = c.load_config('hmdb51'); "
            "print(c.CONFIG_DIR); print(cfg.model, cfg.aa); "
            "import apt_video.scoring.score, apt_video.tools.bench.gpu, apt_video.tools.doctor")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, values = out.stdout.split("\n")[:2]
    assert Path(where) == site / "apt_video" / "presets"
    assert values == "vit_base_patch16_224 rand-m7-n4-mstd0.5-inc1"


def test_models_pipeline_or_export_in_the_working_directory_change_nothing(tmp_path):
    """The layers install as apt_video.models, apt_video.pipeline and apt_video.export: a YOLOv5-style
    models/ package, or a pipeline.py, where the command runs (``python -m`` and ``torchrun -m`` put
    the working directory first on the path) is never imported."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("raise SystemExit('imported the wrong models')\n")
    for name in ("pipeline", "export"):
        (tmp_path / f"{name}.py").write_text(f"raise SystemExit('imported the wrong {name}')\n")
    out = subprocess.run([sys.executable, "-m", "apt_video.cli", "models"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "vit_base_patch16_224" in out.stdout and "wrong" not in out.stdout + out.stderr
    code = "import apt_video.pipeline.loader, apt_video.export.runners, apt_video.models.vit; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
