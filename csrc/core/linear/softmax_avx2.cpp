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

// Keeps a loaded vector in a register: GCC otherwise folds the load into each multiply-add that
// uses it, and a w vector used by two rows is then read twice (14 loads to 10 multiply-adds;
// 54 -> 59 GFLOP/s on one core).
#define PYIMGCLS_IN_REGISTER(v) __asm__("" : "+x"(v))

// dots_tile<2, 5> with named accumulators and each w vector loaded once.
inline void dots_tile_2x5(const float* x, std::int64_t d, const float* w, float* z, std::int64_t k) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a04 = a00;
    __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00;
    const float* x0 = x;
    const float* x1 = x + d;
    std::int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
        _mm_prefetch(reinterpret_cast<const char*>(x0 + 4 * d + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(x1 + 4 * d + j), _MM_HINT_T0);
        const __m256 u = _mm256_loadu_ps(x0 + j), v = _mm256_loadu_ps(x1 + j);
        __m256 wv = _mm256_loadu_ps(w + j);
        PYIMGCLS_IN_REGISTER(wv);
        a00 = _mm256_fmadd_ps(u, wv, a00);
        a10 = _mm256_fmadd_ps(v, wv, a10);
        wv = _mm256_loadu_ps(w + d + j);
        PYIMGCLS_IN_REGISTER(wv);
        a01 = _mm256_fmadd_ps(u, wv, a01);
        a11 = _mm256_fmadd_ps(v, wv, a11);
        wv = _mm256_loadu_ps(w + 2 * d + j);
        PYIMGCLS_IN_REGISTER(wv);
        a02 = _mm256_fmadd_ps(u, wv, a02);
        a12 = _mm256_fmadd_ps(v, wv, a12);
        wv = _mm256_loadu_ps(w + 3 * d + j);
        PYIMGCLS_IN_REGISTER(wv);
        a03 = _mm256_fmadd_ps(u, wv, a03);
        a13 = _mm256_fmadd_ps(v, wv, a13);
        wv = _mm256_loadu_ps(w + 4 * d + j);
        PYIMGCLS_IN_REGISTER(wv);
        a04 = _mm256_fmadd_ps(u, wv, a04);
        a14 = _mm256_fmadd_ps(v, wv, a14);
    }
    const __m256 acc[2][5] = {{a00, a01, a02, a03, a04}, {a10, a11, a12, a13, a14}};
    for (int r = 0; r < 2; ++r)
        for (int c = 0; c < 5; ++c) {
            float s = hsum(acc[r][c]);
            for (std::int64_t jj = j; jj < d; ++jj) s += x[r * d + jj] * w[c * d + jj];
            z[r * k + c] = s;
        }
}

template <int RT>
inline void dots_rows(const float* x, std::int64_t d, const float* w, std::int64_t k, float* z) {
    std::int64_t c = 0;
    if constexpr (RT == 2) {
        for (; c + 5 <= k; c += 5) dots_tile_2x5(x, d, w + c * d, z + c, k);
    } else {
        for (; c + 5 <= k; c += 5) dots_tile<RT, 5>(x, d, w + c * d, z + c, k);
    }
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

// The same for 5 classes x 16 columns (the tile of every 5 classes), with named accumulators: GCC
// kept the array version's ten accumulators in registers but also stored them to the stack on
// every row (one core, 64-row blocks from cache: 41 GFLOP/s, this version 73).
inline void outer_tile_5x16(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                            float* acc, std::int64_t j) {
    float* a0p = acc + j;
    __m256 a00 = _mm256_loadu_ps(a0p), a01 = _mm256_loadu_ps(a0p + 8);
    __m256 a10 = _mm256_loadu_ps(a0p + d), a11 = _mm256_loadu_ps(a0p + d + 8);
    __m256 a20 = _mm256_loadu_ps(a0p + 2 * d), a21 = _mm256_loadu_ps(a0p + 2 * d + 8);
    __m256 a30 = _mm256_loadu_ps(a0p + 3 * d), a31 = _mm256_loadu_ps(a0p + 3 * d + 8);
    __m256 a40 = _mm256_loadu_ps(a0p + 4 * d), a41 = _mm256_loadu_ps(a0p + 4 * d + 8);
    const float* xi = x + j;
    const float* ri = r;
    for (std::int64_t i = 0; i < rows; ++i, xi += d, ri += k) {
        const __m256 x0 = _mm256_loadu_ps(xi), x1 = _mm256_loadu_ps(xi + 8);
        __m256 rv = _mm256_broadcast_ss(ri);
        a00 = _mm256_fmadd_ps(rv, x0, a00);
        a01 = _mm256_fmadd_ps(rv, x1, a01);
        rv = _mm256_broadcast_ss(ri + 1);
        a10 = _mm256_fmadd_ps(rv, x0, a10);
        a11 = _mm256_fmadd_ps(rv, x1, a11);
        rv = _mm256_broadcast_ss(ri + 2);
        a20 = _mm256_fmadd_ps(rv, x0, a20);
        a21 = _mm256_fmadd_ps(rv, x1, a21);
        rv = _mm256_broadcast_ss(ri + 3);
        a30 = _mm256_fmadd_ps(rv, x0, a30);
        a31 = _mm256_fmadd_ps(rv, x1, a31);
        rv = _mm256_broadcast_ss(ri + 4);
        a40 = _mm256_fmadd_ps(rv, x0, a40);
        a41 = _mm256_fmadd_ps(rv, x1, a41);
    }
    _mm256_storeu_ps(a0p, a00);
    _mm256_storeu_ps(a0p + 8, a01);
    _mm256_storeu_ps(a0p + d, a10);
    _mm256_storeu_ps(a0p + d + 8, a11);
    _mm256_storeu_ps(a0p + 2 * d, a20);
    _mm256_storeu_ps(a0p + 2 * d + 8, a21);
    _mm256_storeu_ps(a0p + 3 * d, a30);
    _mm256_storeu_ps(a0p + 3 * d + 8, a31);
    _mm256_storeu_ps(a0p + 4 * d, a40);
    _mm256_storeu_ps(a0p + 4 * d + 8, a41);
}

template <int KT>
inline void outer_classes(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                          float* acc) {
    std::int64_t j = 0;
    if constexpr (KT == 5) {
        for (; j + 16 <= d; j += 16) outer_tile_5x16(x, rows, d, r, k, acc, j);
    } else {
        for (; j + 16 <= d; j += 16) outer_tile<KT, 2>(x, rows, d, r, k, acc, j);
    }
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
