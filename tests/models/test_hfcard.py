"""A Hugging Face VideoMAE classifier as downloaded (a ``save_pretrained`` folder, a file in one, a
model id in the local cache) is scored and exported with no training step: the architecture from
its ``config.json``, the class names from ``id2label``, and its predictions are transformers' own
on the same clips."""
import csv
import dataclasses
import json

import pytest
import torch

from apt_video import models
from apt_video.cli import main
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import probe_dataset
from apt_video.tools.synth import make_motion_dataset

from checkpoint_kit import offline_hub_cache

transformers = pytest.importorskip("transformers")
CLASSES = ["walk", "run", "jump"]


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory):
    """A tiny VideoMAEForVideoClassification saved as the hub gives it (blocks of LayerNorm eps
    1e-12, transformers' default, beside its fc_norm of 1e-5), with its processor's normalisation."""
    root = tmp_path_factory.mktemp("downloaded")
    cfg = transformers.VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=192,
                                      id2label=dict(enumerate(CLASSES)),
                                      label2id={c: i for i, c in enumerate(CLASSES)})
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(cfg).eval()
    with torch.no_grad():
        for _, p in hf.named_parameters():
            p.normal_(0, 0.2)
    hf.save_pretrained(root / "hf")
    mean, std = [0.45, 0.45, 0.45], [0.225, 0.225, 0.225]
    (root / "hf" / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std}))
    make_motion_dataset(root / "clips", classes=3, per_class=2, frames=24, size=(64, 48), offset_deg=60,
                        split=(0, 0, 1), seed=4)
    return root, hf, (mean, std)


def theirs(hf, clips: torch.Tensor) -> torch.Tensor:
    """transformers' class probabilities, on ``(V, 3, T, H, W)`` views (it takes ``(V, T, 3, H, W)``)."""
    with torch.no_grad():
        return torch.softmax(hf(pixel_values=clips.permute(0, 2, 1, 3, 4)).logits, -1)


def test_the_card_is_read_from_config_json(downloaded):
    root, hf, (mean, std) = downloaded
    card, weights = models.describe(root / "hf")
    assert weights == root / "hf" / "model.safetensors"
    assert card.classes == CLASSES and card.transfer_type == "end2end"
    o = card.model_overrides
    assert (o["embed_dim"], o["depth"], o["num_heads"], o["mlp_ratio"], o["num_frames"], o["img_size"],
            o["tubelet_size"]) == (64, 2, 2, 3.0, 4, 32, 2)
    assert (o["norm_eps"], o["head_norm_eps"]) == (hf.config.layer_norm_eps, hf.fc_norm.eps)
    assert (card.clip.num_frames, card.clip.input_size, list(card.clip.mean), list(card.clip.std)) == (4, 32, mean, std)


