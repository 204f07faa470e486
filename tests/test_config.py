"""apt_video.config: the presets reproduce the paper's tables; the clip defaults from the
architecture; bad keys and values are named before any work."""
import re

import pytest

from apt_video.cli import main
from apt_video.config import ConfigError, load_config


def test_presets_reproduce_the_paper_tables():
    expect = {"hmdb51": (0.3, "rand-m7-n4-mstd0.5-inc1", 10, 51), "ucf101": (0.05, "rand-m4-n2-mstd0.2-inc1", 5, 101),
              "ssv2": (0.3, "rand-m2-n2-mstd0.2-inc1", 10, 174)}
    for name, (lr, aa, seg, classes) in expect.items():
        c = load_config(name)
        assert (c.lr, c.aa, c.clip.test_num_segment, c.nb_classes) == (lr, aa, seg, classes)
        assert (c.batch_size, c.val_batch_size, c.epochs, c.model, c.tubelet_size) == \
            (8, 8, 200, "vit_base_patch16_224", 2)
        assert (c.clip.num_frames, c.clip.sampling_rate, c.clip.input_size) == (16, 4, 224)  # ViT-B's own clip
        assert (c.opt, c.opt_eps, c.opt_betas[0], c.weight_decay, c.warmup_lr, c.min_lr, c.warmup_epochs) == \
            ("adamw", 1e-8, 0.9, 1e-5, 0.0, 1e-6, 5)
        assert (c.color_jitter, c.smoothing, c.clip.test_num_crop, c.prompt_num_tokens, c.prompt_start,
                c.prompt_end, c.prompt_dropout, c.prompt_reparam, c.prompt_init) == \
            (0.4, 0.1, 3, 200, 0, 11, 0.1, True, "random")
    assert load_config("ssv2").clip.sampler == "segment" and not load_config("ssv2").flip
    for tokens in (1, 5, 100, 200):
        assert load_config("hmdb51", sets=[f"prompt_num_tokens={tokens}"]).prompt_num_tokens == tokens


@pytest.mark.parametrize("sets,message", [
    (["learning_rate=0.1"], "unknown key 'learning_rate'"),
    (["prompt_tokens=5"], "did you mean prompt_num_tokens"),
    (["lr=fast"], "lr='fast' must be float"),
    (["batch_size=0"], "batch_size=0: must be at least 1"),
    (["transfer_type=lora"], "transfer_type='lora'"),
    (["aa=rand-q3"], "auto_augment='rand-q3'"),
    (["dali_executor=fast"], "dali_executor='fast'"),
    (["prompt_start=5", "prompt_end=2"], "prompt_start=5: must be <= prompt_end=2"),
    (["model=vit_giant"], "model='vit_giant'"),
    (["lr"], "expected key=value"),
    (["clip_grad=-1"], "clip_grad=-1.0: must be > 0"),
    (["momentum=1.5"], "momentum=1.5: must be in [0, 1)"),
    (["lr=.nan"], "lr=nan: must be >= 0"),
    (["opt_eps=0"], "opt_eps=0.0: must be > 0"),
    (["aa_region=patch"], "aa_region='patch'"),
    (["num_frames=8"], "unknown key 'num_frames'; did you mean clip.num_frames?"),
    (["clip.num_frame=8"], "unknown key 'clip.num_frame'; did you mean clip.num_frames?"),
    (["clip.num_frames=7"], "clip.num_frames=7: must be a multiple of tubelet_size=2"),
    (["clip.sampler=tsn"], "clip.sampler='tsn'"),
    (["clip.std=[0, 0, 0]"], "clip.std=[0.0, 0.0, 0.0] must be greater than 0"),
    (["clip.mean=[0.5, 0.5]"], "clip.mean=[0.5, 0.5] must be 3 finite numbers"),
    (["clip=16"], "clip must be a mapping of num_frames"),
])
def test_bad_configs_are_rejected_naming_the_key(sets, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("demo", sets=sets)


def test_bad_config_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("epochs: 3\nwarmup_epoch: 1\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--data-root", str(tmp_path),
                 "-o", str(tmp_path / "run")]) == 2
    assert "unknown key 'warmup_epoch'; did you mean warmup_epochs" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["1e-4", "1E-4", ".0001", "0.0001", "+1.0e-4", "1.e-4"])
def test_every_way_of_writing_a_decimal_is_a_number(text):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string: the weight-decay ablation as anyone writes it."""
    assert load_config("demo", sets=[f"weight_decay={text}"]).weight_decay == pytest.approx(1e-4)
    assert load_config("demo", varied=[f"weight_decay={text}"]).weight_decay == pytest.approx(1e-4)
    assert load_config("demo", sets=[f"crop_scale=[{text}, 1]"]).crop_scale == pytest.approx([1e-4, 1.0])
    with pytest.raises(ConfigError, match="must be float"):
        load_config("demo", sets=["weight_decay=1e-4x"])


def test_the_kinetics_preset_takes_videomae_data_settings_and_apt_prompt_settings():
    """VideoMAE's K400 ViT-B fine-tune script (16x4 clips, 5x3 views, rand-m7-n4-mstd0.5-inc1, 75 epochs,
    400 classes) with APT's prompt recipe (as its HMDB51 and SSv2 tables)."""
    k, apt = load_config("kinetics400"), load_config("ssv2")
    assert (k.nb_classes, k.epochs, k.aa, k.num_sample, k.smoothing, k.warmup_epochs) == \
        (400, 75, "rand-m7-n4-mstd0.5-inc1", 2, 0.1, 5)
    assert (k.clip.num_frames, k.clip.sampling_rate, k.clip.input_size, k.clip.sampler, k.clip.test_num_segment,
            k.clip.test_num_crop) == (16, 4, 224, "dense", 5, 3)
    for key in ("model", "opt", "lr", "weight_decay", "warmup_lr", "min_lr", "transfer_type", "prompt_num_tokens",
                "prompt_start", "prompt_end", "prompt_dropout", "prompt_reparam", "reprob", "batch_size"):
        assert getattr(k, key) == getattr(apt, key), key
