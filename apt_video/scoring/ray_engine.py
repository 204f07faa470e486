"""Scoring on Ray Data: the local scorer's contract (one row per input video, in input order, bad
videos as error rows, resume) on a cluster of decoding CPUs and scoring actors.

The plan, streamed by Ray Data::

    input rows (position, path)
      -> ViewDecoder   actors of one CPU each: probe + DALI test views (the local scorer's route,
                       its source in the actor's own process: no DALI workers to start per batch)
      -> ViewScorer    actors holding ``export.load_runner`` (one GPU each where the cluster has GPUs)
      -> the driver    rows put back in input order by ``RowWriter``, fsynced as they complete

With GPUs the views are decoded by DALI on the scoring actor's own GPU (``ViewScorer`` decodes
then), so they never cross the object store. No UDF raises for a bad video: every video leaves
each stage as a row, with views and probabilities or with its error. Ray Data restarts a killed
actor and runs its batch again; the rows the driver already wrote stay written, and ``--resume``
after a killed driver skips them.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from apt_video.evaluate import merge_views
from apt_video.export import BackendUnavailable, PackageError, load_runner
from apt_video.models.artifact import CardFill
from apt_video.models.card import ClipSpec
from apt_video.pipeline.data import DataError
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.video import probe_video

from .job import ScoreJob, ScoreResult, decode_error, finish, prediction_row, unusable_error
from .rows import Row, open_writer, resume_point

log = logging.getLogger(__name__)

#: times a video's batch is run again after its actor died (Ray Data's default is forever: a file
#: that kills the decoder process itself would then stall the job instead of failing it)
RETRIES = 3
RAY_MISSING = "--engine ray needs Ray Data: pip install 'apt-video[ray]'"


@dataclass
class RayOptions:
    """Where and how wide to run. ``address``: None starts a local cluster (bound to 127.0.0.1),
    ``auto`` joins the one ``ray start`` runs here, ``ray://host:10001`` a remote one.
    ``gpus_per_actor``: None is 1 where the cluster has GPUs, else 0 (CPU actors).
    ``decode_cpus``: decoding actors of one CPU each (unused with GPU actors, which decode
    themselves). ``videos_per_task``: videos per Ray Data batch (what a killed actor runs again)."""

    address: str | None = None
    actors: int = 1
    gpus_per_actor: float | None = None
    decode_cpus: int = 1
    videos_per_task: int = 1


def ray_missing() -> str | None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return RAY_MISSING
    return None


def unreachable(address: str | None, timeout: float = 5.0) -> str | None:
    """Why nothing answers at ``address`` (``host:port``, also ``ray://host:port``), found with one
    TCP connection within ``timeout`` seconds; None when something does, or when Ray finds the
    cluster itself (None, ``auto``). Ray would otherwise retry its control server for minutes."""
    if address is None or address == "auto":
        return None
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        return f"--address {address}: expected HOST:PORT of the cluster's head (ray start --head prints it)"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        return (f"--address {address}: nothing answers there ({exc.strerror or exc}); start the cluster "
                f"(ray start --head) or check the address")
    return None


def connect(address: str | None):
    """Join (or start) the cluster, quietly; returns ``(ray, started)``: ``started`` when this call
    started Ray here (then the caller shuts it down)."""
    import ray

    started = not ray.is_initialized()
    if started:
        kw = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
        if address is None:  # a local cluster that lives and dies with this process
            ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", **kw)
        else:
            ray.init(address=address, **kw)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar counts videos
    # its memory notice repeats every 30 s; the actors' sizing is in the README
    ctx.issue_detectors_config.high_memory_detector_config.detection_time_interval_s = -1
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # not its plan and timing notices
    return ray, started


class _Quiet(logging.Filter):
    """Drops Ray's notices that say nothing about this run (its progress-bar and token defaults), and
    the traceback of a batch Ray Data skips (its video gets an error row; the line stays)."""

    NOTICES = ("Progress bars disabled", "Token authentication is enabled for this Ray cluster")

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if "Ignoring this exception" in text and record.exc_info:  # its cause in one line, not the traceback
            record.msg = f"{text} ({_cause(record.exc_info[1])})"
            record.exc_info, record.exc_text = None, None
        return not text.startswith(self.NOTICES)


for _name in ("ray.data._internal.progress", "ray._private.authentication.authentication_token_setup",
              "ray.data._internal.execution.streaming_executor_state"):
    logging.getLogger(_name).addFilter(_Quiet())


def _bound(cls, **kwargs):
    """``cls`` with its constructor arguments inside the class, so that Ray Data's actors are made
    (and remade after a failure) without arguments held in the object store."""
    return type(cls.__name__, (cls,), {"__init__": functools.partialmethod(cls.__init__, **kwargs)})


# -- the stages (run inside Ray workers) ----------------------------------------------------------------
def _empty_views(spec: ClipSpec) -> np.ndarray:
    return np.zeros((0, 3, spec.num_frames, spec.input_size, spec.input_size), np.float32)


def decode_views(paths: list[str], spec: ClipSpec, device: str = "cpu", workers: int = 0):
    """Probe and decode ``paths`` into their test views, the local scorer's way (``probe_video``,
    then ``VideoLoader`` in test mode; ``workers`` 0: its source in this process, which for one
    short call beats starting worker processes: 0.28 against 0.37 s a video here). Returns
    ``(views or None, error text)`` per path; never raises for a bad file. A call that fails as a
    whole is retried video by video."""
    entries = [probe_video(p, -1, spec.num_frames) for p in paths]
    out: list = [(None, unusable_error(e)) if not e.ok else None for e in entries]
    usable = [k for k, e in enumerate(entries) if e.ok]
    if not usable:
        return out
    try:
        loader = VideoLoader([entries[k] for k in usable], spec, mode="test", batch_size=len(usable),
                             num_workers=workers, num_threads=max(1, workers), device=device)
        for b in loader.epoch(0):
            for row, i in enumerate(b.ids):
                out[usable[i]] = (b.video[row].cpu().numpy() if device == "cpu" else b.video[row].clone(), "")
        for failure in loader.failures:
            out[usable[failure.index]] = (None, decode_error(failure.reason))
        loader.close()
    except Exception as exc:  # noqa: BLE001  DALI gave up on the batch: one video at a time finds the culprit
        if len(usable) == 1:
            out[usable[0]] = (None, decode_error(_cause(exc)[:200]))
        else:
            for k in usable:
                out[k] = decode_views([paths[k]], spec, device, workers)[0]
    for k in usable:  # never a silent gap
        if out[k] is None:
            out[k] = (None, decode_error("the loader returned neither views nor an error"))
    return out


class ViewDecoder:
    """Ray Data stage: ``{pos, path}`` -> ``{pos, error, views}`` (views empty for an error)."""

    def __init__(self, spec: ClipSpec):
        self.spec = spec

    def __call__(self, batch: dict) -> dict:
        decoded = decode_views([str(p) for p in batch["path"]], self.spec)
        return {"pos": batch["pos"], "error": np.array([e for _, e in decoded], dtype=object),
                "views": [v if v is not None else _empty_views(self.spec) for v, _ in decoded]}


class ViewScorer:
    """Ray Data stage: the runner of ``model`` on each video's views, merged per video as the local
    scorer merges them: ``{pos, error, views}`` (or ``{pos, path}`` when it decodes itself, on a
    GPU) -> ``{pos, error, probs}``."""

    def __init__(self, model: str, backend: str, pretrained: str | None, task: str | None, spec: ClipSpec,
                 batch: int, decode: bool, gpu: bool = False, fill: CardFill | None = None):
        if not gpu:  # Ray leaves a zero-GPU actor every GPU of its node: it must not use them
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self.device = "gpu" if gpu and torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)  # Ray sets one thread per reserved CPU
        self.runner = load_runner(model, backend, pretrained, task, fill=fill)
        self.spec, self.batch, self.decode = spec, batch, decode

    def __call__(self, batch: dict) -> dict:
        if self.decode:
            decoded = decode_views([str(p) for p in batch["path"]], self.spec, self.device)
            views, errors = [v for v, _ in decoded], [e for _, e in decoded]
        else:
            views = [v if len(v) else None for v in batch["views"]]
            errors = list(batch["error"])
        ok = [k for k, v in enumerate(views) if v is not None]
        probs = np.zeros((len(views), len(self.runner.classes)), np.float32)
        if ok:
            with warnings.catch_warnings():  # Ray's zero-copy arrays are read-only; the runner only reads them
                warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                parts = [torch.as_tensor(views[k]) for k in ok]
            clips = parts[0] if len(parts) == 1 else torch.cat(parts)
            try:
                logits = torch.cat([self.runner(clips[i:i + self.batch]).float().cpu()
                                    for i in range(0, len(clips), self.batch)])
                probs[ok] = merge_views(logits.view(len(ok), self.spec.num_views, -1)).numpy()
            except Exception as exc:  # noqa: BLE001  the engine failed on this batch (out of memory, ...)
                log.error("the engine failed on a batch of %d videos: %s", len(ok), _cause(exc))
                for k in ok:  # their rows say why; the job goes on
                    errors[k] = f"inference: {self.runner.name} failed ({_cause(exc)})"
        return {"pos": batch["pos"], "error": np.array(errors, dtype=object), "probs": probs}


# -- the driver ------------------------------------------------------------------------------------------
def check_model(model: str, backend: str, pretrained: str | None, task: str | None, gpu: bool,
                fill: CardFill | None = None) -> tuple[str, str]:
    """``(runner name, "")`` when ``load_runner`` can run ``model`` where this runs (a Ray task with a
    scoring actor's resources), else ``("", the one-line reason)``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        return load_runner(model, backend, pretrained, task, fill=fill).name, ""
    except (BackendUnavailable, PackageError, FileNotFoundError, ValueError) as exc:
        return "", str(exc)
    finally:  # the worker goes back to Ray's pool: as it was
        if visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible


def score_on_ray(job: ScoreJob, options: RayOptions | None = None) -> ScoreResult:
    """Score ``job`` on Ray Data: one row per entry, in input order (the local engine's contract and
    rows). The plan is checked before anything is written: the cluster must hold it and the scoring
    actors must be able to load the model. Raises ``DataError`` (one line) when Ray cannot run the
    job, keeping the rows written (``--resume`` goes on after them)."""
    opts = options or RayOptions()
    missing = ray_missing()
    if missing:
        raise DataError(missing)
    t_start = time.perf_counter()
    out = job.out
    created = not out.exists()
    was_empty = out.is_file() and out.stat().st_size == 0  # a file the user made: emptied again, kept
    done = len(resume_point(out, job.fmt, job.ids).videos) if job.resume and not created and not was_empty else 0
    if done == len(job.entries):  # nothing left: no cluster
        writer = open_writer(out, job.fmt, job.ids, job.resume)
        return finish(writer, done, 0, t_start, f"ray ({job.backend})", "")
    ray, started = connect(opts.address)
    try:
        have = ray.cluster_resources()
        gpus = opts.gpus_per_actor
        if gpus is None:
            gpus = 1 if have.get("GPU", 0) >= 1 else 0
        _check_fits(have, opts, gpus)
        try:
            name, problem = ray.get(ray.remote(num_cpus=0, num_gpus=gpus, max_retries=0)(check_model).remote(
                str(job.model), job.backend, job.pretrained, job.task, bool(gpus), job.fill))
        except Exception as exc:  # noqa: BLE001  the check's own process failed
            raise DataError(f"a Ray worker could not load {job.model} ({_cause(exc)})") from None
        if problem:
            raise DataError(problem)
        writer = open_writer(out, job.fmt, job.ids, job.resume)
        try:
            return _run(ray, writer, job, opts, gpus, t_start, f"ray ({name})")
        except BaseException:  # an interrupt too
            writer.close()
            if not writer.times:  # no row of this run's: leave no header-only file behind
                if created:
                    out.unlink(missing_ok=True)
                elif was_empty:
                    os.truncate(out, 0)
            raise
        finally:
            writer.close()
    finally:
        if started:
            ray.shutdown()


def _run(ray, writer, job: ScoreJob, opts: RayOptions, gpus: float, t_start: float, name: str) -> ScoreResult:
    spec, ids = job.spec, job.ids
    done = writer.next
    todo = list(range(done, len(job.entries)))
    bar = tqdm(total=len(todo), unit="video", desc="score (ray)", disable=not job.progress)
    clips = 0
    ctx = ray.data.DataContext.get_current()
    # a batch whose actor died RETRIES + 1 times (a file that kills the decoder process) becomes an
    # error row, not the end of the job; past this many, the job stops (something systematic). The
    # dataset keeps a copy of the context: the caller's is restored once the dataset exists.
    errored, ctx.max_errored_blocks = ctx.max_errored_blocks, max(10, len(todo) // 100)
    try:
        ds = ray.data.from_items([{"pos": i, "path": job.entries[i].path} for i in todo],
                                 override_num_blocks=max(1, -(-len(todo) // opts.videos_per_task)))
    finally:
        ctx.max_errored_blocks = errored
    if not gpus:
        ds = ds.map_batches(_bound(ViewDecoder, spec=spec), batch_size=opts.videos_per_task,
                            compute=ray.data.ActorPoolStrategy(size=opts.decode_cpus), num_cpus=1,
                            zero_copy_batch=True, max_task_retries=RETRIES)
    scorer = _bound(ViewScorer, model=str(job.model), backend=job.backend, pretrained=job.pretrained, task=job.task,
                    spec=spec, batch=job.batch, decode=bool(gpus), gpu=bool(gpus), fill=job.fill)
    ds = ds.map_batches(scorer, batch_size=opts.videos_per_task, compute=ray.data.ActorPoolStrategy(size=opts.actors),
                        num_cpus=0 if gpus else 1, num_gpus=gpus, zero_copy_batch=True, max_task_retries=RETRIES)
    try:
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for pos, error, probs in zip(b["pos"], b["error"], b["probs"]):
                i = int(pos)
                if i < writer.next or i in writer.ready:  # a batch Ray ran twice: its first rows stand
                    log.warning("%s: Ray returned its row twice; the first is kept", ids[i])
                    continue
                if error:
                    writer.put(i, Row(ids[i], "error", error=str(error)))
                else:
                    writer.put(i, prediction_row(ids[i], probs, job.classes, job.top_k))
                    clips += spec.num_views
                bar.update()
    except (OSError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001  Ray's own failure: one line; the rows written stay
        raise DataError(f"Ray Data stopped the job ({_cause(exc)}); the rows written are kept: run again "
                        f"with --resume") from None
    bar.close()
    # a row still missing: its batch failed RETRIES + 1 times (counted in max_errored_blocks)
    return finish(writer, done, clips, t_start, name, f"not scored: the process decoding or scoring it died "
                                                      f"{RETRIES + 1} times (a file that crashes the decoder, or "
                                                      f"too little memory)")


def _cause(exc: BaseException) -> str:
    """The cause Ray reports: the last line of what it says (its wrapped error's own message), or the type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _check_fits(have: dict, opts: RayOptions, gpus: float) -> None:
    """Refuse a plan the cluster cannot hold (Ray Data would wait for it forever)."""
    if gpus and opts.actors * gpus > have.get("GPU", 0):
        raise DataError(f"--actors {opts.actors} x --gpus-per-actor {gpus:g} needs {opts.actors * gpus:g} GPUs; the "
                        f"cluster has {have.get('GPU', 0):g}: ask for fewer, or --gpus-per-actor 0 for CPU actors")
    cpus = 0 if gpus else opts.actors + opts.decode_cpus
    if cpus > have.get("CPU", 0):
        raise DataError(f"--actors {opts.actors} + --decode-cpus {opts.decode_cpus} need {cpus} CPUs; the cluster "
                        f"has {have.get('CPU', 0):g}: ask for fewer")
