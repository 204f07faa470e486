"""Checkpoint formats round-trip from files written here; wrong files give named errors."""
import pickle

import pytest
import torch
from safetensors.torch import save_file

from apt_video.models import CheckpointError, load_pretrained

from checkpoint_kit import X, backbone, hf_logits, make, randomize, same_backbone


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
