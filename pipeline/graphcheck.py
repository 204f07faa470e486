"""Define every DALI graph apt-video runs on a GPU, without a GPU, and report what would break.

DALI checks a graph's placement rules while it is being defined, before any device is touched:
named arguments (``fn.normalize``'s ``mean``, ``fn.contrast``'s ``contrast_center``) must come
from CPU data. Some inputs are accepted on the GPU but cost a device-to-host copy and a sync on
every batch (``fn.slice``'s anchor and shape): those are reported too. Used by the tests and by
``apt-video doctor`` on hosts with and without a GPU.
"""
from __future__ import annotations

import dataclasses

from apt_video.models.card import ClipSpec

from .data import VideoEntry
from .graphs import AugmentSpec, train_pipeline, views_pipeline
from .randaug import VIDEOMAE_RAND_AUGMENT, parse_rand_augment
from .source import ClipSource

#: operator -> positional inputs (by index) that should be CPU data when the operator runs on the GPU
CPU_INPUTS = {"Slice": (1, 2)}


def _operators(outputs):
    """Every operator instance a graph's outputs depend on."""
    seen, stack = {}, list(outputs)
    while stack:
        node = stack.pop()
        op = getattr(node, "source", None)
        if op is None or id(op) in seen:
            continue
        seen[id(op)] = op
        for inp in op.inputs:
            stack.extend(inp if isinstance(inp, list) else [inp])
    return list(seen.values())


def placement_problems(pipe) -> list[str]:
    """Inputs of a defined pipeline that sit on the GPU where the CPU is expected."""
    problems = []
    for op in _operators(pipe._graph_out):
        kind = type(op._op).__name__
        if getattr(op._op, "device", "cpu") != "gpu" or kind not in CPU_INPUTS:
            continue
        for i in CPU_INPUTS[kind]:
            if i < len(op.inputs) and getattr(op.inputs[i], "device", "cpu") == "gpu":
                problems.append(f"{kind} ({op.name}): input {i} is on the GPU; a CPU constant avoids a "
                                f"device-to-host copy per batch")
    return problems


def gpu_graphs(spec: ClipSpec | None = None, aa: str = VIDEOMAE_RAND_AUGMENT, device_id: int = 0):
    """``(name, define)`` pairs: one per graph the GPU runs (training with the RandAugment suite in
    both augmentation orders, and without it; test views; validation). A RandAugment graph defines
    every op of the suite as a branch, whichever ops a run then draws."""
    spec = spec or ClipSpec()
    entries = [VideoEntry("graph-definition-only.webm", 0, 64, 25.0, "vp9", 320, 240, 2.56, "ok")]
    kw = dict(batch_size=2, num_threads=1, device_id=device_id, py_num_workers=1, py_start_method="spawn")
    suite = dataclasses.replace(parse_rand_augment(aa), n=1)  # one layer defines all 15 ops
    cases = [("train, whole RandAugment suite on the frame", suite, "frame"),
              ("train, whole RandAugment suite on the crop", suite, "crop"),
              ("train, no RandAugment, random erasing", None, "frame")]
    graphs = []
    for name, ra, region in cases:
        augment = AugmentSpec(rand_augment=ra, reprob=0.25 if ra is None else 0.0, aa_region=region)
        graphs.append((name, lambda augment=augment: train_pipeline(
            ClipSource(entries, spec, "train", 2, "gpu", augment=augment, num_sample=2), spec, "gpu", **kw)))
    graphs.append(("test views", lambda: views_pipeline(ClipSource(entries, spec, "test", 2, "gpu"), spec, "gpu",
                                                         spec.test_num_crop, **kw)))
    graphs.append(("validation clip", lambda: views_pipeline(ClipSource(entries, spec, "eval", 2, "gpu"), spec,
                                                              "gpu", 1, **kw)))
    return graphs


def check_gpu_graphs(graphs=None) -> list[tuple[str, str | None]]:
    """Define each graph; ``(name, problem or None)`` for each."""
    results = []
    for name, define in graphs if graphs is not None else gpu_graphs():
        try:
            problems = placement_problems(define())
        except Exception as exc:  # DALI raises at definition: report it, go on with the others
            problems = [f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"]
        results.append((name, "; ".join(problems) or None))
    return results
