// AVX2 + FMA inner loops of core/linear/softmax.cpp (see softmax_kernels.h for what each computes).
// Compiled with -mavx2 -mfma where the build can (CMakeLists.txt); called only when
// cpu_has_avx2_fma(). Register tiles: block_dots keeps 2 rows x 5 classes of 8-float partial dot
// products (10 accumulators), block_outer 5 classes x 16 columns of the accumulator (10) while it
// walks the block's rows; both read each x vector once per tile, from cache.
#include "core/linear/softmax_kernels.h"

#if defined(PYIMGCLS_LINEAR_AVX2) && defined(__AVX2__) && defined(__FMA__)

#include <immintrin.h>

namespace pyimgcls::core::linear_detail {
namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

// z[r * k + c] for RT rows from x and KT classes from w (both already offset).
template <int RT, int KT>
inline void dots_tile(const float* x, std::int64_t d, const float* w, float* z, std::int64_t k) {
    __m256 acc[RT][KT];
    for (int r = 0; r < RT; ++r)
        for (int c = 0; c < KT; ++c) acc[r][c] = _mm256_setzero_ps();
    std::int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m256 xv[RT];
        for (int r = 0; r < RT; ++r) {
            // the next rows of the block, 4 rows ahead (streamed from memory: the prefetcher alone
            // left 30% of the arithmetic idle at 10,000 x 1280)
            _mm_prefetch(reinterpret_cast<const char*>(x + (r + 4) * d + j), _MM_HINT_T0);
            xv[r] = _mm256_loadu_ps(x + r * d + j);
        }
        for (int c = 0; c < KT; ++c) {
            const __m256 wv = _mm256_loadu_ps(w + c * d + j);
            for (int r = 0; r < RT; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
        }
    }
    for (int r = 0; r < RT; ++r)
        for (int c = 0; c < KT; ++c) {
            float s = hsum(acc[r][c]);
            for (std::int64_t jj = j; jj < d; ++jj) s += x[r * d + jj] * w[c * d + jj];
            z[r * k + c] = s;
        }
}

template <int RT>
inline void dots_rows(const float* x, std::int64_t d, const float* w, std::int64_t k, float* z) {
    std::int64_t c = 0;
    for (; c + 5 <= k; c += 5) dots_tile<RT, 5>(x, d, w + c * d, z + c, k);
    switch (k - c) {
        case 4: dots_tile<RT, 4>(x, d, w + c * d, z + c, k); break;
        case 3: dots_tile<RT, 3>(x, d, w + c * d, z + c, k); break;
        case 2: dots_tile<RT, 2>(x, d, w + c * d, z + c, k); break;
        case 1: dots_tile<RT, 1>(x, d, w + c * d, z + c, k); break;
        default: break;
    }
}

// acc[c * d + j] += sum_i r[i * k + c] * x[i * d + j] for KT classes and JC chunks of 8 columns at j.
template <int KT, int JC>
inline void outer_tile(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                       float* acc, std::int64_t j) {
    __m256 a[KT][JC];
    for (int c = 0; c < KT; ++c)
        for (int q = 0; q < JC; ++q) a[c][q] = _mm256_loadu_ps(acc + c * d + j + 8 * q);
    for (std::int64_t i = 0; i < rows; ++i) {
        __m256 xv[JC];
        for (int q = 0; q < JC; ++q) xv[q] = _mm256_loadu_ps(x + i * d + j + 8 * q);
        for (int c = 0; c < KT; ++c) {
            const __m256 rv = _mm256_broadcast_ss(r + i * k + c);
            for (int q = 0; q < JC; ++q) a[c][q] = _mm256_fmadd_ps(rv, xv[q], a[c][q]);
        }
    }
    for (int c = 0; c < KT; ++c)
        for (int q = 0; q < JC; ++q) _mm256_storeu_ps(acc + c * d + j + 8 * q, a[c][q]);
}

template <int KT>
inline void outer_classes(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                          float* acc) {
    std::int64_t j = 0;
    for (; j + 16 <= d; j += 16) outer_tile<KT, 2>(x, rows, d, r, k, acc, j);
    for (; j + 8 <= d; j += 8) outer_tile<KT, 1>(x, rows, d, r, k, acc, j);
    for (; j < d; ++j)  // the last d % 8 columns
        for (int c = 0; c < KT; ++c) {
            float s = acc[c * d + j];
            for (std::int64_t i = 0; i < rows; ++i) s += r[i * k + c] * x[i * d + j];
            acc[c * d + j] = s;
        }
}

}  // namespace

void block_dots_avx2(const float* x, std::int64_t rows, std::int64_t d, const float* w, std::int64_t k, float* z) {
    std::int64_t i = 0;
    for (; i + 2 <= rows; i += 2) dots_rows<2>(x + i * d, d, w, k, z + i * k);
    if (i < rows) dots_rows<1>(x + i * d, d, w, k, z + i * k);
}

void block_outer_avx2(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                      float* acc) {
    std::int64_t c = 0;
    for (; c + 5 <= k; c += 5) outer_classes<5>(x, rows, d, r + c, k, acc + c * d);
    switch (k - c) {
        case 4: outer_classes<4>(x, rows, d, r + c, k, acc + c * d); break;
        case 3: outer_classes<3>(x, rows, d, r + c, k, acc + c * d); break;
        case 2: outer_classes<2>(x, rows, d, r + c, k, acc + c * d); break;
        case 1: outer_classes<1>(x, rows, d, r + c, k, acc + c * d); break;
        default: break;
    }
}

}  // namespace pyimgcls::core::linear_detail

#endif
