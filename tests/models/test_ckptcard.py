"""A classifier checkpoint as VideoMAE's and APT's own code save it (``checkpoint.pth``: the state dict
under ``model``, beside the run's ``argparse.Namespace``) is scored and exported with no training
step: the architecture from the tensors' shapes, the clip from ``--preset``, the class names from
``--classes``; and its probabilities are the reference forward's (tests/reference.py) on the same
views."""
import argparse
import csv
import json

import pytest
import torch

from apt_video import models
from apt_video.cli import main
from apt_video.config import load_config
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import probe_dataset
from apt_video.tools.synth import make_motion_dataset
from tests.reference import ref_apt_logits

CLASSES = ["walk", "run", "jump"]


def reference_checkpoint(width: int, depth: int, prompts: tuple[int, int] | None, seed: int) -> dict:
    """Random tensors under the names VideoMAE's modeling_finetune.py (``fc_norm``, ``q_bias``/``v_bias``)
    and APT's modeling_VPT.py (``prompt_embeddings_k``/``_v``, ``prompt_scale``) give them: 3 classes,
    patch 16, tubelet 2, MLP ratio 4. ``prompts``: (tokens, head width) of a prompt in every layer."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    sd = {"patch_embed.proj.weight": t(width, 3, 2, 16, 16, std=0.05), "patch_embed.proj.bias": t(width)}
    for i in range(depth):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": 1 + t(width), b + "norm1.bias": t(width),
                   b + "attn.qkv.weight": t(3 * width, width), b + "attn.q_bias": t(width), b + "attn.v_bias": t(width),
                   b + "attn.proj.weight": t(width, width),
                   b + "attn.proj.bias": t(width), b + "norm2.weight": 1 + t(width), b + "norm2.bias": t(width),
                   b + "mlp.fc1.weight": t(4 * width, width), b + "mlp.fc1.bias": t(4 * width),
                   b + "mlp.fc2.weight": t(width, 4 * width), b + "mlp.fc2.bias": t(width)})
    if prompts:
        tokens, head = prompts
        sd.update({"prompt_embeddings_k": t(depth, tokens, head), "prompt_embeddings_v": t(depth, tokens, head),
                   "prompt_scale": 1 + t(depth, 2, tokens).abs(), "head_norm.weight": 1 + t(width),
                   "head_norm.bias": t(width)})
    else:
        sd.update({"fc_norm.weight": 1 + t(width), "fc_norm.bias": t(width)})
    sd.update({"head.weight": t(3, width), "head.bias": t(3)})
    return sd


def save_as_the_reference_does(sd: dict, path) -> None:
    """utils.save_model of VideoMAE and APT: the model's state dict beside the run's arguments."""
    torch.save({"model": sd, "epoch": 29, "args": argparse.Namespace(model="vit_small_patch16_224", lr=1e-3)}, path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pth")
    make_motion_dataset(root / "clips", classes=3, per_class=2, frames=24, size=(64, 48), offset_deg=60,
                        split=(0, 0, 1), seed=4)
    (root / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))  # classInd.txt
    return root


def reference_probs(sd: dict, clip, entries, *, heads: int, prompted: bool):
    """The reference forward (tests/reference.py, eps 1e-6 as VideoMAE and APT build their LayerNorms)
    on each video's test views, the views' softmax averaged: ``{id: probs}``."""
    w = {k.replace("fc_norm.", "head_norm."): v for k, v in sd.items()}  # the same LayerNorm under APT's name
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    loader = VideoLoader(entries, clip, mode="test", batch_size=1, num_workers=0)
    out = {}
    for b in loader.epoch(0):
        with torch.no_grad():
            logits = ref_apt_logits(w, b.video[0], heads=heads, tubelet=2, patch=16, depth=depth,
                                    prompt_start=0 if prompted else depth, prompt_end=depth - 1)
        out[b.ids[0]] = torch.softmax(logits, -1).mean(0)
    return out


@pytest.mark.parametrize("kind", ["videomae", "apt"])
def test_a_reference_checkpoint_scores_as_the_reference_forward(setup, tmp_path, kind):
    """VideoMAE ViT-S (width 384: 6 heads, as VideoMAE pairs them) and an APT checkpoint of width 64
    whose prompts give the heads (head width 32: 2 heads). The clip is the demo preset's."""
    width, prompts, heads = (384, None, 6) if kind == "videomae" else (64, (5, 32), 2)
    sd = reference_checkpoint(width, 2, prompts, seed=1)
    save_as_the_reference_does(sd, tmp_path / "checkpoint.pth")
    out = tmp_path / "s.csv"
    assert main(["score", str(setup / "clips" / "test.csv"), "--model", str(tmp_path / "checkpoint.pth"),
                 "--preset", "demo", "--classes", str(setup / "classes.txt"), "-o", str(out), "--no-progress"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    clip = load_config(preset="demo").clip
    entries, _ = probe_dataset(open_dataset(setup / "clips" / "test.csv"), None, progress=False)
    want = reference_probs(sd, clip, entries, heads=heads, prompted=prompts is not None)
    assert len(want) == len(rows) == 6
    for i, probs in want.items():
        assert rows[i]["pred"] == CLASSES[int(probs.argmax())]
        assert float(rows[i]["prob"]) == pytest.approx(float(probs.max()), abs=1e-5)
        top = json.loads(rows[i]["top_k"])
        assert [name for name, _ in top] == [CLASSES[int(k)] for k in probs.argsort(descending=True)]


def test_the_card_is_read_from_the_shapes_and_the_preset(tmp_path):
    sd = reference_checkpoint(64, 3, (7, 16), seed=2)
    save_as_the_reference_does(sd, tmp_path / "apt.pth")
    clip = load_config(preset="ssv2").clip
    card, weights = models.describe(tmp_path / "apt.pth", models.CardFill(clip, None))
    o = card.model_overrides
    assert weights == tmp_path / "apt.pth" and card.classes == ["class_0", "class_1", "class_2"]
    assert (o["embed_dim"], o["depth"], o["num_heads"], o["mlp_ratio"], o["tubelet_size"], o["patch_size"]) == \
        (64, 3, 4, 4.0, 2, 16)
    assert (o["prompt_num_tokens"], o["prompt_start"], o["prompt_end"], o["prompt_reparam"]) == (7, 0, 2, True)
    assert card.clip == clip and card.clip.sampler == "segment"


def test_exported_from_a_checkpoint_scores_the_same(setup, tmp_path):
    sd = reference_checkpoint(64, 2, (5, 32), seed=3)
    save_as_the_reference_does(sd, tmp_path / "checkpoint.pth")
    common = ["--preset", "demo", "--classes", str(setup / "classes.txt")]
    assert main(["export", str(tmp_path / "checkpoint.pth"), "-o", str(tmp_path / "exp"), "--onnx-only", *common]) == 0
    assert json.loads((tmp_path / "exp" / "model.json").read_text())["card"]["classes"] == CLASSES
    assert main(["score", str(setup / "clips" / "videos"), "--model", str(tmp_path / "checkpoint.pth"), *common,
                 "-o", str(tmp_path / "torch.csv"), "--no-progress"]) == 0
    assert main(["score", str(setup / "clips" / "videos"), "--model", str(tmp_path / "exp"), "-o",
                 str(tmp_path / "onnx.csv"), "--no-progress"]) == 0
    with open(tmp_path / "torch.csv", newline="") as a, open(tmp_path / "onnx.csv", newline="") as b:
        for x, y in zip(csv.DictReader(a), csv.DictReader(b), strict=True):
            assert x["pred"] == y["pred"] and float(x["prob"]) == pytest.approx(float(y["prob"]), abs=1e-4)


def test_a_preset_or_classes_for_a_model_that_holds_them_is_refused(setup, tmp_path, capsys):
    sd = reference_checkpoint(64, 1, (5, 32), seed=4)
    save_as_the_reference_does(sd, tmp_path / "checkpoint.pth")
    assert main(["export", str(tmp_path / "checkpoint.pth"), "-o", str(tmp_path / "exp"), "--onnx-only",
                 "--preset", "demo"]) == 0
    capsys.readouterr()
    assert main(["score", str(setup / "clips" / "videos"), "--model", str(tmp_path / "exp"), "--preset", "demo",
                 "-o", str(tmp_path / "o.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "its card holds its clip and class names, so --preset and --classes have no place" in err
    assert "Traceback" not in err and not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("edit,classes,message", [
    ("none", "a\nb\n", "its head has 3 classes but 2 class names were given (--classes)"),
    ("none", "a\nb\na\n", "the name 'a' is given twice (entries 1 and 3)"),
    ("none", "\n\n", "holds no class names"),
    ("none", b"\xff\xfe\x00\x01 not text", "not readable text"),
    ("none", "missing", "not readable text ([Errno 2] No such file or directory"),
    ("pretrain", None, "a VideoMAE pre-training checkpoint (no classifier); fine-tune it first"),
    ("no-norm", None, "no fc_norm.weight: the mean-pooling LayerNorm"),
    ("layer-scale", None, "holds layer scale (blocks.N.gamma_1"),
    ("image", None, "a video model's is (width, 3, tubelet, patch, patch)"),
])
def test_a_checkpoint_that_is_not_such_a_classifier_is_named(setup, tmp_path, capsys, edit, classes, message):
    sd = reference_checkpoint(64, 1, (5, 32), seed=5)
    if edit == "pretrain":
        sd = {"encoder." + k: v for k, v in sd.items() if not k.startswith(("head", "prompt"))}
    elif edit == "no-norm":
        sd = {k: v for k, v in sd.items() if not k.startswith("head_norm.")}
    elif edit == "layer-scale":
        sd["blocks.0.gamma_1"] = torch.ones(64)
    elif edit == "image":
        sd["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"][:, :, 0]
    save_as_the_reference_does(sd, tmp_path / "c.pth")
    extra = []
    if classes is not None:  # "missing": a file that is not there; bytes: a binary file
        if classes != "missing":
            getattr(tmp_path / "classes.txt", "write_bytes" if isinstance(classes, bytes) else "write_text")(classes)
        extra = ["--classes", str(tmp_path / "classes.txt")]
    assert main(["score", str(setup / "clips" / "videos"), "--model", str(tmp_path / "c.pth"), *extra,
                 "-o", str(tmp_path / "o.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("text,names", [
    ("walk\nrun\njump\n", ["walk", "run", "jump"]),  # MMAction2's label maps
    ("1 walk\n2 run\n3 jump\n", ["walk", "run", "jump"]),  # classInd.txt
    ("0 walk\n1 run\n2 jump\n", ["walk", "run", "jump"]),
    ("3 walk\n5 run\n", ["3 walk", "5 run"]),  # numbers that are not an index are part of the name
    ("high jump\nlong jump\n", ["high jump", "long jump"]),
])
def test_class_files_of_both_layouts(tmp_path, text, names):
    (tmp_path / "c.txt").write_text(text)
    assert models.read_class_names(tmp_path / "c.txt") == names
