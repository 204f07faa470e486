"""An export package: one folder holding ``model.onnx``, ``model.json`` and, where they were made,
``model.plan`` (TensorRT) and ``task.safetensors`` (prompts-as-input). This module is the only one
that writes or reads ``model.json``.

``model.json`` holds the model card (``models.ModelCard``: classes, clip geometry, views, ...) and
what the export adds (``Package``): the files with their sha256, the graph's input and output, the
precision, the opset read back from the graph, the op check and the verification figures.

A package is written whole or not at all (``write_package``): it is built in a temporary sibling
folder, verified, then moved into place; a package that fails verification goes to
``<out>.rejected`` for inspection and a previous good package stays. Before a runner uses a package,
``check_files`` compares every file with its recorded sha256, and the runner compares the graph's
input and output with the card.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from apt_video.models import ModelCard, sha256_file
from apt_video.models.card import SHA256, CardError, check_value

from .graph import ATTENTION_FORMS, DTYPES
from .quantize import PRECISIONS as QUANTIZED

FORMAT = "apt-video-export"
VERSION = 2
MODEL_JSON = "model.json"
ROLES = ("onnx", "plan", "task")  # the files a package may name: the graph, the engine, the prompts
OPSETS = (18, 23)  # the ONNX opsets an export writes
MAX_BATCH = 4096


class PackageError(ValueError):
    """An export folder that cannot be used as it is: the message names the file and the mismatch."""


@dataclass
class Package:
    """``model.json``: the card and the export's own facts."""

    card: ModelCard
    files: dict[str, str]  # role (onnx, plan, task) -> file name in the folder
    sha256: dict[str, str]  # file name -> sha256
    input: dict  # {"name", "shape", "dtype", "layout"}
    output: dict  # {"name", "shape", "dtype"}
    batch: dict  # {"min", "opt", "max"}
    precision: str = "fp32"
    opset: int = 23
    attention: str = "fused"
    prompts_as_input: bool = False
    checkpoint: dict = field(default_factory=dict)  # {"path", "sha256"} of the weights exported
    op_check: dict = field(default_factory=dict)
    verification: dict = field(default_factory=dict)
    quantization: dict | None = None  # int8: quantizer, its version, calibration clips and their sha256
    tensorrt: dict | None = None

    @property
    def passed(self) -> bool:
        return bool(self.verification.get("passed")) and bool(self.op_check.get("passed", True)) and \
            (self.tensorrt is None or self.tensorrt.get("verification", {}).get("passed", True))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["card"] = self.card.to_dict()
        return {"format": FORMAT, "version": VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Package:
        if not isinstance(d, dict):
            raise PackageError(f"{where}: not an apt-video export (a JSON {type(d).__name__}, not a mapping)")
        if d.get("format") != FORMAT:
            raise PackageError(f"{where}: not an apt-video export (format {d.get('format')!r})")
        if d.get("version") != VERSION:
            raise PackageError(f"{where}: written by another version of apt-video (export format "
                               f"{d.get('version')}, this one reads {VERSION}); export the model again")
        try:
            card = ModelCard.from_dict(d["card"], where)
            names = {f.name for f in dataclasses.fields(cls)} - {"card"}
            package = cls(card=card, **{k: d[k] for k in names if k in d})
            package.check()
            return package
        except CardError as exc:
            raise PackageError(str(exc)) from None
        except KeyError as exc:
            raise PackageError(f"{where}: model.json lacks {exc.args[0]!r}; export the model again") from None
        except (TypeError, ValueError) as exc:
            raise PackageError(f"{where}: model.json is not valid ({exc}); export the model again") from None

    def check(self) -> None:
        """Every value of the export's own facts has its type and range, and every file it names is
        a plain name inside the package folder (no path, no ``..``): ``ValueError`` naming the key.
        Nothing is opened here."""
        for key, kind in (("files", dict), ("sha256", dict), ("input", dict), ("output", dict), ("batch", dict),
                          ("checkpoint", dict), ("op_check", dict), ("verification", dict)):
            if not isinstance(getattr(self, key), kind):
                raise ValueError(f"{key}={getattr(self, key)!r} must be a mapping")
        for key in ("quantization", "tensorrt"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), dict):
                raise ValueError(f"{key}={getattr(self, key)!r} must be a mapping or null")
        if "onnx" not in self.files:
            raise ValueError("files has no 'onnx' entry (the graph)")
        for role, name in self.files.items():
            if role not in ROLES:
                raise ValueError(f"files.{role}: unknown role; a package names {', '.join(ROLES)}")
            if not plain_name(name):
                raise ValueError(f"files.{role}={name!r} must be a plain file name inside the package folder")
            if not isinstance(self.sha256.get(name), str) or not SHA256.fullmatch(self.sha256[name]):
                raise ValueError(f"sha256[{name!r}] must be the file's 64 hexadecimal digits")
        if self.prompts_as_input is not check_value("prompts_as_input", self.prompts_as_input, bool) or \
                (self.prompts_as_input and "task" not in self.files):
            raise ValueError("prompts_as_input is true but files names no 'task' (the prompts file)")
        for key in ("min", "opt", "max"):
            check_value(f"batch.{key}", self.batch.get(key), int, 1, MAX_BATCH)
        if not self.batch["min"] <= self.batch["opt"] <= self.batch["max"]:
            raise ValueError(f"batch={self.batch} must have min <= opt <= max")
        if self.precision not in (*DTYPES, *QUANTIZED):
            raise ValueError(f"precision={self.precision!r}; one of {', '.join((*DTYPES, *QUANTIZED))}")
        check_value("opset", self.opset, int, *OPSETS)
        if self.attention not in ATTENTION_FORMS:
            raise ValueError(f"attention={self.attention!r}; one of {', '.join(ATTENTION_FORMS)}")
        shape = self.output.get("shape")
        if not isinstance(shape, list) or not shape or not all(isinstance(v, (int, str)) for v in shape):
            raise ValueError(f"output.shape={shape!r} must be a list of sizes")


