"""apt_video.train: schedule, optimiser step and groups against the reference, learning, the frozen
backbone, resume after a kill, torchrun."""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open

from apt_video import models
from apt_video.cli import main
from apt_video.config import ConfigError, dump_config, load_config
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import load_manifest
from apt_video.tools.synth import make_motion_dataset
from apt_video.train import (
    Dist,
    build_optimizer,
    cosine_schedule,
    forward_backward,
    optimizer_step,
    param_groups,
    set_lr,
    train,
    train_one_epoch,
)

from reference import ref_adamw_step, ref_cosine_scheduler, ref_label_smoothing_ce, ref_param_groups
from train_kit import rows

APT = [sys.executable, "-m", "apt_video.cli"]


ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


@pytest.mark.parametrize("epochs,steps,warmup", [(4, 10, 1), (200, 3, 5), (3, 5, 0), (6, 1, 6)])
def test_cosine_schedule_equals_the_reference(epochs, steps, warmup):
    ours = cosine_schedule(0.3, 1e-6, epochs, steps, warmup, 0.0)
    np.testing.assert_allclose(ours, ref_cosine_scheduler(0.3, 1e-6, epochs, steps, warmup), rtol=1e-12)
    if warmup:
        assert ours[0] == 0.0  # the presets' warmup starts at 0, as the reference's
    assert load_config("hmdb51").warmup_lr == 0.0


def _twin_models(cfg):
    """A float64 prompt-tuned micro model (prompt scales away from 1), a copy for the reference step,
    a batch of 4 clips with labels, and the trained tensors before any step."""
    torch.manual_seed(0)
    model = models.create_model(cfg.model, **cfg.model_overrides(5)).double()
    with torch.no_grad():
        model.prompt_scale.uniform_(0.8, 1.5)
    ref_model = models.create_model(cfg.model, **cfg.model_overrides(5)).double()
    ref_model.load_state_dict(model.state_dict())
    video, labels = torch.randn(4, 3, 8, 112, 112, dtype=torch.float64), torch.tensor([0, 3, 1, 4])
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return model, ref_model, video, labels, before


@pytest.mark.parametrize("preset,weight_decay", [("hmdb51", None), ("ssv2", None), ("hmdb51", 0.5)])
def test_one_optimiser_step_equals_the_reference_step(preset, weight_decay):
    """Same weights, same batch, same point of the schedule: one step of ours equals one step of
    APT's (label-smoothed cross entropy, AdamW with decoupled decay, the reference's no-decay list)."""
    sets = ["model=vit_micro_patch16_112", "clip.input_size=112", "clip.num_frames=8", "prompt_num_tokens=6",
            "prompt_end=3", "prompt_dropout=0.0"] + ([f"weight_decay={weight_decay}"] if weight_decay else [])
    cfg = load_config(preset, sets=sets)
    assert cfg.opt == "adamw"
    model, ref_model, video, labels, before = _twin_models(cfg)

    # the reference step, on its own copy of the model
    logits = ref_model(video)
    ref_label_smoothing_ce(logits, labels, cfg.smoothing).backward()
    lr_ref = ref_cosine_scheduler(cfg.lr * 8 / 256, cfg.min_lr * 8 / 256, cfg.epochs, 10, cfg.warmup_epochs)[37]
    decay = ref_param_groups(ref_model, cfg.weight_decay)
    grads = {n: p.grad.detach().clone() for n, p in ref_model.named_parameters() if p.requires_grad}
    want = {n: ref_adamw_step(before[n], grads[n], lr_ref, decay[n], cfg.opt_betas, cfg.opt_eps) for n in before}

    # ours
    optimizer = build_optimizer(cfg, model)
    lr_values = cosine_schedule(cfg.lr * 8 / 256, cfg.min_lr * 8 / 256, cfg.epochs, 10, cfg.warmup_epochs,
                                cfg.warmup_lr * 8 / 256)
    assert set_lr(optimizer, lr_values, 37) == pytest.approx(lr_ref, rel=1e-12)
    loss = forward_backward(model, video, labels, cfg)
    want_loss = float(ref_label_smoothing_ce(logits, labels, cfg.smoothing).detach())
    assert float(loss) == pytest.approx(want_loss, rel=1e-12)
    optimizer_step(model, optimizer, None, cfg.clip_grad)
    after = dict(model.named_parameters())
    assert set(want) == {"prompt_embeddings_k", "prompt_embeddings_v", "prompt_scale", "head.weight", "head.bias",
                         "head_norm.weight", "head_norm.bias"}
    for n in want:
        torch.testing.assert_close(after[n].detach(), want[n], rtol=1e-10, atol=1e-13, msg=n)
    if weight_decay is None:
        # at the presets' decay the prompts move against their own (tiny) gradient; coupled L2 decay
        # (torch Adam) adds wd * p to that gradient, and the sum follows the decay for most key prompts
        for n in ("prompt_embeddings_k", "prompt_embeddings_v"):
            g, delta = grads[n], after[n].detach() - before[n]
            live = g.abs() > 1e-13
            assert live.float().mean() > 0.9
            assert (torch.sign(delta[live]) == -torch.sign(g[live])).all(), n
        g, p = grads["prompt_embeddings_k"], before["prompt_embeddings_k"]
        assert (torch.sign(g + cfg.weight_decay * p) == torch.sign(p)).float().mean() > 0.9


