"""Running models: ONNX Runtime sessions (``session``), the overlapped batch pipeline
(``pipeline``) and the one thread budget (``threads``, a leaf that every layer may import).

Submodules are imported where they are used, so that ``runtime.threads`` stays importable from
the layers below without pulling the session in.
"""
