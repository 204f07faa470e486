"""Untrusted input, one table: export packages, model cards (in ``model.json`` and in safetensors
metadata), configs, official dataset layouts and options, each a row giving the command line, the
exit status and the one line it must print (never a traceback). The next adversarial pass adds rows.

Each case builds its own files in a fresh folder from the module's kit (an exported task-B model,
its weights, a few task-B videos) and runs the real command in this process."""
import csv
import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from apt_video.cli import main
from apt_video.models.artifact import META_KEY
from apt_video.tools.synth import make_motion_dataset


@dataclasses.dataclass
class Kit:
    root: Path
    package: Path  # an ONNX export of the task-B prompt model
    weights: Path  # its trained tensors (the backbone named in the card)
    full: Path  # a weights file holding every tensor (the task-A backbone, end2end)
    classes: list  # the model's class names, in its order
    videos: dict  # class name -> its videos (2 each)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, exported, prompt_run, backbone_run):
    root = tmp_path_factory.mktemp("untrusted")
    make_motion_dataset(root / "clips", classes=4, per_class=2, frames=24, size=(64, 48), offset_deg=45,
                        split=(0, 0, 1), seed=11)
    classes = json.loads((exported / "model.json").read_text())["card"]["classes"]
    videos = {c: sorted((root / "clips" / "videos" / c).iterdir()) for c in classes}
    return Kit(root, exported, prompt_run[0] / "checkpoints" / "best.safetensors",
               backbone_run[0] / "checkpoints" / "last.safetensors", classes, videos)


# -- building the inputs ------------------------------------------------------------------------------
def package(k: Kit, tmp: Path, change=None, raw: str | None = None) -> Path:
    """A copy of the export whose model.json went through ``change(dict)`` (or is ``raw``)."""
    folder = tmp / "pkg"
    shutil.copytree(k.package, folder)
    data = json.loads((folder / "model.json").read_text())
    if change:
        change(data)
    (folder / "model.json").write_text(raw if raw is not None else json.dumps(data))
    return folder


def card_edit(**changes):
    """A ``package``/``weights`` change setting keys of the card (``clip__std``: ``clip.std``)."""
    def change(card):
        for key, value in changes.items():
            node, *path = key.split("__")
            target = card
            for part in [node, *path][:-1]:
                target = target[part]
            target[([node, *path])[-1]] = value
    return change


def in_package(change):
    return lambda d: change(d["card"])


def weights(k: Kit, tmp: Path, change=None, raw: str | None = None) -> Path:
    """A copy of the trained weights whose card went through ``change(dict)`` (or is ``raw``)."""
    with safe_open(str(k.weights), framework="pt") as f:
        header = dict(f.metadata())
    card = json.loads(header[META_KEY])
    if change:
        change(card)
    header[META_KEY] = raw if raw is not None else json.dumps(card)
    path = tmp / "w.safetensors"
    save_file(load_file(str(k.weights)), str(path), metadata=header)
    return path