def test_scored_as_downloaded_equals_transformers_on_the_same_views(downloaded, tmp_path):
    root, hf, _ = downloaded
    out = tmp_path / "s.csv"
    assert main(["score", str(root / "clips" / "test.csv"), "--model", str(root / "hf"), "-o", str(out),
                 "--views", "2x3", "--no-progress"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    card, _ = models.describe(root / "hf")
    clip = dataclasses.replace(card.clip, test_num_segment=2)
    entries, _ = probe_dataset(open_dataset(root / "clips" / "test.csv"), None, progress=False)
    loader = VideoLoader(entries, clip, mode="test", batch_size=1, num_workers=0)
    seen = 0
    for b in loader.epoch(0):
        probs = theirs(hf, b.video[0]).mean(0)
        row = rows[b.ids[0]]
        assert row["pred"] == CLASSES[int(probs.argmax())]
        assert float(row["prob"]) == pytest.approx(float(probs.max()), abs=1e-5)
        seen += 1
    assert seen == len(rows) == 6


def test_exported_as_downloaded_scores_the_same(downloaded, tmp_path):
    root, _, _ = downloaded
    assert main(["export", str(root / "hf"), "-o", str(tmp_path / "exp"), "--onnx-only"]) == 0
    package = json.loads((tmp_path / "exp" / "model.json").read_text())
    assert package["card"]["classes"] == CLASSES
    for model, name in ((root / "hf", "torch.csv"), (tmp_path / "exp", "onnx.csv")):
        assert main(["score", str(root / "clips" / "videos"), "--model", str(model), "-o", str(tmp_path / name),
                     "--views", "2x3", "--no-progress"]) == 0
    with open(tmp_path / "torch.csv", newline="") as a, open(tmp_path / "onnx.csv", newline="") as b:
        for x, y in zip(csv.DictReader(a), csv.DictReader(b), strict=True):
            assert x["pred"] == y["pred"] and float(x["prob"]) == pytest.approx(float(y["prob"]), abs=1e-4)


def test_a_model_id_is_scored_from_the_local_cache(downloaded, tmp_path, monkeypatch):
    """``--model org/name``: the id read from a Hugging Face cache laid out here (no network)."""
    root, _, _ = downloaded

    def fill(snapshot):
        for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            (snapshot / name).write_bytes((root / "hf" / name).read_bytes())

    with offline_hub_cache(tmp_path, monkeypatch, "org/tiny-videomae", fill):
        out = tmp_path / "id.csv"
        assert main(["score", str(root / "clips" / "videos"), "--model", "org/tiny-videomae", "-o", str(out),
                     "--views", "2x3", "--no-progress"]) == 0
        with open(out, newline="") as f:
            assert len(list(csv.DictReader(f))) == 6


@pytest.mark.parametrize("edit,message", [
    ({"model_type": "vit"}, "model_type='vit'; apt-video reads VideoMAE models"),
    ({"architectures": ["VideoMAEForPreTraining"]}, "a classifier (VideoMAEForVideoClassification) is needed"),
    ({"use_mean_pooling": False}, "use_mean_pooling=false"),
    ({"hidden_act": "relu"}, "hidden_act='relu'"),
    ({"num_frames": "x"}, "num_frames='x' must be a whole number"),
    ({"id2label": {"0": "walk", "2": "jump"}}, "id2label must map 0..N-1"),
])
def test_a_config_that_is_not_such_a_classifier_is_named(downloaded, tmp_path, capsys, edit, message):
    root, _, _ = downloaded
    folder = tmp_path / "hf"
    folder.mkdir()
    cfg = json.loads((root / "hf" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **edit}))
    (folder / "model.safetensors").write_bytes((root / "hf" / "model.safetensors").read_bytes())
    assert main(["score", str(root / "clips" / "videos"), "--model", str(folder), "-o", str(tmp_path / "o.csv"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err, err
    assert not (tmp_path / "o.csv").exists()


def test_a_head_that_is_not_id2label_is_refused(downloaded, tmp_path, capsys):
    root, _, _ = downloaded
    folder = tmp_path / "hf"
    folder.mkdir()
    cfg = json.loads((root / "hf" / "config.json").read_text())
    cfg["id2label"] = {**cfg["id2label"], "3": "extra"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes((root / "hf" / "model.safetensors").read_bytes())
    assert main(["export", str(folder), "-o", str(tmp_path / "exp"), "--onnx-only"]) == 2
    assert "lists 4 classes but the head tensor 'head.weight' has shape (3, 64)" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
    assert main(["score", str(root / "clips" / "videos"), "--model", str(root / "hf"), "-o", str(tmp_path / "o.csv"),
                 "--pretrained", str(root / "hf" / "model.safetensors"), "--no-progress"]) == 2
    assert "holds its backbone, so --pretrained has no place" in capsys.readouterr().err


def test_a_preset_gives_the_sampling_and_views_config_json_does_not(downloaded):
    """``--preset ssv2``: SSv2's segment sampler and test views; frames, size and normalisation stay
    the model's own (config.json, preprocessor_config.json)."""
    root, _, (mean, std) = downloaded
    from apt_video.config import load_config

    preset = load_config(preset="ssv2").clip
    card, _ = models.describe(root / "hf", models.CardFill(preset, ("a", "b", "c")))
    assert (card.clip.sampler, card.clip.test_num_segment, card.clip.test_num_crop) == \
        (preset.sampler, preset.test_num_segment, preset.test_num_crop) == ("segment", 10, 3)
    assert (card.clip.num_frames, card.clip.input_size, list(card.clip.mean), list(card.clip.std)) == (4, 32, mean, std)
    assert card.classes == ["a", "b", "c"]
    with pytest.raises(models.CheckpointError, match="id2label has 3 classes but 2 class names were given"):
        models.describe(root / "hf", models.CardFill(None, ("a", "b")))
