"""``apt-video bench score``: the scoring path against VideoMAE's evaluation loop, int8 against fp32,
and the Ray Data engine against the local one."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from apt_video import models
from apt_video.export import load_runner
from apt_video.exporting import export_run
from apt_video.pipeline.data import VideoEntry
from apt_video.pipeline.video import probe_video
from apt_video.scoring import RayOptions, ScoreJob, score_videos
from apt_video.scoring.local import score
from apt_video.scoring.ray_engine import decode_views
from apt_video.tools.baselines import EagerViT, videomae_eval

from .common import PeakMemory, bench_videos, model_label, score_model


def _score(entries: list[VideoEntry], ids: list[str], runner, out: Path, batch: int = 30):
    """The local engine on probed ``entries`` (rows to ``out``), as ``score_videos`` runs it."""
    job = ScoreJob(entries, ids, runner.card.clip, runner.classes, out, batch=batch, progress=False)
    return score(job, runner)


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
    entries = bench_videos(work, "vp9", videos, frames=frames)
    weights, export, card = score_model(work, model_name, views)
    runner = load_runner(export, "ort")
    spec = runner.card.clip
    ids = [Path(e.path).name for e in entries]
    out = work / "score_bench.csv"
    out.unlink(missing_ok=True)
    _score(entries[:1], ids[:1], runner, out)  # warm-up (decoder, session)
    out.unlink()
    t0 = time.perf_counter()
    res_ours = _score(entries, ids, runner, out, batch=views[0] * views[1])
    ours_s = time.perf_counter() - t0
    model, _ = models.build_from_trained(weights)
    baseline = EagerViT(model).eval()
    videomae_eval(baseline, [entries[0].path], spec)  # warm-up
    t0 = time.perf_counter()
    probs, clips = videomae_eval(baseline, [e.path for e in entries], spec)
    base_s = time.perf_counter() - t0
    agree = float(np.mean([r.pred == card.classes[int(p.argmax())] for r, p in zip(res_ours.rows, probs)]))
    res = {"model": model_label(card), "views": f"{views[0]}x{views[1]}",
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
    calib = work / "score_calib.txt"
    calib.write_text("".join(f"{e.path} {e.label}\n" for e in entries))
    package, where = export_run(weights, work / "score_export_int8", precision="int8", tensorrt=False, calib=calib)
    if not package.passed:  # kept in <out>.rejected: still timed, and its top-1 compared
        print(f"score int8: the export failed its verification ({where}: random weights give near-uniform "
              f"logits, which int8 rounding reorders); timed anyway")
    runner = load_runner(where, "ort")
    out = work / "score_bench_int8.csv"
    out.unlink(missing_ok=True)
    _score(entries[:1], ids[:1], runner, out)  # warm-up
    out.unlink()
    t0 = time.perf_counter()
    res8 = _score(entries, ids, runner, out, batch=views[0] * views[1])
    secs = time.perf_counter() - t0
    same = float(np.mean([a.pred == b.pred for a, b in zip(res8.rows, fp32.rows)]))
    r = {"passed": package.passed, "videos_per_s": len(entries) / secs, "fp32_videos_per_s": len(entries) / fp32_s,
         "top1_same_as_fp32": same, "calibration_clips": package.quantization["calibration_clips"]}
    print(f"score int8 (ONNX Runtime, Q/DQ): {r['videos_per_s']:.3f} videos/s against fp32 "
          f"{r['fp32_videos_per_s']:.3f}; same top-1 as fp32 on {100 * same:.0f}% of the videos")
    return r


def _decode_cost(paths: list[Path], spec) -> dict:
    """Seconds per video of the decoding stage alone as one decoding actor spends them
    (``scoring.ray_engine.decode_views``: probe, then DALI's test views with one thread and one
    source worker), and of its probe alone (a full PyAV decode that counts the frames)."""
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
    folder = work / "ray_videos"
    folder.mkdir(exist_ok=True)
    bench_videos(folder, "vp9", videos, frames=frames)
    _, export, card = score_model(work, model_name, views)
    res = {"model": model_label(card), "views": f"{views[0]}x{views[1]}", "videos": videos, "video_frames": frames,
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