def ucf101(k: Kit, tmp: Path, names: list[str], folders: list[str] | None = None) -> Path:
    """A UCF101 layout of the kit's videos: class folders, ``classInd.txt`` listing ``names``
    (1-based), ``testlist01.txt`` and ``trainlist01.txt`` naming every video under its folder."""
    root = tmp / "UCF-101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    lines = []
    for cls, folder in zip(k.classes, folders or k.classes):
        (root / folder).mkdir()
        for v in k.videos[cls]:
            shutil.copy(v, root / folder / v.name)
            lines.append(f"{folder}/{v.name}")
    (lists / "classInd.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names, 1)))
    (lists / "testlist01.txt").write_text("\n".join(lines) + "\n")
    (lists / "trainlist01.txt").write_text("\n".join(f"{ln} {names.index(ln.split('/')[0]) + 1}"
                                                     if ln.split("/")[0] in names else ln for ln in lines) + "\n")
    return root


def kinetics(k: Kit, tmp: Path, labels: list[str], header: str = "label,youtube_id,time_start,time_end,split",
             start: str = "0") -> Path:
    """A Kinetics layout: the kit's videos renamed ``<id>_000000_000010``, labelled ``labels``."""
    root = tmp / "kinetics"
    root.mkdir()
    rows = []
    for n, (cls, label) in enumerate(zip(k.classes, labels)):
        for i, v in enumerate(k.videos[cls]):
            vid = f"vid{n}x{i}"
            shutil.copy(v, root / f"{vid}_000000_000010{v.suffix}")
            rows.append(f"{label},{vid},{start},10,x")
    for name in ("train.csv", "validate.csv", "test.csv"):
        (root / name).write_text(header + "\n" + "\n".join(rows) + "\n")
    return root


def hmdb51(k: Kit, tmp: Path, split2: list[str], stray: bool = False) -> Path:
    """An HMDB51 layout; split 2 has files only for the classes ``split2``."""
    root = tmp / "hmdb51"
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for cls in k.classes:
        (root / cls).mkdir()
        for v in k.videos[cls]:
            shutil.copy(v, root / cls / v.name)
        for split in (1, 2):
            if split == 1 or cls in split2:
                (lists / f"{cls}_test_split{split}.txt").write_text(
                    "".join(f"{v.name} {2 - i}\n" for i, v in enumerate(k.videos[cls])))
    if stray:
        (lists / "_test_split1.txt").write_text("")
    return root


def score(k: Kit, tmp: Path, model, *more):
    return ["score", str(k.root / "clips" / "videos"), "--model", str(model), "-o", str(tmp / "out.csv"),
            "--no-progress", *map(str, more)]


def score_layout(k: Kit, tmp: Path, root: Path, *more):
    return ["score", str(root), "--model", str(k.package), "-o", str(tmp / "out.csv"), "--split", "1",
            "--labels", "--no-progress", *map(str, more)]


def train(tmp: Path, *sets, data: Path | None = None):
    return ["train", "--preset", "demo", "--data-root", str(data or tmp), "-o", str(tmp / "run"), "--no-progress",
            *[a for s in sets for a in ("--set", s)]]


def train_data(tmp: Path) -> Path:
    make_motion_dataset(tmp / "data", classes=4, per_class=4, frames=24, size=(64, 48), split=(0.5, 0.25, 0.25),
                        seed=5)
    return tmp / "data"


def nothing_written(k: Kit, tmp: Path):
    assert not (tmp / "out.csv").exists(), "a refused run left its output file"


# -- the table -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    id: str
    build: object  # (kit, tmp) -> argv
    code: int
    says: str  # regex the one error line matches ("" for a run that succeeds)
    after: object = None  # (kit, tmp) -> None: what must hold afterwards


P = package
CASES = [
    # severe: files outside the package, NaN, wrong class names
    Case("package-file-outside", lambda k, t: score(k, t, P(k, t, lambda d: d["files"].update(
        onnx=str(k.package / "model.onnx")))), 2, r"files\.onnx=.* must be a plain file name", nothing_written),
    Case("package-file-dotdot", lambda k, t: score(k, t, P(k, t, lambda d: d["files"].update(
        onnx="../pkg/model.onnx"))), 2, r"plain file name inside the package"),
    Case("package-file-etc-passwd", lambda k, t: score(k, t, P(k, t, lambda d: (
        d["files"].update(onnx="/etc/passwd"), d["sha256"].update({"/etc/passwd": "0" * 64})))), 2,
        r"files\.onnx='/etc/passwd' must be a plain file name"),
    Case("card-std-zero-package", lambda k, t: score(k, t, P(k, t, in_package(card_edit(clip__std=[0, 0, 0])))), 2,
         r"std=.* must be greater than 0", nothing_written),
    Case("card-std-zero-weights", lambda k, t: score(k, t, weights(k, t, card_edit(clip__std=[0, 0, 0])),
                                                     "--backend", "torch"), 2, r"w\.safetensors.*std="),
    Case("card-more-classes-than-head", lambda k, t: score(k, t, weights(k, t, lambda c: (
        c["classes"].append("INSERTED"), c["model_overrides"].update(num_classes=len(c["classes"])))),
        "--backend", "torch"), 2, r"lists 5 classes but the head tensor 'head\.\w+' has shape", nothing_written),
    Case("card-more-classes-than-head-export", lambda k, t: ["export", str(weights(k, t, lambda c: (
        c["classes"].append("INSERTED"), c["model_overrides"].update(num_classes=len(c["classes"]))))), "-o",
        str(t / "exp"), "--onnx-only"], 2, r"lists 5 classes but the head",
        lambda k, t: not (t / "exp").exists() or pytest.fail("export wrote a package")),
    Case("card-classes-disagree-with-overrides", lambda k, t: score(k, t, weights(k, t, lambda c: c["classes"].append(
        "INSERTED")), "--backend", "torch"), 2, r"model_overrides\.num_classes=4 but classes gives 5"),
    Case("card-fewer-classes-than-head", lambda k, t: score(k, t, weights(k, t, lambda c: (
        c.update(classes=c["classes"][:2]), c["model_overrides"].update(num_classes=2))), "--backend", "torch"), 2,
        r"lists 2 classes but the head"),
    Case("train-lr-inf", lambda k, t: train(t, "lr=.inf"), 2, r"lr=inf: must be a finite number"),
    Case("labels-classind-reversed", lambda k, t: score_layout(k, t, ucf101(k, t, k.classes[::-1])), 0, "",
         lambda k, t: _metrics_are_the_true_ones(k, t)),
    Case("labels-kinetics-other-classes", lambda k, t: score_layout(k, t, kinetics(k, t, ["a", "b", "c", "d"])), 2,
         r"class 'a' of the labels is not a class of the model", nothing_written),
    Case("labels-case-collision", lambda k, t: score_layout(k, t, ucf101(
        k, t, [k.classes[0], k.classes[0].upper(), *k.classes[1:]], [k.classes[0].capitalize(), *k.classes[1:]])), 2,
        r"testlist01\.txt:1: class .* matches several classes", nothing_written),
    # tracebacks before
    Case("classind-superscript", lambda k, t: score_layout(k, t, _edit(ucf101(k, t, k.classes), "classInd.txt",
                                                                       "1 ", "\u00b9 ")), 2,
         r"classInd\.txt:1: expected '<index> <Class>'"),
    Case("trainlist-superscript", lambda k, t: score_layout(k, t, _edit(ucf101(k, t, k.classes), "trainlist01.txt",
                                                                        " 1\n", " \u00b9\n"), "--part", "train"), 2,
         r"trainlist01\.txt:1: expected"),
    Case("kinetics-time-inf", lambda k, t: score_layout(k, t, kinetics(k, t, k.classes, start="inf")), 2,
         r"train\.csv:2: expected a youtube_id and whole-second time_start"),
    Case("package-sha256-list", lambda k, t: score(k, t, P(k, t, lambda d: d.update(sha256=[]))), 2,
         r"sha256=\[\] must be a mapping"),
    Case("package-files-list", lambda k, t: score(k, t, P(k, t, lambda d: d.update(files=["model.onnx"]))), 2,
         r"files=\['model.onnx'\] must be a mapping"),
    Case("package-top-level-list", lambda k, t: score(k, t, P(k, t, raw="[]")), 2,
         r"not an apt-video export \(a JSON list"),
    Case("package-top-level-null", lambda k, t: score(k, t, P(k, t, raw="null")), 2,
         r"not an apt-video export \(a JSON NoneType"),
    Case("package-batch-null", lambda k, t: score(k, t, P(k, t, lambda d: d.update(batch=None))), 2,
         r"batch=None must be a mapping"),
    Case("package-batch-huge", lambda k, t: score(k, t, P(k, t, lambda d: d.update(
        batch={"min": 1, "opt": 10**30, "max": 10**30}))), 2, r"batch\.opt=10+ must be in \[1, 4096\]"),
    Case("package-prompts-as-input-without-task", lambda k, t: score(k, t, P(k, t, lambda d: d.update(
        prompts_as_input=True))), 2, r"prompts_as_input is true but files names no 'task'"),
    Case("card-segments-string", lambda k, t: score(k, t, P(k, t, in_package(card_edit(clip__test_num_segment="2")))),
         2, r"test_num_segment='2' must be a whole number", nothing_written),
    Case("card-segments-fraction", lambda k, t: score(k, t, P(k, t, in_package(card_edit(clip__test_num_segment=2.5)))),
         2, r"test_num_segment=2\.5 must be a whole number", nothing_written),
    Case("card-segments-million",
         lambda k, t: score(k, t, P(k, t, in_package(card_edit(clip__test_num_segment=10**6)))),
         2, r"test_num_segment=1000000 must be in \[1, 100\]"),
    Case("card-mean-two-values", lambda k, t: score(k, t, P(k, t, in_package(card_edit(clip__mean=[0.5, 0.5])))), 2,
         r"mean=\[0\.5, 0\.5\] must be 3 finite numbers"),
    Case("card-num-classes-string", lambda k, t: score(k, t, weights(k, t, card_edit(model_overrides__num_classes="x")),
                                                       "--backend", "torch"), 2,
         r"model_overrides\.num_classes='x' must be a whole number"),
    Case("card-embed-dim-huge", lambda k, t: score(k, t, weights(k, t, card_edit(model_overrides__embed_dim=10**7)),
                                                   "--backend", "torch"), 2,
         r"model_overrides\.embed_dim=10000000 must be in \[8, 4096\]"),
    Case("card-classes-not-names", lambda k, t: score(k, t, weights(k, t, card_edit(classes=[1, None])), "--backend",
                                                      "torch"), 2, r"classes\[0\]=1 must be a non-empty name"),
    Case("card-json-broken", lambda k, t: score(k, t, weights(k, t, raw="{not json"), "--backend", "torch"), 2,
         r"w\.safetensors: its model card \('apt_video' metadata\) is not readable JSON"),
    Case("train-crop-scale-not-numbers", lambda k, t: train(t, "crop_scale=[0.5, a]"), 2,
         r"crop_scale=\[0\.5, 'a'\]: two numbers"),
    Case("train-epochs-huge", lambda k, t: train(t, "epochs=1000000000000"), 2,
         r"epochs=1000000000000: must be at most"),
    Case("train-seed-negative", lambda k, t: train(t, "seed=-1"), 2, r"seed=-1: must be >= 0"),
    Case("bench-codec", lambda k, t: ["bench", "loader", "--codecs", "bogus"], 2, r"--codecs: 'bogus': choose from"),
    Case("bench-interp", lambda k, t: ["bench", "loader", "--interps", "cubic"], 2, r"--interps: 'cubic': choose from"),
    Case("bench-executor", lambda k, t: ["bench", "loader", "--executors", "x"], 2, r"--executors: 'x': choose from"),
    # hangs before
    Case("ray-address-nothing-there", lambda k, t: score(k, t, k.package, "--engine", "ray", "--address",
                                                         "127.0.0.1:1"), 2,
         r"--address 127\.0\.0\.1:1: nothing answers there", nothing_written),
    Case("train-batch-larger-than-data", lambda k, t: train(t, "batch_size=1000", data=train_data(t)), 2,
         r"batch_size=1000 is larger than the \d+ training clips",
         lambda k, t: not (t / "run").exists() or pytest.fail("a refused run wrote its folder")),
    # late checks before
    Case("doctor-json-folder-missing", lambda k, t: ["doctor", "--json", str(t / "nonexistent" / "x.json")], 2,
         r"--json .*x\.json: the folder .*nonexistent does not exist"),
    Case("synth-per-class-too-few", lambda k, t: ["synth", str(t / "syn"), "--per-class", "3"], 2,
         r"--per-class 3: gives 2 train, 1 val and 0 test",
         lambda k, t: not (t / "syn").exists() or pytest.fail("synth wrote a dataset it refused")),
    Case("train-empty-test-part", lambda k, t: train(t, "epochs=1", data=_empty_test(train_data(t))), 2,
         r"test\.csv: the list file holds no videos",
         lambda k, t: not (t / "run").exists() or pytest.fail("training ran before reading its test part")),
    Case("hmdb51-split-missing-classes", lambda k, t: score_layout(k, t, hmdb51(k, t, k.classes[:1]), "--split", "2"),
         2, r"split 2 has no .*_test_split2\.txt"),
    Case("hmdb51-stray-split-file", lambda k, t: score_layout(k, t, hmdb51(k, t, k.classes, stray=True)), 2,
         r"a split file without a class name"),
    # accepted silently before
    Case("pretrained-on-full-weights", lambda k, t: score(k, t, k.full, "--pretrained", k.full, "--backend", "torch"),
         2, r"holds every tensor, its backbone too.*leave out --pretrained"),
    # misleading messages before
    Case("kinetics-quoted-spaced-header", lambda k, t: score_layout(k, t, kinetics(
        k, t, k.classes, header='"label", "youtube_id" ,"time_start","time_end","split"')), 0, ""),
    Case("calib-missing-file", lambda k, t: ["export", str(k.weights), "-o", str(t / "exp"), "--onnx-only",
                                             "--precision", "int8", "--calib", str(t / "nonexist.csv")], 2,
         r"--calib .*nonexist\.csv: no such file"),
    Case("sweep-vary-value", lambda k, t: ["sweep", "--preset", "demo", "--vary", "lr=x", "--data-root", str(t),
                                           "-o", str(t / "sw")], 2, r"--vary lr=x: lr='x' must be float"),
    Case("resume-refused-pickle", lambda k, t: train(t, data=_refused_state(train_data(t), t)) + ["--resume",
                                                                                                   str(t / "evil.pt")],
         2, r"evil\.pt: cannot resume from this file \(.*\); pass another"),
]


def _edit(root: Path, name: str, old: str, new: str) -> Path:
    path = root / "ucfTrainTestlist" / name
    path.write_text(path.read_text().replace(old, new, 1))
    return root


def _empty_test(data: Path) -> Path:
    (data / "test.csv").write_text("")
    return data


class _Evil:
    def __reduce__(self):
        return (print, ("this ran",))


def _refused_state(data: Path, tmp: Path) -> Path:
    torch.save({"model": _Evil()}, tmp / "evil.pt")
    return data


def _metrics_are_the_true_ones(k: Kit, tmp: Path):
    """classInd listed the classes in the opposite order: each video's label still names its own
    class (its folder), so every class has its 2 videos, and the report is the model's own order."""
    m = json.loads((tmp / "out.csv.metrics.json").read_text())
    assert m["classes"] == k.classes
    assert {c: v["videos"] for c, v in m["per_class"].items()} == {c: 2 for c in k.classes}
    with open(tmp / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    right = sum(r["video"].split("/")[0] == r["pred"] for r in rows)
    assert m["top1"] == pytest.approx(100 * right / len(rows))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_untrusted_input(case, kit, tmp_path, capsys):
    argv = case.build(kit, tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "this ran" not in captured.out
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == case.code, err
    if case.says:
        assert len(errors) == 1, err
        assert re.search(case.says, errors[0]), errors[0]
    else:
        assert not errors, err
    if case.after:
        case.after(kit, tmp_path)
