// What this process may use of the machine: how many cores (usable_cores, the meaning of
// threads == 0 everywhere in the core) and which x86 extensions the CPU runs (for the kernels that
// pick an instruction set at run time). Each answer is computed once, on first use, thread-safely.
#pragma once

namespace pyimgcls::core {

// Cores this process may run threads on, at least 1.
// Linux: the CPU affinity mask (sched_getaffinity), further limited by the cgroup CPU quota of the
// process's cgroup and its ancestors: v2 cpu.max ("quota period" or "max period"), v1
// cpu.cfs_quota_us / cpu.cfs_period_us (-1: none); a quota gives ceil(quota / period) cores.
// Elsewhere: std::thread::hardware_concurrency().
int usable_cores();

// Whether the CPU runs SSE4.1 (false on other architectures).
bool cpu_has_sse41();

// Whether the CPU (and the OS, for the wider registers) runs AVX2 and FMA (false on other
// architectures and with MSVC, whose builds have no AVX2 kernel files).
bool cpu_has_avx2_fma();

}  // namespace pyimgcls::core
