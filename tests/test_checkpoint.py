"""Checkpoint formats round-trip from files written here; wrong files give named errors."""
import importlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file

from apt_video import models
from apt_video.models import CheckpointError, load_pretrained
from apt_video.models.artifact import META_KEY, backbone_record, load_any, save_trained
from apt_video.models.hub import is_hub_id, resolve_weights

GEOM = dict(img_size=32, num_frames=4, embed_dim=64, depth=2, num_heads=2, num_classes=3)


def make(**kw):
    return models.create_model("vit_small_patch16_224", **{**GEOM, **kw})


def randomize(m):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    return m


def backbone(sd):
    return {k: v for k, v in sd.items() if not k.startswith(("head", "prompt"))}


X = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))


def same_backbone(a, b):
    sa, sb = backbone(a.state_dict()), backbone(b.state_dict())
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=0, rtol=0, msg=k)


@pytest.mark.parametrize("suffix,wrapper", [(".pth", "model"), (".pt", "module"), (".bin", None),
                                            (".safetensors", None)])
def test_apt_checkpoint_round_trips_in_every_container(tmp_path, suffix, wrapper):
    src = randomize(make()).eval()
    sd = src.state_dict()
    path = tmp_path / f"apt{suffix}"
    if suffix == ".safetensors":
        save_file(sd, path)
    else:
        torch.save({wrapper: sd, "epoch": 3} if wrapper else sd, path)
    dst = make().eval()
    report = load_pretrained(dst, path)
    assert report.source_format == "apt" and not report.fresh
    torch.testing.assert_close(dst(X), src(X), atol=0, rtol=0)
    make().load_state_dict(sd, strict=True)  # reference names: strict loading works as-is


def test_videomae_pretraining_checkpoint_drops_decoder(tmp_path):
    src = randomize(make(transfer_type="end2end"))
    sd = {"encoder." + k: v for k, v in backbone(src.state_dict()).items()}
    sd.update({"encoder.norm.weight": torch.ones(64), "encoder.norm.bias": torch.zeros(64),
               "decoder.blocks.0.mlp.fc1.weight": torch.zeros(8, 8), "mask_token": torch.zeros(1, 1, 32),
               "encoder_to_decoder.weight": torch.zeros(32, 64)})
    torch.save({"model": sd}, tmp_path / "pretrain.pth")
    dst = make()
    report = load_pretrained(dst, tmp_path / "pretrain.pth")
    assert report.source_format == "videomae-pretrain"
    same_backbone(src, dst)
    assert set(report.fresh) == {"prompt_embeddings_k", "prompt_embeddings_v", "prompt_scale",
                                 "head_norm.weight", "head_norm.bias", "head.weight", "head.bias"}
    assert any(d.startswith("decoder.") for d in report.dropped)
    assert any(d.startswith("mask_token") for d in report.dropped)


def test_videomae_finetuned_maps_fc_norm_and_drops_wrong_head(tmp_path, caplog):
    src = randomize(make(transfer_type="end2end", num_classes=400)).eval()
    sd = {("fc_norm" + k[len("head_norm"):] if k.startswith("head_norm") else k): v
          for k, v in src.state_dict().items()}
    torch.save({"module": sd}, tmp_path / "ft.pth")
    dst = make(transfer_type="end2end", num_classes=400).eval()
    assert load_pretrained(dst, tmp_path / "ft.pth").source_format == "videomae-finetuned"
    torch.testing.assert_close(dst(X), src(X), atol=0, rtol=0)
    small = make()  # 3 classes: the 400-way head is dropped with a message
    report = load_pretrained(small, tmp_path / "ft.pth")
    assert any("head.weight (400, 64) dropped: this model has 3 classes" in d for d in report.dropped)
    assert "head.weight" in caplog.text
    torch.testing.assert_close(small.head_norm.weight, src.head_norm.weight)


@pytest.fixture(scope="module")
def hf_model():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2,
                                      hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=256, qkv_bias=True, use_mean_pooling=True,
                                      layer_norm_eps=1e-6, num_labels=3)
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.normal_(0, 0.05) if "key.bias" not in name else p.zero_()
    return hf


def hf_logits(hf, x):
    with torch.no_grad():
        return hf(pixel_values=x.permute(0, 2, 1, 3, 4)).logits  # HF takes (B, T, C, H, W)


def v4_names(sd):
    out = {}
    for k, v in sd.items():
        k = k.replace("attention.attention.query.bias", "attention.attention.q_bias")
        k = k.replace("attention.attention.value.bias", "attention.attention.v_bias")
        out[k] = v
    return out


@pytest.mark.parametrize("version,suffix", [("v5", ".safetensors"), ("v5", ".bin"), ("v4", ".bin"),
                                            ("v4", ".safetensors")])
def test_huggingface_parity(tmp_path, hf_model, version, suffix):
    sd = {k: v.contiguous() for k, v in hf_model.state_dict().items()}
    if version == "v4":
        sd = v4_names(sd)
    path = tmp_path / f"model{suffix}"
    save_file(sd, path) if suffix == ".safetensors" else torch.save(sd, path)
    ours = make(transfer_type="end2end").eval()
    report = load_pretrained(ours, path)
    assert report.source_format == "huggingface" and not report.fresh
    ours.head_norm.eps = hf_model.fc_norm.eps  # HF's fc_norm is eps 1e-5, ours 1e-6
    torch.testing.assert_close(ours(X), hf_logits(hf_model, X), atol=1e-5, rtol=1e-4)


def test_huggingface_save_pretrained_folder_file(tmp_path, hf_model):
    hf_model.save_pretrained(tmp_path / "hf")
    ours = make(transfer_type="end2end").eval()
    load_pretrained(ours, tmp_path / "hf" / "model.safetensors")
    ours.head_norm.eps = 1e-5
    torch.testing.assert_close(ours(X), hf_logits(hf_model, X), atol=1e-5, rtol=1e-4)


