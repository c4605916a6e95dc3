"""Shared test helpers: NumPy twins of the kernels (``reference``) and the peers' pipelines
(``peers``). Tests and benchmarks import them as ``_helpers`` through pytest's ``pythonpath``
setting (pyproject.toml); no test imports another test file."""
