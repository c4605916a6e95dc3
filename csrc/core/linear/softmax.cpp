// Softmax loss, gradient and Hessian-vector products (see softmax.h): row blocks, threads, and the
// portable inner loops.
#include "core/linear/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/common/cpu.h"
#include "core/common/parallel.h"
#include "core/linear/softmax_kernels.h"

namespace pyimgcls::core {
namespace linear_detail {

void block_dots_scalar(const float* x, std::int64_t rows, std::int64_t d, const float* w, std::int64_t k, float* z) {
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < k; ++c) {
            const float* xr = x + r * d;
            const float* wc = w + c * d;
            float s = 0.0f;
            for (std::int64_t j = 0; j < d; ++j) s += xr[j] * wc[j];
            z[r * k + c] = s;
        }
}

void block_outer_scalar(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                        float* acc) {
    for (std::int64_t c = 0; c < k; ++c) {
        float* a = acc + c * d;
        for (std::int64_t i = 0; i < rows; ++i) {
            const float ri = r[i * k + c];
            if (ri == 0.0f) continue;
            const float* xi = x + i * d;
            for (std::int64_t j = 0; j < d; ++j) a[j] += ri * xi[j];
        }
    }
}

}  // namespace linear_detail

namespace {

using linear_detail::DotsFn;
using linear_detail::OuterFn;

constexpr std::int64_t kBlockRows = 64;
constexpr std::int64_t kMinRowsPerThread = 256;

struct Kernels {
    DotsFn dots;
    OuterFn outer;
};

Kernels pick(LinearKernel kernel) {
    if (!linear_kernel_available(kernel))
        throw std::invalid_argument("the avx2 linear kernels cannot run here (no AVX2 + FMA in this CPU or build)");
#if defined(PYIMGCLS_LINEAR_AVX2)
    if (kernel == LinearKernel::avx2 || (kernel == LinearKernel::automatic && cpu_has_avx2_fma()))
        return {linear_detail::block_dots_avx2, linear_detail::block_outer_avx2};
#endif
    return {linear_detail::block_dots_scalar, linear_detail::block_outer_scalar};
}

// Runs body(part, first_row, rows, acc) over blocks of kBlockRows rows on the threads. The body
// adds a block's sums into acc, `width` floats that start at zero for every block; each block's
// sums are then added into its thread's double totals, and the threads' totals into out (width).
template <typename Body>
void over_blocks(std::int64_t n, std::int64_t width, int threads, double* out, Body&& body) {
    const int t = static_cast<int>(std::max<std::int64_t>(
        1, std::min<std::int64_t>(resolve_threads(threads), (n + kMinRowsPerThread - 1) / kMinRowsPerThread)));
    std::vector<std::vector<double>> sums(static_cast<std::size_t>(t));
    parallel_for(t, t, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
        for (std::ptrdiff_t part = first; part < last; ++part) {
            const std::int64_t lo = n * part / t, hi = n * (part + 1) / t;
            std::vector<float> acc(static_cast<std::size_t>(width), 0.0f);
            std::vector<double> total(static_cast<std::size_t>(width), 0.0);
            for (std::int64_t r0 = lo; r0 < hi; r0 += kBlockRows) {
                body(part, r0, std::min(kBlockRows, hi - r0), acc.data());
                for (std::int64_t j = 0; j < width; ++j) {
                    total[j] += acc[j];
                    acc[j] = 0.0f;
                }
            }
            sums[static_cast<std::size_t>(part)] = std::move(total);
        }
    });
    std::fill(out, out + width, 0.0);
    for (const auto& s : sums)
        for (std::int64_t j = 0; j < width; ++j) out[j] += s[static_cast<std::size_t>(j)];
}

}  // namespace

bool linear_kernel_available(LinearKernel k) {
    if (k == LinearKernel::avx2) {
#if defined(PYIMGCLS_LINEAR_AVX2)
        return cpu_has_avx2_fma();
#else
        return false;
#endif
    }
    return k == LinearKernel::automatic || k == LinearKernel::scalar;
}

