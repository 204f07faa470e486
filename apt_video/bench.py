"""``apt-video bench``: throughput of apt-video's paths against named baselines, measured in the
same run on the same files and model, printed with the ratio (ours / baseline)."""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import models

from pipeline.data import VideoEntry
from pipeline.randaug import VIDEOMAE_RAND_AUGMENT


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def rss_mb(pid: int | None = None) -> float:
    """Memory of a process and all its descendants in MB (decode workers; a local Ray cluster's
    raylet and its workers): the sum of their proportional set sizes (PSS), so pages they share
    (forked memory, Ray's shared-memory object store) are counted once (Linux)."""
    pid = pid or os.getpid()
    pids, children = [pid], {}
    try:
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        for line in out.splitlines():
            child, parent = (int(x) for x in line.split())
            children.setdefault(parent, []).append(child)
    except (OSError, ValueError):
        pass
    for p in pids:  # grows while walked: breadth first over the descendants
        pids.extend(children.get(p, []))
    total = 0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(text.split("\nPss:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def bench_videos(folder: Path, codec: str, n: int, frames: int = 96, size=(320, 240),
                 threads: int = 1) -> list[VideoEntry]:
    """``n`` synthetic motion videos of ``frames`` frames (made once per folder, ``threads`` at a
    time), probed."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.video import CODECS, probe_video, write_video

    from .synth import motion_clip

    def make(i: int) -> VideoEntry:
        path = folder / f"{codec}_{i:03d}{CODECS[codec][1]}"
        if not path.is_file():
            clip = motion_clip(90 * (i % 4), frames, size[0], size[1], np.random.default_rng([0, i]))
            write_video(path, clip, codec, gop=12)
        return probe_video(path, label=i % 4)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(make, range(n)))


def timed(batches, warmup: int, count: int, on_batch=None) -> tuple[float, int]:
    """Seconds and clips for ``count`` batches after ``warmup`` ones."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    t0, clips = time.perf_counter(), 0
    for i in range(count):
        b = next(it)
        clips += len(b[0]) if isinstance(b, (list, tuple)) else len(b.video)
        if on_batch:
            on_batch(i)
    return time.perf_counter() - t0, clips


def _cycle(make):
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1


# -- loader -------------------------------------------------------------------------------------------
def _loader_rate(loader, warmup: int, count: int) -> float:
    """Items per second of a torch DataLoader (its workers end with it)."""
    secs, items = timed(_cycle(lambda e: iter(loader)), warmup, count)
    return items / secs


def bench_loader(work: Path, batches: int = 30, videos: int = 16, workers: int = 2,
                 rand_augment: str = VIDEOMAE_RAND_AUGMENT, codecs: str = "vp9,h264", num_sample: int = 2,
                 interps: str = "bilinear,nearest", executors: str = "dynamic", regions: str = "frame") -> dict:
    """Training clips/s of apt-video's loader (once per RandAugment interpolation in ``interps``, DALI
    executor in ``executors`` and augmentation order in ``regions``; figures named by the
    interpolation, plus ``_pipelined`` for that executor and ``_crop`` for RandAugment on the crop)
    against VideoMAE's (decord + PIL RandAugment on the whole frame, then the crop), both making
    ``num_sample`` augmentations of each decode, batches of 8 videos; plus decord's decode-only rate
    in clips/s (decodes x num_sample)."""
    from .baselines import decord_loader

    from pipeline.graphs import AugmentSpec
    from pipeline.loader import VideoLoader
    from pipeline.randaug import parse_rand_augment

    spec = models.ClipSpec(num_frames=16, sampling_rate=4, input_size=224)
    res = {"clip": f"16 frames, rate 4, 224 px, 8 videos x num_sample {num_sample} per batch, " + rand_augment,
           "videos": "320x240, 96 frames", "num_sample": num_sample}
    variants = [(i, e, a, i + ("" if e == "dynamic" else f"_{e}") + ("" if a == "frame" else f"_{a}"))
                for a in regions.split(",") for e in executors.split(",") for i in interps.split(",")]
    names = [v[3] for v in variants]
    for codec in codecs.split(","):
        entries = bench_videos(work, codec, videos)
        paths = [e.path for e in entries]
        route = "DALI decoder" if codec in ("vp9", "vp8", "mjpeg") else "PyAV in DALI source workers"
        r = res[codec] = {"route": route}
        for interp, executor, region, name in variants:
            # configured as training uses it (pipeline/train.py): one reused batch buffer
            ours = VideoLoader(entries, spec, batch_size=8, num_workers=workers, num_sample=num_sample, reuse=True,
                               executor=executor, augment=AugmentSpec(
                                   rand_augment=parse_rand_augment(rand_augment, interp), aa_region=region))
            rss = {}  # batch number -> PSS in MB: at 10, every 50, and at the end
            secs, clips = timed(_cycle(ours.epoch), 2, batches,
                                lambda i: rss.__setitem__(i + 1, round(rss_mb(), 1))
                                if i + 1 == 10 or (i + 1) % 50 == 0 or i + 1 == batches else None)
            ours.close()
            r[f"ours_{name}_clips_per_s"], r[f"pss_mb_by_batch_{name}"] = clips / secs, rss
            r[f"peak_pss_mb_{name}"] = max(rss.values())  # of the samples taken
        r["baseline_clips_per_s"] = base_rate = _loader_rate(
            decord_loader(paths, spec, rand_augment, workers=workers, num_sample=num_sample), 2, batches)
        r["decode_only_clips_per_s"] = ceil_rate = num_sample * _loader_rate(
            decord_loader(paths, spec, None, workers=workers, decode_only=True), 1, max(5, batches // 3))
        for name in names:
            rate = r[f"ours_{name}_clips_per_s"]
            r[f"ratio_{name}"], r[f"fraction_of_decode_{name}"] = rate / base_rate, rate / ceil_rate
        r["ratio"] = r[f"ratio_{names[0]}"]
        print(f"loader {codec}: baseline (decord + PIL RandAugment, {workers} workers) {base_rate:.1f} clips/s; "
              f"decode-only {ceil_rate:.1f} clips/s")
        for interp, executor, region, name in variants:
            rate = r[f"ours_{name}_clips_per_s"]
            print(f"  ours, RandAugment on the {region}, {interp} geometric ops, {executor} executor: "
                  f"{rate:.1f} clips/s, "
                  f"ratio {rate / base_rate:.2f}, {100 * rate / ceil_rate:.0f}% of decode-only; "
                  f"peak PSS {r[f'peak_pss_mb_{name}']:.0f} MB; memory (PSS, MB by batch) "
                  + ", ".join(f"{k}: {v:.0f}" for k, v in r[f"pss_mb_by_batch_{name}"].items()))
    return res


# -- inference ------------------------------------------------------------------------------------------
def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def _rate(fn, x, reps: int) -> float:
    with torch.no_grad():
        fn(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(x)
    return reps * len(x) / (time.perf_counter() - t0)


def _interleaved(fns: dict, x: np.ndarray, rounds: int) -> dict:
    """Clips/s of each of ``fns`` (name -> function of a batch) in each of ``rounds`` rounds, one batch
    each in turn after a warm-up: a shared machine's drifts then fall on all of them alike, where
    timing one after the other would hand a slow spell to one side."""
    for fn in fns.values():
        fn(x)
    rates = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            rates[name].append(len(x) / (time.perf_counter() - t0))
    return rates


def bench_infer(work: Path, model_name: str = "vit_small_patch16_224", batch: int = 2, reps: int = 3,
                precisions: str = "fp32", rounds: int = 7) -> dict:
    """Clips/s of one network: eager PyTorch (the baseline), folded SDPA PyTorch, ONNX Runtime, the
    same without prompts, and, with ``int8`` in ``precisions``, the Q/DQ int8 graph in ONNX Runtime
    against the fp32 one in the same run (calibrated on random clips: a speed figure, not accuracy),
    the two timed in turn over ``rounds`` rounds and compared by their median rates."""
    from export import export_onnx, onnx_session

    from .baselines import EagerViT

    torch.manual_seed(0)
    m = models.create_model(model_name, num_classes=400, prompt_num_tokens=200).eval()
    m0 = models.create_model(model_name, num_classes=400, transfer_type="linear").eval()
    m0.load_state_dict({k: v for k, v in m.state_dict().items() if "prompt" not in k})
    x = torch.randn(batch, 3, m.num_frames, m.img_size, m.img_size)
    folded = models.fold_prompts(m)
    eager = _rate(EagerViT(m), x, reps)
    sdpa = _rate(folded, x, reps)
    onnx_path = export_onnx(m, work / "infer.onnx", opset=23)
    sess, providers = onnx_session(onnx_path)
    ort_rate = _rate(lambda v: sess.run(None, {"video": v.numpy()}), x, reps)
    no_prompts = _rate(models.fold_prompts(m0), x, reps)
    gflops = matmul_gflops()
    flop = models.flops_per_clip(m)
    floor = gflops * 1e9 / flop  # clips/s if every flop ran at the measured matmul rate
    res = {"model": f"{model_name} ({m.num_frames}x{m.img_size}, 200 prompts)", "batch": batch,
           "eager_explicit_attention_clips_per_s": eager, "torch_sdpa_clips_per_s": sdpa,
           "onnxruntime_clips_per_s": ort_rate, "onnxruntime_providers": providers,
           "ratio": sdpa / eager, "ort_vs_eager_ratio": ort_rate / eager,
           "matmul_gflops": gflops, "gflop_per_clip": flop / 1e9, "compute_floor_clips_per_s": floor,
           "ort_fraction_of_floor": ort_rate / floor, "no_prompt_clips_per_s": no_prompts,
           "prompt_latency_cost": no_prompts / sdpa - 1}
    print(f"infer {res['model']}, batch {batch}: eager {eager:.2f} clips/s, ours (SDPA) {sdpa:.2f} "
          f"(ratio {sdpa / eager:.2f}), ONNX Runtime {ort_rate:.2f} ({', '.join(providers)}); matmul "
          f"{gflops:.0f} GFLOP/s -> floor {floor:.2f} clips/s, ORT at {100 * ort_rate / floor:.0f}%; "
          f"200 prompts cost {100 * res['prompt_latency_cost']:+.1f}% latency")
    if "int8" in precisions.split(","):
        from export.quantize import quantize_int8

        quantize_int8(onnx_path, work / "infer_int8.onnx", torch.randn(4, *x.shape[1:]).numpy())
        s8, _ = onnx_session(work / "infer_int8.onnx")
        rates = _interleaved({"int8": lambda v: s8.run(None, {"video": v}),
                              "fp32": lambda v: sess.run(None, {"video": v})}, x.numpy(), rounds)
        int8, fp32 = float(np.median(rates["int8"])), float(np.median(rates["fp32"]))
        each = [a / b for a, b in zip(rates["int8"], rates["fp32"])]
        res.update(int8_clips_per_s=int8, fp32_clips_per_s_same_run=fp32, int8_vs_fp32=int8 / fp32,
                   int8_vs_fp32_by_round=each, int8_vs_floor=int8 / floor, cpu_int8_features=_int8_features())
        print(f"int8 (ONNX Runtime, Q/DQ MatMul/Conv/Gemm): {int8:.2f} clips/s against fp32 {fp32:.2f} "
              f"(medians of {rounds} interleaved rounds): {int8 / fp32:.2f}x (rounds {min(each):.2f}-{max(each):.2f}); "
              f"{100 * int8 / floor:.0f}% of the fp32 matmul floor; CPU int8 features: "
              f"{', '.join(res['cpu_int8_features']) or 'none'}")
    return res


def _int8_features() -> list[str]:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags.split()]


# -- training step ----------------------------------------------------------------------------------------
def _train_step_child(model_name: str, transfer: str, batch: int, steps: int, frames: int, size: int) -> dict:
    from .config import load_config
    from .train import amp_settings, build_optimizer, forward_backward, optimizer_step

    torch.manual_seed(0)
    m = models.create_model(model_name, num_classes=51, num_frames=frames, img_size=size, transfer_type=transfer,
                            prompt_num_tokens=200)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m.to(dev).train()
    cfg = load_config("demo", sets=[f"transfer_type={transfer}"])
    opt = build_optimizer(cfg, m)
    x = torch.randn(batch, 3, frames, size, size, device=dev)
    y = torch.randint(0, 51, (batch,), device=dev)
    amp_dtype, _ = amp_settings(cfg.amp, dev)
    times = []
    for i in range(steps + 1):  # the training step itself (apt_video.train), one batch again and again
        t0 = time.perf_counter()
        forward_backward(m, x, y, cfg, amp_dtype=amp_dtype)
        optimizer_step(m, opt)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step_s": float(np.median(times)), "peak_mb": peak, "trainable": models.count_parameters(m)[0]}


def bench_train(model_name: str = "vit_small_patch16_224", batch: int = 2, steps: int = 3, frames: int = 8,
                size: int = 112) -> dict:
    res = {"model": f"{model_name} at {frames}x{size}", "batch": batch,
           "memory": "peak CUDA allocation" if torch.cuda.is_available() else "peak process RSS (one process each)"}
    for transfer in ("prompt", "linear", "end2end"):
        code = (f"import json, apt_video.bench as b; print(json.dumps(b._train_step_child({model_name!r}, "
                f"{transfer!r}, {batch}, {steps}, {frames}, {size})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        res[transfer] = json.loads(out.stdout.strip().splitlines()[-1])
    res["ratio"] = res["end2end"]["step_s"] / res["prompt"]["step_s"]  # speed-up of prompt tuning over full FT
    for t in ("prompt", "linear", "end2end"):
        r = res[t]
        print(f"train {t:8s}: {r['step_s'] * 1000:.0f} ms/step, peak {r['peak_mb']:.0f} MB, "
              f"{r['trainable']:,} trainable")
    print(f"train: prompt tuning steps {res['ratio']:.2f}x faster than end2end ({res['model']}, batch {batch})")
    return res


# -- scoring ------------------------------------------------------------------------------------------------
def _score_model(work: Path, model_name: str, views: tuple[int, int]) -> tuple[Path, Path, models.ModelCard]:
    """A randomly initialised ``model_name`` (8 prompts, 4 classes) saved and exported to ONNX:
    ``(weights, export folder, card)``."""
    from .exporting import export_run

    torch.manual_seed(0)
    m = models.create_model(model_name, num_classes=4, prompt_num_tokens=8, init_scale=1.0)
    rate = 2 if m.num_frames <= 8 else 4  # VideoMAE's test sampling for 8- and 16-frame models
    card = models.ModelCard(
        model=model_name, model_overrides={"num_classes": 4, "prompt_num_tokens": 8, "init_scale": 1.0},
        classes=["a", "b", "c", "d"], transfer_type="end2end",  # every tensor saved: a self-contained file
        clip=models.ClipSpec(num_frames=m.num_frames, sampling_rate=rate, input_size=m.img_size,
                             test_num_segment=views[0], test_num_crop=views[1]))
    m.transfer_type = "end2end"
    weights = work / f"score_{model_name}.safetensors"
    models.save_trained(m, weights, card)
    export = work / f"score_export_{model_name}"
    package, _ = export_run(weights, export, verify_clips=0, tensorrt=False)
    assert package.passed, package.verification
    return weights, export, card


def _model_label(card: models.ModelCard) -> str:
    return f"{card.model} ({card.clip.num_frames}x{card.clip.input_size}, 8 prompts)"


def bench_score(work: Path, videos: int = 3, views: tuple[int, int] = (10, 3),
                model_name: str = "vit_small_patch16_224", frames: int = 160, engine: str = "local",
                precisions: str = "fp32") -> dict:
    """Videos/s of ``apt-video score`` (DALI views + ONNX Runtime) against VideoMAE's test loop
    (decord, per-view torch preprocessing, the same network in eager PyTorch), on ``videos``
    synthetic 320x240 VP9 videos of ``frames`` frames, ``views`` = segments x crops. With
    ``engine="ray"``: the Ray Data engine against the local one instead (``bench_score_ray``). With
    ``int8`` in ``precisions``, also the int8 export (calibrated on these videos' test views) against
    the fp32 one: videos/s and the share of videos with the same top-1."""
    if engine == "ray":
        return bench_score_ray(work, videos, views, model_name, frames)
    from export import load_runner

    from .baselines import EagerViT, videomae_eval
    from .scoring import score

    entries = bench_videos(work, "vp9", videos, frames=frames)
    weights, export, card = _score_model(work, model_name, views)
    runner = load_runner(export, "ort")
    spec = runner.card.clip
    ids = [Path(e.path).name for e in entries]
    out = work / "score_bench.csv"
    out.unlink(missing_ok=True)
    score(entries[:1], ids[:1], runner, spec, out, progress=False)  # warm-up (decoder, session)
    out.unlink()
    t0 = time.perf_counter()
    res_ours = score(entries, ids, runner, spec, out, batch=views[0] * views[1], progress=False)
    ours_s = time.perf_counter() - t0
    model, _ = models.build_from_trained(weights)
    baseline = EagerViT(model).eval()
    videomae_eval(baseline, [entries[0].path], spec)  # warm-up
    t0 = time.perf_counter()
    probs, clips = videomae_eval(baseline, [e.path for e in entries], spec)
    base_s = time.perf_counter() - t0
    agree = float(np.mean([r.pred == card.classes[int(p.argmax())] for r, p in zip(res_ours.rows, probs)]))
    res = {"model": _model_label(card), "views": f"{views[0]}x{views[1]}",
           "videos": videos, "video_frames": frames, "ours_backend": runner.name,
           "ours_videos_per_s": videos / ours_s, "ours_clips_per_s": res_ours.clips / ours_s,
           "baseline_videos_per_s": videos / base_s, "baseline_clips_per_s": clips / base_s,
           "ratio": base_s / ours_s, "top1_agreement": agree}
    print(f"score {res['model']}, {res['views']} views, {videos} videos: ours (DALI views + ONNX Runtime) "
          f"{res['ours_videos_per_s']:.3f} videos/s ({res['ours_clips_per_s']:.2f} clips/s), baseline (decord + "
          f"per-view torch + eager PyTorch) {res['baseline_videos_per_s']:.3f} videos/s "
          f"({res['baseline_clips_per_s']:.2f} clips/s), ratio {res['ratio']:.2f}; same top-1 on {100 * agree:.0f}%")
    if "int8" in precisions.split(","):
        res["int8"] = _score_int8(work, weights, entries, ids, res_ours, ours_s, views)
    return res


def _score_int8(work: Path, weights: Path, entries: list[VideoEntry], ids: list[str], fp32, fp32_s: float,
                views) -> dict:
    """The int8 export of ``weights``, calibrated on the bench videos' test views, scoring the same
    videos as the fp32 run ``fp32`` (``fp32_s`` seconds): its videos/s and the share of videos whose
    top-1 it keeps."""
    from export import load_runner

    from .exporting import export_run
    from .scoring import score

    calib = work / "score_calib.txt"
    calib.write_text("".join(f"{e.path} {e.label}\n" for e in entries))
    package, where = export_run(weights, work / "score_export_int8", precision="int8", tensorrt=False, calib=calib)
    if not package.passed:  # kept in <out>.rejected: still timed, and its top-1 compared
        print(f"score int8: the export failed its verification ({where}: random weights give near-uniform "
              f"logits, which int8 rounding reorders); timed anyway")
    runner = load_runner(where, "ort")
    out = work / "score_bench_int8.csv"
    out.unlink(missing_ok=True)
    score(entries[:1], ids[:1], runner, runner.card.clip, out, progress=False)  # warm-up
    out.unlink()
    t0 = time.perf_counter()
    res8 = score(entries, ids, runner, runner.card.clip, out, batch=views[0] * views[1], progress=False)
    secs = time.perf_counter() - t0
    same = float(np.mean([a.pred == b.pred for a, b in zip(res8.rows, fp32.rows)]))
    r = {"passed": package.passed, "videos_per_s": len(entries) / secs, "fp32_videos_per_s": len(entries) / fp32_s,
         "top1_same_as_fp32": same, "calibration_clips": package.quantization["calibration_clips"]}
    print(f"score int8 (ONNX Runtime, Q/DQ): {r['videos_per_s']:.3f} videos/s against fp32 "
          f"{r['fp32_videos_per_s']:.3f}; same top-1 as fp32 on {100 * same:.0f}% of the videos")
    return r


class PeakMemory:
    """Samples ``rss_mb`` (this process and all its descendants) every ``every`` seconds in a thread;
    ``peak`` is the largest sample."""

    def __init__(self, every: float = 0.5):
        import threading

        self.every, self.peak, self._stop = every, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _decode_cost(paths: list[Path], spec) -> dict:
    """Seconds per video of the decoding stage alone as one decoding actor spends them
    (``rayscore.decode_views``: probe, then DALI's test views with one thread and one source
    worker), and of its probe alone (a full PyAV decode that counts the frames)."""
    from pipeline.video import probe_video

    from .rayscore import decode_views

    decode_views([str(paths[0])], spec)  # warm-up
    t0 = time.perf_counter()
    for p in paths:
        decode_views([str(p)], spec)
    t1 = time.perf_counter()
    for p in paths:
        probe_video(p, -1, spec.num_frames)
    t2 = time.perf_counter()
    return {"stage_s_per_video": (t1 - t0) / len(paths), "probe_s_per_video": (t2 - t1) / len(paths)}


def bench_score_ray(work: Path, videos: int = 8, views: tuple[int, int] = (10, 3),
                    model_name: str = "vit_small_patch16_224", frames: int = 160) -> dict:
    """``score --engine ray`` (a local Ray cluster on this machine's cores: one decoding actor, one
    scoring actor) against the local engine, on the same folder and export in the same run: the
    start-up (call to first row), the steady videos/s (rows written after the first write over the
    time since it), the peak memory of the whole process tree, and the ratio of the steady rates."""
    from .rayscore import RayOptions
    from .scoring import score_videos

    folder = work / "ray_videos"
    folder.mkdir(exist_ok=True)
    bench_videos(folder, "vp9", videos, frames=frames)
    _, export, card = _score_model(work, model_name, views)
    res = {"model": _model_label(card), "views": f"{views[0]}x{views[1]}", "videos": videos, "video_frames": frames,
           "engines": {}, "decode": _decode_cost(sorted(folder.iterdir())[:3], card.clip)}
    print(f"decoding stage, one CPU: {res['decode']['stage_s_per_video']:.2f} s per video (probe + DALI test views), "
          f"of which the probe {res['decode']['probe_s_per_video']:.2f} s")
    preds = {}
    for engine in ("local", "ray"):
        out = work / f"score_{engine}.csv"
        out.unlink(missing_ok=True)
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            report = score_videos(folder, export, out, backend="ort", progress=False, engine=engine, ray=RayOptions())
            end = time.perf_counter()
        r = report.result
        steady = r.steady_rate()
        res["engines"][engine] = {"startup_s": r.first_at - t0, "steady_videos_per_s": steady,
                                  "total_s": end - t0, "peak_pss_mb": mem.peak, "ok": r.ok}
        preds[engine] = [(row["pred"], row["prob"]) for row in report.rows]
        e = res["engines"][engine]
        print(f"score --engine {engine}: first row after {e['startup_s']:.1f} s, steady {steady:.3f} videos/s, "
              f"{e['total_s']:.1f} s in all, peak PSS {mem.peak:.0f} MB")
    res["ratio"] = res["engines"]["ray"]["steady_videos_per_s"] / res["engines"]["local"]["steady_videos_per_s"]
    res["same_predictions"] = all(a[0] == b[0] and abs(float(a[1]) - float(b[1])) < 1e-4
                                  for a, b in zip(preds["local"], preds["ray"]))
    print(f"score {res['model']}, {res['views']} views, {videos} videos: Ray Data steady rate {res['ratio']:.2f}x "
          f"the local engine's; same predictions: {res['same_predictions']}")
    return res


def run_bench(which: str, json_path: str | None, **kw) -> dict:
    with tempfile.TemporaryDirectory(prefix="apt-video-bench-") as tmp:
        work = Path(kw.pop("work", None) or tmp)
        work.mkdir(parents=True, exist_ok=True)
        fn = {"loader": bench_loader, "infer": bench_infer, "train": bench_train, "score": bench_score}[which]
        res = fn(**kw) if which == "train" else fn(work, **kw)
    res = {"bench": which, "machine": machine(), **res}
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1))
    return res
