"""Batch scoring: run a registered model over a CSV, Parquet or JSON-lines file.

:func:`score_file` streams the file in bounded chunks on this machine;
:func:`vigil.batch.ray_engine.score_with_ray` runs the same job on Ray Data. Both check
every row with the server's validator and write the input columns plus ``prediction``
(and ``proba_<class>``) columns. ``vigil predict`` is the command line over both.
"""

from vigil.batch.score import DEFAULT_CHUNK_ROWS, BatchSummary, Tick, score_file

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "BatchSummary",
    "Tick",
    "score_file",
]