def test_adam_is_plain_torch_adam_with_l2_decay():
    cfg = load_config("demo", sets=["opt=adam", "weight_decay=0.1"])
    model = models.create_model("vit_micro_patch16_112", num_classes=3, prompt_num_tokens=2)
    opt = build_optimizer(cfg, model)
    assert type(opt) is torch.optim.Adam
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert type(build_optimizer(load_config("demo"), model)) is torch.optim.AdamW


def test_no_weight_decay_on_biases_and_1d_tensors():
    m = models.create_model("vit_micro_patch16_112", num_classes=3, prompt_num_tokens=4)
    decay, no_decay = param_groups(m, 0.05)
    names = {id(p): n for n, p in m.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {"prompt_embeddings_k", "prompt_embeddings_v",
                                                       "prompt_scale", "head.weight"}
    assert {names[id(p)] for p in no_decay["params"]} == {"head.bias", "head_norm.weight", "head_norm.bias"}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


def test_two_accumulated_half_batches_step_as_the_reference_steps_on_the_whole_batch():
    """update_freq 2 on batches of 2 is one step of the reference on the batch of 4 (the mean loss
    over the 4, AdamW with decoupled decay): how a run on fewer GPUs matches the paper's global batch."""
    sets = ["model=vit_micro_patch16_112", "prompt_num_tokens=6", "prompt_end=3", "prompt_dropout=0.0",
            "update_freq=2", "batch_size=2"]
    cfg = load_config("hmdb51", sets=sets)
    model, ref_model, video, labels, before = _twin_models(cfg)
    ref_label_smoothing_ce(ref_model(video), labels, cfg.smoothing).backward()
    decay = ref_param_groups(ref_model, cfg.weight_decay)
    lr = 0.01
    want = {n: ref_adamw_step(before[n], p.grad, lr, decay[n], cfg.opt_betas, cfg.opt_eps)
            for n, p in ref_model.named_parameters() if p.requires_grad}

    optimizer = build_optimizer(cfg, model)
    set_lr(optimizer, np.array([lr]), 0)
    for half in (slice(0, 2), slice(2, 4)):
        forward_backward(model, video[half], labels[half], cfg)
    optimizer_step(model, optimizer, None, cfg.clip_grad)
    after = dict(model.named_parameters())
    for n in want:
        torch.testing.assert_close(after[n].detach(), want[n], rtol=1e-10, atol=1e-13, msg=n)


@pytest.mark.parametrize("preset,batch,freq,world,lr,match", [
    ("hmdb51", 8, 1, 1, 0.3 * 8 / 256, 8), ("hmdb51", 8, 8, 1, 0.3 * 64 / 256, 8),
    ("ucf101", 8, 1, 4, 0.05 * 32 / 256, 2), ("ssv2", 6, 1, 1, 0.3 * 6 / 256, None),
    ("kinetics400", 8, 2, 2, 0.3 * 32 / 256, 4)])
def test_the_effective_lr_and_the_paper_global_batch(preset, batch, freq, world, lr, match):
    """run_class_apt.py:453-457: lr x batch_size x update_freq x world / 256; the presets' paper
    global batch is the authors' 8 GPUs x 8, and the run names the update_freq that reaches it."""
    from apt_video.config import lr_scaling

    cfg = load_config(preset, sets=[f"batch_size={batch}", f"update_freq={freq}"])
    s = lr_scaling(cfg, world)
    assert s.global_batch == batch * freq * world and s.lr == pytest.approx(lr, rel=1e-12)
    assert s.min_lr == pytest.approx(cfg.min_lr * s.global_batch / 256, rel=1e-12)
    assert s.paper_global_batch == 64 and s.matching_update_freq == match
    line = s.describe(cfg, world)
    assert f"lr {lr:.4g} " in line and f"global batch {s.global_batch} " in line
    if s.global_batch != 64:
        assert "the paper's global batch is 64 (lr " in line
        assert (f"--set update_freq={match} matches it here" if match else "no update_freq matches it") in line


def test_the_clip_defaults_from_the_architecture_and_round_trips(tmp_path):
    """Clip keys a preset or --set leaves out take the architecture's clip (as timm's pretrained_cfg);
    the written config.yaml reads back to the same config."""
    from apt_video.models import ClipSpec, default_clip

    assert load_config("hmdb51").clip == ClipSpec() == default_clip("vit_base_patch16_224")
    micro = load_config("hmdb51", sets=["model=vit_micro_patch16_112", "prompt_end=3", "clip.sampler=segment"])
    assert micro.clip == ClipSpec(num_frames=8, sampling_rate=2, input_size=112, sampler="segment",
                                  test_num_segment=2, test_num_crop=3)
    assert micro.model_overrides(4)["num_frames"] == 8 and micro.model_overrides(4)["img_size"] == 112
    (tmp_path / "c.yaml").write_text(dump_config(micro))
    assert load_config(config_file=str(tmp_path / "c.yaml")) == micro


def test_a_folder_holding_a_run_is_not_trained_over(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.safetensors").write_bytes(b"weights of an earlier run")
    assert main(["train", "--preset", "demo", "--data-root", str(tmp_path), "-o", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds a training run already; pass --resume to continue it, or --overwrite" in err
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == b"weights of an earlier run"
    # --overwrite clears what a run wrote, then goes on (here to the missing list file)
    assert main(["train", "--preset", "demo", "--data-root", str(tmp_path), "-o", str(run), "--overwrite"]) == 2
    assert not (run / "checkpoints" / "last.safetensors").exists()
    assert "no such list file" in capsys.readouterr().err


def test_wrong_pretrained_file_names_the_tensor(tmp_path, task_data, capsys):
    other = models.create_model("vit_small_patch16_224", num_classes=4, transfer_type="end2end")
    torch.save({"model": other.state_dict()}, tmp_path / "vits.pth")
    code = main(["train", "--preset", "demo", "--data-root", str(task_data / "A"), "-o", str(tmp_path / "r"),
                 "--finetune", str(tmp_path / "vits.pth"), "--no-progress"])
    assert code == 2
    assert "has shape" in capsys.readouterr().err


def test_prompt_tuning_learns_the_task_and_records_everything(prompt_run, backbone_run):
    run, result = prompt_run
    assert [int(r["epoch"]) for r in rows(run)] == list(range(8))
    assert result["test"]["top1"] >= 75.0  # chance is 25
    assert result["history"][-1]["val_top1"] >= 75.0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["transfer_type"] == "prompt" and cfg["epochs"] == 8
    scaled = cfg["derived"]  # what the run made of its settings, for the record; ignored when read back
    assert scaled["global_batch"] == cfg["batch_size"] * cfg["update_freq"] * scaled["world_size"]
    assert scaled["effective_lr"] == pytest.approx(cfg["lr"] * scaled["global_batch"] / cfg["lr_scale_batch"])
    settings = {k: v for k, v in cfg.items() if k != "derived"}
    assert load_config(config_file=str(run / "config.yaml")).to_dict() == settings
    card = models.read_card(run / "checkpoints" / "last.safetensors")
    assert card.classes == ["move_045.0deg", "move_135.0deg", "move_225.0deg", "move_315.0deg"]
    assert card.pretrained.sha256 == models.sha256_file(backbone_run[0] / "checkpoints" / "last.safetensors")
    assert (card.clip.num_frames, card.clip.input_size, card.clip.test_num_segment) == (8, 112, 2)
    assert card.epoch == 7 and card.contents == "trained"
    with safe_open(str(run / "checkpoints" / "last.safetensors"), "pt") as f:
        assert set(f.keys()) == {"prompt_embeddings_k", "prompt_embeddings_v", "prompt_scale", "head.weight",
                                 "head.bias", "head_norm.weight", "head_norm.bias"}
    test = json.loads((run / "test_metrics.json").read_text())
    assert len(test["confusion_matrix"]) == 4 and sum(map(sum, test["confusion_matrix"])) == test["videos"]
    assert set(test["per_class"]) == set(card.classes) and test["views"] == "2x3"
    assert list((run / "tb").glob("events.out.tfevents.*"))


def test_only_trainable_tensors_change(task_data, backbone_run):
    cfg = load_config("demo", sets=["num_workers=1"])
    model = models.create_model(cfg.model, **cfg.model_overrides(4))
    models.load_pretrained(model, backbone_run[0] / "checkpoints" / "last.safetensors")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds, _ = load_manifest(task_data / "B" / "train.csv")
    loader = VideoLoader(ds.usable(), cfg.clip, batch_size=8, num_workers=1)
    train_one_epoch(model, loader, build_optimizer(cfg, model), None, cosine_schedule(0.01, 0.01, 1, 10, 0, 0),
                    0, cfg, Dist(), progress=False)
    for k, v in model.state_dict().items():
        if k.startswith(("prompt", "head")):
            assert not torch.equal(v, before[k]), k
        else:
            assert torch.equal(v, before[k]), k  # bit-identical backbone


def test_kill_and_resume_loses_and_repeats_no_epoch(tmp_path, task_data, kill_when):
    run = tmp_path / "run"
    cmd = APT + ["train", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(run), "--no-progress",
                 "--set", "epochs=4", "--set", "num_workers=1", "--set", "final_test=false", "--resume"]
    kill_when(cmd, lambda: (run / "metrics.csv").is_file() and len(rows(run)) >= 1, ENV)
    done = rows(run)
    assert 1 <= len(done) < 4
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    final = rows(run)
    assert [int(r["epoch"]) for r in final] == [0, 1, 2, 3]
    assert final[:len(done)] == done  # the epochs before the kill are kept as they were
    state = torch.load(run / "checkpoints" / "last_state.pt", weights_only=True)
    assert state["epoch"] == 3


def test_a_non_finite_step_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, task_data, capsys):
    """Epoch 0 trains; its saved optimiser state is then poisoned (NaN moments), so the resumed epoch
    1 turns the prompts NaN: the run stops with one line, nothing of epoch 1 is saved."""
    run = tmp_path / "run"
    argv = ["train", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(run), "--no-progress",
            "--set", "num_workers=0", "--set", "final_test=false"]
    assert main([*argv, "--set", "epochs=1"]) == 0
    ckpt = run / "checkpoints"
    state = torch.load(ckpt / "last_state.pt", weights_only=True)
    for moments in state["optimizer"]["state"].values():
        moments["exp_avg"].fill_(float("nan"))
    torch.save(state, ckpt / "last_state.pt")
    kept = {name: (ckpt / name).read_bytes() for name in ("best.safetensors", "last.safetensors")}
    capsys.readouterr()
    assert main([*argv, "--set", "epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if ": error: " in x]
    assert "nan" in line.lower() and "lower lr" in line and "the last complete one" in line, line
    assert {name: (ckpt / name).read_bytes() for name in kept} == kept
    assert [int(r["epoch"]) for r in rows(run)] == [0]
    assert torch.load(ckpt / "last_state.pt", weights_only=True)["epoch"] == 0


def test_a_refused_first_try_leaves_nothing_that_blocks_the_retry(tmp_path, task_data, capsys, caplog):
    run = tmp_path / "run"
    argv = ["train", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(run), "--no-progress",
            "--set", "num_workers=0", "--set", "final_test=false", "--set", "epochs=1"]
    assert main([*argv, "--set", "nb_classes=51"]) == 2  # the hmdb51 preset on a folder of 4 classes
    assert "nb_classes=51 but the dataset names 4 classes" in capsys.readouterr().err
    assert main([*argv, "--pretrained", str(tmp_path / "missing.pth")]) == 2  # a backbone that is not there
    assert "missing.pth: no such checkpoint file" in capsys.readouterr().err
    assert not run.exists()
    (run / "checkpoints").mkdir(parents=True)  # what a refused try of an older version left
    (run / "config.yaml").write_text("epochs: 1\n")
    assert main(argv) == 0  # the retry runs: a folder without metrics or checkpoints is not a run
    assert [int(r["epoch"]) for r in rows(run)] == [0]
    warned = [r.getMessage() for r in caplog.records if "random backbone" in r.getMessage()]
    assert len(warned) == 1 and "--pretrained" in warned[0]  # prompt tuning with no backbone given
    assert main(argv) == 2  # now it is a run
    assert "holds a training run already" in capsys.readouterr().err


def test_a_folder_of_own_videos_is_split_stratified_seeded_and_kept(tmp_path, capsys, caplog):
    make_motion_dataset(tmp_path / "own", classes=4, per_class=5, frames=24, size=(64, 48), offset_deg=45,
                        split=(1, 0, 0), seed=2)
    own, run = tmp_path / "own" / "videos", tmp_path / "run"
    argv = ["train", "--preset", "demo", "--data", str(own), "--val-split", "0.2", "--test-split", "0.2",
            "-o", str(run), "--no-progress", "--set", "num_workers=0", "--set", "epochs=1"]
    assert main(argv) == 0
    parts = {p: (run / "holdout" / f"{p}.txt").read_text().splitlines() for p in ("train", "val", "test")}
    videos = sorted(str(v.resolve()) for v in own.rglob("*.webm"))
    assert sorted(line.rsplit(" ", 1)[0] for lines in parts.values() for line in lines) == videos  # each once
    for part, per_class in (("train", 3), ("val", 1), ("test", 1)):  # stratified: every class its share
        labels = [int(line.rsplit(" ", 1)[1]) for line in parts[part]]
        assert sorted(labels) == sorted(list(range(4)) * per_class), part
    classes = (run / "holdout" / "classes.txt").read_text().split()
    assert classes == sorted(d.name for d in own.iterdir() if d.is_dir())  # nb_classes and names from the folders
    assert json.loads((run / "test_metrics.json").read_text())["videos"] == 4
    again = tmp_path / "again"  # the same folder and seed: the same split
    assert main([*argv[:9], "-o", str(again), "--no-progress", "--set", "num_workers=0", "--set", "epochs=1"]) == 0
    assert (again / "holdout" / "val.txt").read_text() == "\n".join(parts["val"]) + "\n"
    shutil.copy(next(own.rglob("*.webm")), own / classes[0] / "added_later.webm")  # kept split: it is not used
    assert main([*argv, "--resume", "--set", "epochs=2"]) == 0
    assert {p: (run / "holdout" / f"{p}.txt").read_text().splitlines() for p in parts} == parts
    assert any("1 videos were added to the training folder" in r.getMessage() for r in caplog.records)
    capsys.readouterr()
    assert main([*argv[:5], "--val-split", "0.6", "--test-split", "0.3", "-o", str(tmp_path / "x")]) == 2
    assert "too few to hold out" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["train", "--preset", "demo", "-o", str(tmp_path / "y")]) == 2
    assert "give --data FOLDER" in capsys.readouterr().err


def test_ctrl_c_prints_one_line_and_resume_continues(tmp_path, task_data, kill_when):
    run = tmp_path / "run"
    cmd = APT + ["train", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(run), "--no-progress",
                 "--set", "epochs=3", "--set", "num_workers=1", "--set", "final_test=false", "--resume"]
    code, err = kill_when(cmd, lambda: (run / "metrics.csv").is_file() and len(rows(run)) >= 1, ENV,
                          sig=signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert [line for line in err.splitlines() if "interrupted" in line] == [
        "apt-video train: interrupted; the same command with --resume continues after the last complete epoch"]
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert [int(r["epoch"]) for r in rows(run)] == [0, 1, 2]


@pytest.mark.slow
def test_two_process_gloo_torchrun(tmp_path, task_data):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "apt_video.cli", "train", "--preset", "demo", "--data-root", str(task_data / "B"), "-o", str(run),
           "--no-progress", "--set", "epochs=2", "--set", "num_workers=1", "--set", "num_threads=1"]
    res = subprocess.run(cmd, env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [int(r["epoch"]) for r in rows(run)] == [0, 1]
    single = load_config("demo")
    # the lr scales with the global batch: 2 ranks x 8 clips
    warm_end = single.lr * 16 / 256
    assert float(rows(run)[0]["lr"]) == pytest.approx(warm_end, rel=1e-6)
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["videos"] == 32  # every test video scored once across the two ranks


def test_resume_reloads_the_backbone_the_run_was_trained_on(tmp_path, prompt_run, task_data, backbone_run):
    """A prompt run's state holds only what it trained: resuming without --finetune takes the
    backbone from the run's record (checked by sha256), not a random one."""
    run = tmp_path / "B"
    shutil.copytree(prompt_run[0], run)
    cfg = load_config("demo", sets=["epochs=9", "num_workers=1", "final_test=false"])
    # a state whose optimiser does not fit is refused before the run's folder is touched
    bad = torch.load(run / "checkpoints" / "last_state.pt", weights_only=True)
    bad["optimizer"]["param_groups"] = bad["optimizer"]["param_groups"][:1]
    torch.save(bad, tmp_path / "bad_state.pt")
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with pytest.raises(models.CheckpointError, match="the state's optimiser does not fit"):
        train(cfg, task_data / "B", run, resume=str(tmp_path / "bad_state.pt"), progress=False)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before
    result = train(cfg, task_data / "B", run, resume="auto", progress=False)
    assert [h["epoch"] for h in result["history"]][-1] == 8
    assert result["history"][-1]["val_top1"] >= 75.0  # on a random backbone the prompts would be at chance
    with pytest.raises(ConfigError, match="prompt_num_tokens: 8 -> 16"):
        train(load_config("demo", sets=["epochs=10", "prompt_num_tokens=16"]), task_data / "B", run,
              resume="auto", progress=False)
    moved = tmp_path / "backbone.safetensors"
    shutil.copy(backbone_run[0] / "checkpoints" / "last.safetensors", moved)
    state = torch.load(run / "checkpoints" / "last_state.pt", weights_only=True)
    state["pretrained"]["path"] = str(moved)
    moved.write_bytes(moved.read_bytes()[:-8] + b"\0" * 8)  # not the file it was
    torch.save(state, run / "checkpoints" / "last_state.pt")
    with pytest.raises(models.CheckpointError, match="missing or changed"):
        train(load_config("demo", sets=["epochs=10"]), task_data / "B", run, resume="auto", progress=False)
    # --finetune naming another backbone than the run's: old prompts on new features, refused
    with pytest.raises(models.CheckpointError, match="not the backbone this run was trained on"):
        train(load_config("demo", sets=["epochs=10"]), task_data / "B", run, finetune=str(moved), resume="auto",
              progress=False)
