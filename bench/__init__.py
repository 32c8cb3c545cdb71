"""vigil's benchmarks: ``make bench`` (``python -m bench``) runs them all; figures go to
``docs/benchmarks.md``. Every figure is a ratio against a baseline measured in the same run."""
