// usable_cores, cpu_has_sse41 and cpu_has_avx2_fma (see cpu.h). Cgroup files are read from the
// usual mount points (/sys/fs/cgroup for v2; /sys/fs/cgroup/cpu or cpu,cpuacct for v1), at the process's cgroup path
// from /proc/self/cgroup and every ancestor up to the mount root (the smallest quota wins: a
// parent's limit caps its children). Inside a container the path is "/" or absent from the mount,
// and the mount root is the container's own cgroup. Anything unreadable counts as no limit.
#include "core/common/cpu.h"

#include <algorithm>
#include <thread>

#if defined(__linux__)
#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#endif

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <intrin.h>
#endif

namespace pyimgcls::core {
namespace {

int hardware_cores() {
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

#if defined(__linux__)
int affinity_cores() {
    // the kernel's mask may be wider than cpu_set_t (more than 1024 CPUs): grow until it fits
    for (int ncpu = CPU_SETSIZE; ncpu <= (1 << 20); ncpu *= 2) {
        cpu_set_t* set = CPU_ALLOC(ncpu);
        if (!set) break;
        const std::size_t size = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(size, set);
        const int rc = sched_getaffinity(0, size, set);
        const int err = errno;
        const int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
        CPU_FREE(set);
        if (rc == 0) return count > 0 ? count : hardware_cores();
        if (err != EINVAL) break;
    }
    return hardware_cores();
}

// ceil(quota / period), or 0 for no limit / unreadable.
long long quota_cores(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    return std::max(1LL, (quota + period - 1) / period);
}

bool read_text(const std::string& path, std::string& out) {
    std::ifstream f(path);
    if (!f) return false;
    std::ostringstream s;
    s << f.rdbuf();
    out = s.str();
    return true;
}

long long parse_ll(const std::string& s) {
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    return end == s.c_str() ? 0 : v;
}

// The limit set in one cgroup directory, 0 if none.
long long dir_limit(const std::string& dir, bool v2) {
    std::string text;
    if (v2) {
        if (!read_text(dir + "/cpu.max", text)) return 0;
        std::istringstream s(text);
        std::string quota, period;
        if (!(s >> quota >> period) || quota == "max") return 0;
        return quota_cores(parse_ll(quota), parse_ll(period));
    }
    std::string period;
    if (!read_text(dir + "/cpu.cfs_quota_us", text) || !read_text(dir + "/cpu.cfs_period_us", period)) return 0;
    return quota_cores(parse_ll(text), parse_ll(period));
}

// Smallest limit over `mount + path` and its ancestors down to `mount`, 0 if none.
long long walk_limit(const std::string& mount, std::string path, bool v2) {
    long long best = 0;
    for (;;) {
        while (path.size() > 1 && path.back() == '/') path.pop_back();
        const long long q = dir_limit(path == "/" || path.empty() ? mount : mount + path, v2);
        if (q > 0) best = best > 0 ? std::min(best, q) : q;
        if (path == "/" || path.empty()) return best;
        const std::size_t slash = path.rfind('/');
        path = slash == std::string::npos || slash == 0 ? std::string("/") : path.substr(0, slash);
    }
}

// The cgroup CPU quota in cores, 0 if none.
long long cgroup_limit() {
    std::string v2_path = "/", v1_path = "/", text;
    if (read_text("/proc/self/cgroup", text)) {
        std::istringstream lines(text);
        std::string line;
        while (std::getline(lines, line)) {
            // "hierarchy-id:controller,list:path"; v2 is "0::path"
            const std::size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
            if (b == std::string::npos) continue;
            const std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
            if (line.compare(0, a, "0") == 0 && b == a + 1) v2_path = line.substr(b + 1);
            else if (controllers.find(",cpu,") != std::string::npos) v1_path = line.substr(b + 1);
        }
    }
    long long best = walk_limit("/sys/fs/cgroup", v2_path, true);
    for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu"}) {
        const long long q = walk_limit(mount, v1_path, false);
        if (q > 0) best = best > 0 ? std::min(best, q) : q;
    }
    return best;
}
#endif

int compute_usable_cores() {
#if defined(__linux__)
    int cores = affinity_cores();
    const long long quota = cgroup_limit();
    if (quota > 0 && quota < cores) cores = static_cast<int>(quota);
    return std::max(cores, 1);
#else
    return hardware_cores();
#endif
}

}  // namespace

int usable_cores() {
    static const int cores = compute_usable_cores();
    return cores;
}

bool cpu_has_sse41() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static const bool has = __builtin_cpu_supports("sse4.1");
    return has;
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    static const bool has = [] {
        int regs[4];
        __cpuid(regs, 1);
        return ((regs[2] >> 19) & 1) != 0;  // CPUID.1:ECX.SSE4_1
    }();
    return has;
#else
    return false;
#endif
}

bool cpu_has_avx2_fma() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    // __builtin_cpu_supports reports a feature only when the OS saves its registers (XGETBV)
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
#else
    return false;
#endif
}

}  // namespace pyimgcls::core
