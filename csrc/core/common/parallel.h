// parallel_for: the one threading primitive of the core.
//
// Splits [0, n) into contiguous chunks and runs fn(begin, end) on up to `threads` std::threads
// (0 = usable_cores(): the affinity mask, limited by the cgroup CPU quota). Serial when n is
// small or threads == 1. The first exception thrown by any chunk is rethrown on the calling
// thread after every worker has joined. No OpenMP: it would fight ONNX Runtime's own pool.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/common/cpu.h"

namespace pyimgcls::core {

// threads > 0 as given; 0 (or less) means every core this process may use.
inline int resolve_threads(int threads) { return threads > 0 ? threads : usable_cores(); }

template <typename Fn>
void parallel_for(std::ptrdiff_t n, int threads, Fn&& fn, std::ptrdiff_t min_chunk = 1) {
    if (n <= 0) return;
    int t = resolve_threads(threads);
    std::ptrdiff_t max_workers = std::max<std::ptrdiff_t>(1, n / std::max<std::ptrdiff_t>(1, min_chunk));
    t = static_cast<int>(std::min<std::ptrdiff_t>(t, max_workers));
    if (t <= 1) {
        fn(std::ptrdiff_t{0}, n);
        return;
    }
    std::exception_ptr error;
    std::mutex error_mutex;
    auto run = [&](std::ptrdiff_t b, std::ptrdiff_t e) {
        try {
            fn(b, e);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    workers.reserve(static_cast<std::size_t>(t - 1));
    const std::ptrdiff_t chunk = n / t, rem = n % t;
    std::ptrdiff_t begin = 0;
    std::ptrdiff_t first_end = chunk + (rem > 0 ? 1 : 0);
    begin = first_end;
    for (int i = 1; i < t; ++i) {
        std::ptrdiff_t len = chunk + (i < rem ? 1 : 0);
        workers.emplace_back(run, begin, begin + len);
        begin += len;
    }
    run(0, first_end);  // the calling thread takes the first chunk
    for (auto& w : workers) w.join();
    if (error) std::rethrow_exception(error);
}

// Dynamic scheduling over items of uneven cost (images of different sizes): workers pull the
// next index from a shared counter.
template <typename Fn>
void parallel_for_dynamic(std::ptrdiff_t n, int threads, Fn&& fn) {
    if (n <= 0) return;
    int t = static_cast<int>(std::min<std::ptrdiff_t>(resolve_threads(threads), n));
    if (t <= 1) {
        for (std::ptrdiff_t i = 0; i < n; ++i) fn(i);
        return;
    }
    std::mutex m;
    std::ptrdiff_t next = 0;
    std::exception_ptr error;
    auto work = [&]() {
        for (;;) {
            std::ptrdiff_t i;
            {
                std::lock_guard<std::mutex> lock(m);
                if (next >= n || error) return;
                i = next++;
            }
            try {
                fn(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(m);
                if (!error) error = std::current_exception();
            }
        }
    };
    std::vector<std::thread> workers;
    for (int i = 1; i < t; ++i) workers.emplace_back(work);
    work();
    for (auto& w : workers) w.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace pyimgcls::core
