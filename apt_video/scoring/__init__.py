"""Batch scoring: every video of a folder, list or manifest gets one output row, in input order.

- ``score.py``: ``score_videos``, the whole job: inputs checked, one ``ScoreJob``, an engine, the report
- ``job.py``: the ``ScoreJob`` record, the rows every engine makes, ``finish``
- ``local.py``: the local engine (this process, or torchrun ranks); ``ray_engine.py``: Ray Data
- ``inputs.py``: the videos and their row ids, labels and label metrics
- ``rows.py``: the output files (CSV or JSON lines), resume and the output lock
"""
from .job import ENGINES, ScoreJob, ScoreResult
from .ray_engine import RayOptions
from .score import ScoreReport, score_videos

__all__ = ["ENGINES", "RayOptions", "ScoreJob", "ScoreReport", "ScoreResult", "score_videos"]
