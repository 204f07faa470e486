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
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("models", "pipeline", "export", "apt_video", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    assert sorted(p.name for p in (site / "apt_video" / "presets").glob("*.yaml")) == \
        sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    shutil.rmtree(src)  # nothing may be read from the source tree any more
    # -S: no site hooks, so the editable install of the checkout cannot shadow the installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    code = ("import apt_video.config as c; cfg = c.load_config('hmdb51'); "
            "print(c.CONFIG_DIR); print(cfg.model, cfg.aa)")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, values = out.stdout.split("\n")[:2]
    assert Path(where) == site / "apt_video" / "presets"
    assert values == "vit_base_patch16_224 rand-m7-n4-mstd0.5-inc1"
