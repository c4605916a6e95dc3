"""What this CPU offers int8 inference: does it have an 8-bit dot-product instruction?

ONNX Runtime's x86 int8 kernels multiply uint8 activations by int8 weights. With AVX-512 VNNI or
AVX-VNNI (``vpdpbusd``) the products are summed straight into 32-bit integers. Without it (AVX2,
plain AVX-512) they go through ``vpmaddubsw``, which adds pairs of products into 16 bits and can
saturate: ONNX Runtime's documentation says so and offers ``reduce_range`` (7-bit weights) as the
cure. ARM's ``sdot`` / ``udot`` (``asimddp``) accumulate in 32 bits too.

``int8_dot_product()`` reads the flags the operating system reports (``/proc/cpuinfo`` on Linux,
``sysctl`` on macOS): ``True``, ``False``, or ``None`` where it cannot tell (other systems).
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys

__all__ = ["INT8_DOT_FLAGS", "cpu_flags", "int8_dot_product"]

#: /proc/cpuinfo flags of an 8-bit dot product that accumulates in 32 bits
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def _linux_flags(text: str) -> set[str]:
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags as the OS names them (lower case), or ``None`` where unknown."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                return frozenset(f.lower() for f in _linux_flags(f.read()))
        except OSError:
            return None
    if sys.platform == "darwin":
        keys = {"hw.optional.avx512vnni": "avx512_vnni", "hw.optional.arm.FEAT_DotProd": "asimddp"}
        found = set()
        for key, flag in keys.items():
            try:
                out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
            except (OSError, subprocess.SubprocessError):
                return None
            if out.returncode == 0 and out.stdout.strip() == "1":
                found.add(flag)
        return frozenset(found)
    return None


def int8_dot_product() -> bool | None:
    """``True`` when the CPU has an 8-bit dot product accumulating in 32 bits (VNNI, AMX, ARM
    ``dotprod``), ``False`` when it has none, ``None`` when the OS does not say."""
    flags = cpu_flags()
    if flags is None:
        return None
    if flags & INT8_DOT_FLAGS:
        return True
    return False if platform.machine().lower() in ("x86_64", "amd64", "i686", "aarch64", "arm64") else None
