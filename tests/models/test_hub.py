"""models.hub: Hugging Face ids resolve from the local cache; a mistyped weights path is a missing
file, not a hub id."""
from pathlib import Path

import pytest
import torch

from apt_video.models import CheckpointError, load_pretrained
from apt_video.models.artifact import load_any
from apt_video.models.hub import is_hub_id, resolve_weights

from checkpoint_kit import X, hf_logits, make, offline_hub_cache


def test_huggingface_ids_resolve_from_the_local_cache(tmp_path, hf_model, monkeypatch):
    """``--finetune org/name``: read from a Hugging Face cache built here (no network), as
    huggingface_hub lays it out; with HF_HUB_OFFLINE set a missing id is a clear error."""
    with offline_hub_cache(tmp_path, monkeypatch, "tiny-org/videomae-tiny", hf_model.save_pretrained) as snapshot:
        ours = make(transfer_type="end2end").eval()
        report, backbone = load_any(ours, "tiny-org/videomae-tiny")
        assert report.source_format == "huggingface" and not report.fresh
        assert backbone.path == str((snapshot / "model.safetensors").resolve())
        ours.head_norm.eps = 1e-5
        torch.testing.assert_close(ours(X), hf_logits(hf_model, X), atol=1e-5, rtol=1e-4)
        with pytest.raises(CheckpointError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
            load_pretrained(make(), "tiny-org/not-there")
        load_pretrained(make(transfer_type="end2end"), snapshot)  # a save_pretrained folder works too


def test_a_mistyped_weights_path_is_a_missing_file_not_a_hub_id(tmp_path):
    assert is_hub_id("MCG-NJU/videomae-base") and is_hub_id("org/name@main")
    for typo in ("runs/best.safetensors", "ckpt/vitb.pth", "a/b.bin"):
        assert not is_hub_id(typo)
        assert resolve_weights(typo) == Path(typo)  # read as a file: "not found", with its name
