// parallel_for: the one threading primitive of the core.
//
// Splits [0, n) into contiguous chunks and runs fn(begin, end) on up to `threads` std::threads
// (0 = usable_cores(): the affinity mask, limited by the cgroup CPU quota; a positive count is
// capped at kMaxThreadsPerCore x usable_cores(), as pyimgcls.runtime.threads caps it, and at the
// number of work items). Serial when n is small or threads == 1. The first exception thrown by any
// chunk is rethrown on the calling thread after every worker has joined.
// A thread that cannot be started (RLIMIT_NPROC, a cgroup pids limit, no memory for a stack) is
// not an error: the work it would have done runs on the calling thread, and the threads already
// started are joined as usual (a joinable std::thread must never be destroyed: std::terminate).
// No OpenMP: it would fight ONNX Runtime's own pool.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/common/cpu.h"

namespace pyimgcls::core {

// The most worker threads per usable core (pyimgcls.runtime.threads.MAX_THREADS_PER_CORE): more
// only add switching, and thousands of them may fail to start.
inline constexpr int kMaxThreadsPerCore = 4;

// threads > 0 as given, up to kMaxThreadsPerCore x usable_cores(); 0 (or less) means every core
// this process may use.
inline int resolve_threads(int threads) {
    const int cores = usable_cores();
    return threads > 0 ? std::min(threads, kMaxThreadsPerCore * cores) : cores;
}

namespace detail {
// The worker threads of one parallel call. Joins every thread it started when it goes out of scope,
// however the scope is left, so a joinable std::thread is never destroyed.
class Workers {
public:
    explicit Workers(std::size_t capacity) { threads_.reserve(capacity); }
    Workers(const Workers&) = delete;
    Workers& operator=(const Workers&) = delete;
    ~Workers() {
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    // Runs f on a new thread; false, with nothing started, when the system refuses one
    // (std::system_error: EAGAIN under RLIMIT_NPROC or a pids limit) or memory runs out.
    template <typename F>
    bool start(F&& f) noexcept {
        try {
            threads_.emplace_back(std::forward<F>(f));
            return true;
        } catch (...) {
            return false;
        }
    }

private:
    std::vector<std::thread> threads_;
};
}  // namespace detail

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
    const std::ptrdiff_t chunk = n / t, rem = n % t;
    const std::ptrdiff_t first_end = chunk + (rem > 0 ? 1 : 0);
    {
        detail::Workers workers(static_cast<std::size_t>(t - 1));
        std::ptrdiff_t begin = first_end;
        for (int i = 1; i < t; ++i) {
            const std::ptrdiff_t len = chunk + (i < rem ? 1 : 0);
            if (!workers.start([&run, begin, len] { run(begin, begin + len); })) break;
            begin += len;
        }
        run(0, first_end);              // the calling thread takes the first chunk,
        if (begin < n) run(begin, n);   // and the chunks of the threads that could not start
    }                                   // every started worker joins here
    if (error) std::rethrow_exception(error);
}

// Dynamic scheduling over items of uneven cost (images of different sizes): workers pull the
// next index from a shared counter. The calling thread works too, so threads that cannot be
// started only mean fewer hands.
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
    {
        detail::Workers workers(static_cast<std::size_t>(t - 1));
        for (int i = 1; i < t; ++i)
            if (!workers.start(work)) break;
        work();
    }  // every started worker joins here
    if (error) std::rethrow_exception(error);
}

}  // namespace pyimgcls::core
