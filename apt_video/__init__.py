"""apt-video: Attention Prompt Tuning of VideoMAE on NVIDIA's stack.

The layers, lowest first (each imports only those below it):

- ``apt_video.models`` (the ``models/`` folder): tensors only: the VideoMAE ViT with attention
  prompts, its registry, checkpoints, the model card
- ``apt_video.pipeline`` (``pipeline/``): videos: datasets, probing, sampling, DALI graphs, the loader
- ``apt_video.export`` (``export/``): graphs: ONNX export, verification, TensorRT, the runners
- the jobs: ``train(cfg, data_root, output, ...)`` (``apt_video.train``), ``export_run(run, out, ...)``
  (``apt_video.exporting``), ``score_videos(source, model, out, ...)`` (``apt_video.scoring``), with
  ``config``, ``evaluate`` and ``distributed`` beside them
- ``apt_video.tools``: bench, doctor, demo, synth, sweep, plot and the VideoMAE-style baselines
- ``apt_video.cli`` and ``apt_video.commands``: the ``apt-video`` command, one module per subcommand

The job functions below are imported lazily, so that ``import apt_video`` does not load PyTorch.
"""
import importlib

_EXPORTS = {"train": "train", "load_config": "config", "export_run": "exporting", "score_videos": "scoring",
            "run_demo": "tools.demo", "run_bench": "tools.bench", "run_doctor": "tools.doctor",
            "plot_runs": "tools.plot"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
