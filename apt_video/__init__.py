"""apt-video's application layer: the library functions the ``apt-video`` commands call, above
``models`` (tensors), ``pipeline`` (videos) and ``export`` (graphs).

- ``train(cfg, data_root, output, ...)``: prompt-tune a VideoMAE run (``apt_video.train``)
- ``export_run(run, out, ...)``: a run to a verified ONNX/TensorRT package (``apt_video.exporting``)
- ``score_videos(source, model, out, ...)``: one row per video, resumable (``apt_video.scoring``)
- ``run_demo``, ``run_bench``, ``run_doctor``, ``plot_runs``, ``load_config``

Imported lazily, so that ``apt-video --help`` does not load PyTorch.
"""
import importlib

_EXPORTS = {"train": "train", "load_config": "config", "export_run": "exporting", "score_videos": "scoring",
            "run_demo": "demo", "run_bench": "bench", "run_doctor": "doctor", "plot_runs": "plot"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
