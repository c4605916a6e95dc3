"""The one thread budget: what ``threads=`` means everywhere in pyimgcls.

* ``threads=0`` (every function's default) means every core this process may use: the CPU
  affinity mask and the cgroup CPU quota of a container, never the machine's core count.
* A positive int is used as given, capped at ``MAX_THREADS_PER_CORE`` x the usable cores (more
  threads than that only add switching, and thousands of them can fail to start).
* ``None`` is accepted as a synonym of 0; a negative number is a ``ValueError`` and a
  non-integer (``bool`` and ``float`` included) a ``TypeError``.
* The native core applies the same cap on its own (``kMaxThreadsPerCore`` in
  ``csrc/core/common/parallel.h``), and never more threads than work items. A thread the system
  refuses (``RLIMIT_NPROC``, a cgroup pids limit) is not an error: its share of the work runs on
  the calling thread.

This module imports only the native core, so every layer (preprocessing, ops, metrics, the
runtime and the tasks) resolves ``threads`` through it and gets the same answer. A task that runs
preprocessing beside an ONNX Runtime session gives both the one resolved number.
"""

from __future__ import annotations

import numbers

from .. import _core
from ..limits import MAX_THREADS_PER_CORE

__all__ = ["MAX_THREADS_PER_CORE", "resolve_threads", "usable_cores"]



def usable_cores() -> int:
    """Cores this process may run on: the affinity mask, limited by the cgroup CPU quota (>= 1)."""
    return int(_core.usable_cores())


def resolve_threads(threads: int | None, *, name: str = "threads") -> int:
    """``threads=`` as every pyimgcls function takes it -> a worker count >= 1.

    Raises:
        TypeError: not an int (or None).
        ValueError: negative.
    """
    if threads is None:
        threads = 0
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"{name} must be an int (0 = all usable cores), got {type(threads).__name__} {threads!r}")
    t = int(threads)
    if t < 0:
        raise ValueError(f"{name} must be >= 0 (0 = all usable cores), got {t}")
    cores = usable_cores()
    return cores if t == 0 else min(t, MAX_THREADS_PER_CORE * cores)
