"""A local Ray for the tests and benchmarks, started from a scratch folder.

Ray puts the driver's working directory at ``ray.init`` on every worker's ``sys.path`` (so that a
script's own modules import there). Run from a source checkout, that makes the workers import the
unbuilt ``pyimgcls/`` folder instead of the installed package (CI installs with ``pip install .``),
and every actor dies with "pyimgcls is not built here". So Ray is started from a folder without one.
"""

from __future__ import annotations

import os

import ray


def init_local_ray(num_cpus: int, workdir) -> None:
    """``ray.init(num_cpus=...)`` with the working directory set to ``workdir`` for the call."""
    old = os.getcwd()
    os.chdir(workdir)
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    finally:
        os.chdir(old)