def test_missing_backbone_tensor_is_named(tmp_path):
    sd = make().state_dict()
    del sd["blocks.1.attn.q_bias"]
    torch.save(sd, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"backbone tensor 'blocks.1.attn.q_bias' \(64,\) is missing"):
        load_pretrained(make(), tmp_path / "x.pth")


def test_hf_file_missing_a_bias_fails_loudly(tmp_path, hf_model):
    sd = {k: v for k, v in hf_model.state_dict().items() if "layer.0.attention.attention.query.bias" not in k}
    torch.save(sd, tmp_path / "x.bin")
    with pytest.raises(CheckpointError, match="blocks.0.attn.q_bias"):
        load_pretrained(make(transfer_type="end2end"), tmp_path / "x.bin")


def test_misshaped_backbone_and_prompt_tensors_are_named(tmp_path):
    torch.save(make(embed_dim=32, num_heads=2).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(CheckpointError, match="'patch_embed.proj.weight' has shape \\(32, 3, 2, 16, 16\\)"):
        load_pretrained(make(), tmp_path / "narrow.pth")
    torch.save(make(prompt_num_tokens=5).state_dict(), tmp_path / "p5.pth")
    with pytest.raises(CheckpointError, match="prompt tensor 'prompt_embeddings_k' has shape \\(2, 5, 32\\)"):
        load_pretrained(make(prompt_num_tokens=9), tmp_path / "p5.pth")


def test_untrusted_pickle_is_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": Boom()}, f)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_pretrained(make(), tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content,match", [(b"", "not a readable|refusing"),
                                           (b"\x00garbage" * 10, "not a readable|refusing"),
                                           (None, "no such checkpoint file")])
def test_unreadable_files(tmp_path, content, match):
    for suffix in (".pth", ".safetensors"):
        p = tmp_path / f"bad{suffix}"
        if content is not None:
            p.write_bytes(content)
        with pytest.raises(CheckpointError, match=match):
            load_pretrained(make(), p)


def test_state_dict_not_found_names_top_keys(tmp_path):
    torch.save({"epoch": 3, "args": {"lr": 1.0}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="no state dict found \\(top-level keys: epoch, args\\)"):
        load_pretrained(make(), tmp_path / "x.pth")


def test_huggingface_ids_resolve_from_the_local_cache(tmp_path, hf_model, monkeypatch):
    """``--finetune org/name``: read from a Hugging Face cache built here (no network), as
    huggingface_hub lays it out; with HF_HUB_OFFLINE set a missing id is a clear error."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--tiny-org--videomae-tiny" / "snapshots" / commit
    hf_model.save_pretrained(snapshot)
    (cache / "models--tiny-org--videomae-tiny" / "refs").mkdir()
    (cache / "models--tiny-org--videomae-tiny" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    import huggingface_hub.constants as hc
    importlib.reload(hc)  # the cache location and offline flag are read at import
    try:
        ours = make(transfer_type="end2end").eval()
        report, backbone = load_any(ours, "tiny-org/videomae-tiny")
        assert report.source_format == "huggingface" and not report.fresh
        assert backbone.path == str((snapshot / "model.safetensors").resolve())
        ours.head_norm.eps = 1e-5
        torch.testing.assert_close(ours(X), hf_logits(hf_model, X), atol=1e-5, rtol=1e-4)
        with pytest.raises(CheckpointError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
            load_pretrained(make(), "tiny-org/not-there")
        load_pretrained(make(transfer_type="end2end"), snapshot)  # a save_pretrained folder works too
    finally:
        monkeypatch.undo()
        importlib.reload(hc)


def test_a_mistyped_weights_path_is_a_missing_file_not_a_hub_id(tmp_path):
    assert is_hub_id("MCG-NJU/videomae-base") and is_hub_id("org/name@main")
    for typo in ("runs/best.safetensors", "ckpt/vitb.pth", "a/b.bin"):
        assert not is_hub_id(typo)
        assert resolve_weights(typo) == Path(typo)  # read as a file: "not found", with its name


def test_a_trained_tensors_file_whose_card_names_no_backbone_is_not_taken_for_whole(tmp_path):
    """A prompt-tuning file written before cards recorded the backbone: its header says it holds
    only the trained tensors, its card names no backbone. Loading it needs the backbone, given
    with ``pretrained``; without one it is refused, never run on a random backbone."""
    pre = tmp_path / "pretrained.pth"
    torch.save(backbone(randomize(make()).state_dict()), pre)
    tuned = make(transfer_type="prompt", prompt_num_tokens=4)
    models.load_pretrained(tuned, pre)
    with torch.no_grad():
        tuned.head.weight.normal_()
    card = models.ModelCard("vit_small_patch16_224", {**GEOM, "transfer_type": "prompt", "prompt_num_tokens": 4},
                            ["a", "b", "c"], "prompt", pretrained=backbone_record(pre))
    new = tmp_path / "new.safetensors"
    save_trained(tuned, new, card)

    with safe_open(str(new), framework="pt") as f:
        header = f.metadata()
    old_card = json.loads(header[META_KEY])
    old_card.pop("pretrained")  # as the older cards were written
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(new)), str(old), metadata={**header, META_KEY: json.dumps(old_card)})
    assert models.read_card(old).contents == "full"  # what the card alone would say
    with pytest.raises(CheckpointError, match="holds only the trained tensors and names no pretrained backbone"):
        models.build_from_trained(old)
    model, _ = models.build_from_trained(old, pretrained=pre)
    same_backbone(model, tuned)
    torch.testing.assert_close(model(X), tuned.eval()(X))