double softmax_loss_grad(const float* x, std::int64_t n, std::int64_t d, const float* w, const float* b,
                         std::int64_t k, const std::int64_t* y, double* grad_w, double* grad_b, float* p,
                         int threads, LinearKernel kernel) {
    const Kernels kern = pick(kernel);
    for (std::int64_t i = 0; i < n; ++i)
        if (y[i] < 0 || y[i] >= k)
            throw std::invalid_argument("y[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
                                        " is not a class index in [0, " + std::to_string(k) + ")");
    // The gradient of the bias is the sum of R's rows: the accumulator holds K * d + K values, the
    // last K of them the bias sums (in float within a flush, like the rest).
    const std::int64_t width = k * d + k;
    const int t = static_cast<int>(std::max<std::int64_t>(
        1, std::min<std::int64_t>(resolve_threads(threads), (n + kMinRowsPerThread - 1) / kMinRowsPerThread)));
    std::vector<double> losses(static_cast<std::size_t>(t), 0.0);
    std::vector<double> out(static_cast<std::size_t>(width));
    over_blocks(n, width, t, out.data(), [&](std::ptrdiff_t part, std::int64_t r0, std::int64_t rows, float* acc) {
        float z[kBlockRows * 64];
        std::vector<float> zbig;
        float* zb = z;
        if (rows * k > kBlockRows * 64) {
            zbig.resize(static_cast<std::size_t>(rows * k));
            zb = zbig.data();
        }
        const float* xb = x + r0 * d;
        kern.dots(xb, rows, d, w, k, zb);
        double loss = 0.0;
        for (std::int64_t i = 0; i < rows; ++i) {
            float* zi = zb + i * k;
            float m = -std::numeric_limits<float>::infinity();
            for (std::int64_t c = 0; c < k; ++c) {
                zi[c] += b[c];
                m = std::max(m, zi[c]);
            }
            if (std::isnan(m) || std::isinf(m)) m = 0.0f;  // NaN / inf logits propagate through exp below
            double s = 0.0;
            for (std::int64_t c = 0; c < k; ++c) s += std::exp(static_cast<double>(zi[c] - m));
            const std::int64_t yi = y[r0 + i];
            loss += std::log(s) + m - zi[yi];
            float* pi = p + (r0 + i) * k;
            for (std::int64_t c = 0; c < k; ++c) {
                pi[c] = static_cast<float>(std::exp(static_cast<double>(zi[c] - m)) / s);
                zi[c] = pi[c] - (c == yi ? 1.0f : 0.0f);  // zi now holds R's row
                acc[k * d + c] += zi[c];
            }
        }
        losses[static_cast<std::size_t>(part)] += loss;
        kern.outer(xb, rows, d, zb, k, acc);
    });
    std::copy(out.begin(), out.begin() + k * d, grad_w);
    std::copy(out.begin() + k * d, out.end(), grad_b);
    double loss = 0.0;
    for (double l : losses) loss += l;
    return loss;
}

void softmax_hessp(const float* x, std::int64_t n, std::int64_t d, const float* p, std::int64_t k, const float* v,
                   const float* vb, double* hv_w, double* hv_b, int threads, LinearKernel kernel) {
    const Kernels kern = pick(kernel);
    const std::int64_t width = k * d + k;
    std::vector<double> out(static_cast<std::size_t>(width));
    over_blocks(n, width, threads, out.data(), [&](std::ptrdiff_t, std::int64_t r0, std::int64_t rows, float* acc) {
        float u[kBlockRows * 64];
        std::vector<float> ubig;
        float* ub = u;
        if (rows * k > kBlockRows * 64) {
            ubig.resize(static_cast<std::size_t>(rows * k));
            ub = ubig.data();
        }
        const float* xb = x + r0 * d;
        kern.dots(xb, rows, d, v, k, ub);
        for (std::int64_t i = 0; i < rows; ++i) {
            float* ui = ub + i * k;
            const float* pi = p + (r0 + i) * k;
            float pu = 0.0f;
            for (std::int64_t c = 0; c < k; ++c) {
                ui[c] += vb[c];
                pu += pi[c] * ui[c];
            }
            for (std::int64_t c = 0; c < k; ++c) {
                ui[c] = pi[c] * (ui[c] - pu);
                acc[k * d + c] += ui[c];
            }
        }
        kern.outer(xb, rows, d, ub, k, acc);
    });
    std::copy(out.begin(), out.begin() + k * d, hv_w);
    std::copy(out.begin() + k * d, out.end(), hv_b);
}

}  // namespace pyimgcls::core
