"""models.artifact: checkpoints of every container round-trip into a model; a trained-tensors file
whose card names no backbone is not taken for a whole model."""
import json

import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file

from apt_video import models
from apt_video.models import CheckpointError, load_pretrained
from apt_video.models.artifact import META_KEY, backbone_record, save_trained

from checkpoint_kit import GEOM, X, backbone, make, randomize, same_backbone


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
                            ["a", "b", "c"], "prompt", clip=models.ClipSpec(num_frames=4, input_size=32),
                            pretrained=backbone_record(pre))
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