def plain_name(name) -> bool:
    """A file name with no folder part: not absolute, no separator, not ``.`` or ``..``, no NUL."""
    return isinstance(name, str) and bool(name) and name not in (".", "..") and not any(
        c in name for c in ("/", "\\", "\0")) and not os.path.isabs(name)


def folder_of(path: str | Path) -> Path:
    """The export folder named by ``path``: the folder itself, or any file in it."""
    p = Path(path)
    return p if p.is_dir() else p.parent


def read_package(path: str | Path) -> tuple[Package, Path]:
    """``(package, folder)`` of an export folder, its model.json, model.onnx or model.plan."""
    folder = folder_of(path)
    mj = folder / MODEL_JSON
    if not mj.is_file():
        raise FileNotFoundError(f"{path}: no {MODEL_JSON} beside it; export the model with `apt-video export`")
    try:
        data = json.loads(mj.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{mj}: not readable JSON ({exc})") from None
    return Package.from_dict(data, str(mj)), folder


def check_files(package: Package, folder: Path, roles: tuple[str, ...]) -> None:
    """Every file the runner will read (``roles``: onnx, plan, task) is there and is the one that
    was verified and recorded (sha256)."""
    for role in roles:
        name = package.files.get(role)
        if not name:
            continue
        path = folder / name
        if not path.is_file():
            raise PackageError(f"{path}: missing from the export folder; export the model again")
        want = package.sha256.get(name)
        if want is None or sha256_file(path) != want:
            raise PackageError(f"{path}: not the file recorded in {folder / MODEL_JSON} (sha256 differs): the "
                               f"folder mixes two exports; export the model again")


def check_io(package: Package, source: str, input_shape: list, output_shape: list) -> None:
    """The graph's input ``(batch, 3, T, S, S)`` and output width agree with the card."""
    card = package.card
    want_in = [3, card.clip.num_frames, card.clip.input_size, card.clip.input_size]
    if [int(v) if isinstance(v, int) else v for v in list(input_shape)[1:]] != want_in:
        raise PackageError(f"{source}: input shape {list(input_shape)} does not match the model card "
                           f"(batch, {', '.join(map(str, want_in))}); export the model again")
    width = output_shape[-1] if output_shape else None
    want = package.output["shape"][-1] if package.prompts_as_input else card.num_classes
    if width != want:
        what = "features" if package.prompts_as_input else "classes"
        raise PackageError(f"{source}: output width {width} does not match model.json ({want} {what}); the "
                           f"class names would be wrong: export the model again")


def write_package(out: Path, build: Callable[[Path], Package]) -> tuple[Package, Path]:
    """Build a package with ``build(folder)`` in a temporary sibling of ``out`` and move it into
    place when it passed; a failed one goes to ``<out>.rejected``. Returns ``(package, where)``.

    ``out`` must be absent, empty, or a previous export (never a folder of something else)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MODEL_JSON).is_file())):
        raise PackageError(f"{out}: exists and is not an apt-video export folder; it is left as it is: "
                           f"choose another output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    _tidy(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        package = build(tmp)
        (tmp / MODEL_JSON).write_text(json.dumps(package.to_dict(), indent=1), encoding="utf-8")
        if not package.passed:
            rejected = out.with_name(out.name + ".rejected")
            shutil.rmtree(rejected, ignore_errors=True)
            os.replace(tmp, rejected)
            return package, rejected
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)  # the previous package steps aside (one rename) ...
        os.replace(tmp, out)  # ... and the new one takes its place (another)
        shutil.rmtree(old, ignore_errors=True)
        return package, out
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves no half-written folder behind
        raise


def _left_by_the_dead(pattern: str, out: Path) -> list[Path]:
    """Folders beside ``out`` named ``.<out>.<kind>-<pid>`` whose process is gone (another export
    running beside this one keeps its own)."""
    found = []
    for p in out.parent.glob(pattern):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # alive: not ours to touch
            except ProcessLookupError:
                pass
            except PermissionError:  # alive, another user's
                continue
        found.append(p)
    return found


def _tidy(out: Path) -> None:
    """What an export killed mid-way left beside ``out``: a package that had stepped aside is put
    back when ``out`` is missing; half-built and stepped-aside folders are removed. Folders of an
    export still running are left alone."""
    old = sorted(_left_by_the_dead(f".{out.name}.old-*", out), key=lambda p: p.stat().st_mtime)
    if old and not out.exists():
        os.replace(old.pop(), out)
    for stale in old + _left_by_the_dead(f".{out.name}.tmp-*", out):
        shutil.rmtree(stale, ignore_errors=True)
