// The AVX2 row kernels of crop_resize's bilinear path (see crop_resize_avx2.h). This file alone is
// compiled with -mavx2 -mfma -ffp-contract=off (CMake, GCC / Clang on x86); crop_resize.cpp calls into
// it only when cpu_has_avx2_fma(). Without those flags (MSVC, other architectures, PYIMGCLS_NO_SIMD) it
// compiles to a null table. Nothing here may have external linkage besides crop_avx2_kernels(), and
// nothing may run before the CPU check (no dynamic initialisers).
//
// Bit-identity with the baseline: every value is computed by the same IEEE float32 operations in the
// same order as BilinearPath's loops (vertical: a * r0 + b * r1; horizontal: (w0 * v0 + w1 * v1) *
// scale + bias; uint8: min(max(x, 0), 255) + 0.5, truncated); -ffp-contract=off keeps the compiler
// from fusing a multiply and an add into one FMA (which rounds once instead of twice).
//
// Three channels, eight output columns a step: columns j + k and j + 4 + k share one 256-bit register
// (their 4-lane RGBx pixels in the two 128-bit halves, weights broadcast per half with an in-lane
// shuffle); NCHW transposes the four registers into R, G and B vectors of eight columns (six
// shuffles) and stores each plane with one store; NHWC stores each pixel's four lanes in column order
// (the fourth lands on the next pixel and is rewritten by it). One channel: two gathers a step.
// Cost per output row: O(span * C / 8) for the vertical blend, O(out_w / 8) steps for the rest.
#include "core/crop/crop_resize_avx2.h"

#if defined(__AVX2__) && defined(__FMA__) && !defined(PYIMGCLS_NO_SIMD)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace pyimgcls::core {
namespace {

inline void store1(float* o, float v) { *o = v; }
inline void store1(std::uint8_t* o, float v) {
    v = std::min(std::max(v, 0.f), 255.f);
    *o = static_cast<std::uint8_t>(static_cast<int>(v + 0.5f));
}

int axis(double b0, double b1, int count, int unit, int* i0, int* i1, float* w0, float* w1) {
    const double lo = std::floor(b0);
    const double hi = std::max(lo, std::ceil(b1) - 1.0);
    const double scale = (b1 - b0) / count;
    const __m256d LO = _mm256_set1_pd(lo), HI = _mm256_set1_pd(hi), S = _mm256_set1_pd(scale);
    const __m256d B0 = _mm256_set1_pd(b0), half = _mm256_set1_pd(0.5), one = _mm256_set1_pd(1.0);
    const __m128i U = _mm_set1_epi32(unit);
    int o = 0;
    for (; o + 4 <= count; o += 4) {
        const __m256d oo = _mm256_cvtepi32_pd(_mm_add_epi32(_mm_set1_epi32(o), _mm_setr_epi32(0, 1, 2, 3)));
        // pos = b0 + (o + 0.5) * scale - 0.5, evaluated left to right as the baseline does
        const __m256d pos = _mm256_sub_pd(_mm256_add_pd(B0, _mm256_mul_pd(_mm256_add_pd(oo, half), S)), half);
        const __m256d f0 = _mm256_floor_pd(pos);
        const __m256d frac = _mm256_sub_pd(pos, f0);
        const __m256d a = _mm256_sub_pd(_mm256_min_pd(_mm256_max_pd(f0, LO), HI), LO);
        const __m256d b = _mm256_sub_pd(_mm256_min_pd(_mm256_max_pd(_mm256_add_pd(f0, one), LO), HI), LO);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(i0 + o), _mm_mullo_epi32(_mm256_cvttpd_epi32(a), U));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(i1 + o), _mm_mullo_epi32(_mm256_cvttpd_epi32(b), U));
        _mm_storeu_ps(w0 + o, _mm256_cvtpd_ps(_mm256_sub_pd(one, frac)));
        _mm_storeu_ps(w1 + o, _mm256_cvtpd_ps(frac));
    }
    for (; o < count; ++o) {
        const double pos = b0 + (o + 0.5) * scale - 0.5;
        const double f0 = std::floor(pos);
        const double frac = pos - f0;
        i0[o] = static_cast<int>(std::min(std::max(f0, lo), hi) - lo) * unit;
        i1[o] = static_cast<int>(std::min(std::max(f0 + 1.0, lo), hi) - lo) * unit;
        w0[o] = static_cast<float>(1.0 - frac);
        w1[o] = static_cast<float>(frac);
    }
    return static_cast<int>(hi - lo) + 1;
}

void vblend(float* __restrict v, const std::uint8_t* __restrict r0, const std::uint8_t* __restrict r1, float a,
            float b, int m) {
    const __m256 A = _mm256_set1_ps(a), B = _mm256_set1_ps(b);
    int e = 0;
    for (; e + 16 <= m; e += 16) {
        // (8-byte loads: the widening takes them as memory operands, no shift of a 16-byte load)
        const __m256 p0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + e))));
        const __m256 p1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + e + 8))));
        const __m256 q0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + e))));
        const __m256 q1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + e + 8))));
        _mm256_storeu_ps(v + e, _mm256_add_ps(_mm256_mul_ps(A, p0), _mm256_mul_ps(B, q0)));
        _mm256_storeu_ps(v + e + 8, _mm256_add_ps(_mm256_mul_ps(A, p1), _mm256_mul_ps(B, q1)));
    }
    if (m >= 8 && e < m) {
        // the rest in steps of 8, the last one ending at m (overlapping values are recomputed equal)
        for (;;) {
            if (e + 8 > m) e = m - 8;
            const __m256 p = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + e))));
            const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + e))));
            _mm256_storeu_ps(v + e, _mm256_add_ps(_mm256_mul_ps(A, p), _mm256_mul_ps(B, q)));
            e += 8;
            if (e >= m) return;
        }
    }
    for (; e < m; ++e) v[e] = a * static_cast<float>(r0[e]) + b * static_cast<float>(r1[e]);
}

inline __m256 widen8(const std::uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// Two output rows whose source rows overlap, each source row widened once: CHAIN (the first row's
// second source row is the second row's first): v = a * P + b * Q, v2 = c * Q + d * S; else (the same
// two source rows): v = a * P + b * Q, v2 = c * P + d * Q. The same operations as two vblend calls.
template <bool CHAIN>
void vblend2(float* __restrict v, float* __restrict v2, const std::uint8_t* P, const std::uint8_t* Q,
             const std::uint8_t* S, float a, float b, float c, float d, int m) {
    const __m256 A = _mm256_set1_ps(a), B = _mm256_set1_ps(b), C = _mm256_set1_ps(c), D = _mm256_set1_ps(d);
    if (m < 8) {
        for (int e = 0; e < m; ++e) {
            const float p = static_cast<float>(P[e]), q = static_cast<float>(Q[e]);
            v[e] = a * p + b * q;
            v2[e] = CHAIN ? c * q + d * static_cast<float>(S[e]) : c * p + d * q;
        }
        return;
    }
    for (int e = 0;;) {  // steps of 8, the last one ending at m (overlapping values are recomputed equal)
        if (e + 8 > m) e = m - 8;
        const __m256 p = widen8(P + e), q = widen8(Q + e);
        _mm256_storeu_ps(v + e, _mm256_add_ps(_mm256_mul_ps(A, p), _mm256_mul_ps(B, q)));
        if constexpr (CHAIN) _mm256_storeu_ps(v2 + e, _mm256_add_ps(_mm256_mul_ps(C, q), _mm256_mul_ps(D, widen8(S + e))));
        else _mm256_storeu_ps(v2 + e, _mm256_add_ps(_mm256_mul_ps(C, p), _mm256_mul_ps(D, q)));
        e += 8;
        if (e >= m) return;
    }
}

// Columns j + K and j + 4 + K of each of the R rows: w0 * v0 + w1 * v1 per lane (lanes: RGBx of each
// column); the taps and weights are loaded once for the rows.
template <int K, int R>
inline void pair3(const float* const* v, const int* X0, const int* X1, __m256 a, __m256 b, int j, __m256* p) {
    const __m256 wa = _mm256_shuffle_ps(a, a, K * 0x55);  // w0[j + K] x4 | w0[j + 4 + K] x4
    const __m256 wb = _mm256_shuffle_ps(b, b, K * 0x55);
    const int i0 = X0[j + K], i0h = X0[j + 4 + K], i1 = X1[j + K], i1h = X1[j + 4 + K];
    for (int r = 0; r < R; ++r) {
        const __m256 p0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(v[r] + i0)), _mm_loadu_ps(v[r] + i0h), 1);
        const __m256 p1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(v[r] + i1)), _mm_loadu_ps(v[r] + i1h), 1);
        p[4 * r + K] = _mm256_add_ps(_mm256_mul_ps(wa, p0), _mm256_mul_ps(wb, p1));
    }
}

// uint8 conversion of eight lanes as store1 does it (saturate to [0, 255], + 0.5, truncate), to int32
// lanes that the callers' saturating packs finish: min(255, x) + 0.5 truncated, then packs / packus
// take every negative (and cvtt's 0x80000000 for NaN, -inf and huge negatives) to 0, as max(x, 0)
// would. (min with 255 first: a NaN lane stays NaN and ends at 0, as in store1.)
inline __m256i to_u8_lanes(__m256 x) {
    const __m256 c = _mm256_min_ps(_mm256_set1_ps(255.f), x);
    return _mm256_cvttps_epi32(_mm256_add_ps(c, _mm256_set1_ps(0.5f)));
}

// Eight int32 lanes (to_u8_lanes) -> eight bytes at o (saturated).
inline void store8_u8(std::uint8_t* o, __m256i q) {
    const __m256i w = _mm256_packus_epi16(_mm256_packs_epi32(q, q), _mm256_setzero_si256());  // lane l: q[4l..4l+3] in bytes 0..3
    const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi32(lo, hi));
}

template <typename T>
inline void tail3(const float* v, const CropRow& r, T* out, int j, bool nhwc) {
    for (; j < r.width; ++j) {
        const float a = r.w0[j], b = r.w1[j];
        for (int c = 0; c < 3; ++c) {
            const float x = (a * v[r.x0[j] + c] + b * v[r.x1[j] + c]) * r.scale[c] + r.bias[c];
            store1(nhwc ? out + static_cast<std::ptrdiff_t>(j) * 3 + c : out + c * r.plane + j, x);
        }
    }
}

// Eight columns j .. j + 7 of one NCHW row from p[k] = (column j + k | column j + 4 + k), RGBx lanes.
template <typename T>
inline void store_nchw(const __m256* p, T* out, std::ptrdiff_t plane, int j, const __m256* S, const __m256* Bi) {
    const __m256 t0 = _mm256_unpacklo_ps(p[0], p[1]), t1 = _mm256_unpackhi_ps(p[0], p[1]);
    const __m256 t2 = _mm256_unpacklo_ps(p[2], p[3]), t3 = _mm256_unpackhi_ps(p[2], p[3]);
    const __m256 R = _mm256_add_ps(_mm256_mul_ps(_mm256_shuffle_ps(t0, t2, 0x44), S[0]), Bi[0]);
    const __m256 G = _mm256_add_ps(_mm256_mul_ps(_mm256_shuffle_ps(t0, t2, 0xEE), S[1]), Bi[1]);
    const __m256 B = _mm256_add_ps(_mm256_mul_ps(_mm256_shuffle_ps(t1, t3, 0x44), S[2]), Bi[2]);
    if constexpr (std::is_same_v<T, float>) {
        _mm256_storeu_ps(out + j, R);
        _mm256_storeu_ps(out + plane + j, G);
        _mm256_storeu_ps(out + 2 * plane + j, B);
    } else {
        // R, G | B, B as int16, then bytes: lane 0 = R0-3 G0-3 B0-3 B0-3, lane 1 = R4-7 G4-7 B4-7 B4-7
        const __m256i rg = _mm256_packs_epi32(to_u8_lanes(R), to_u8_lanes(G));
        const __m256i bb = _mm256_packs_epi32(to_u8_lanes(B), to_u8_lanes(B));
        const __m256i bytes = _mm256_packus_epi16(rg, bb);
        // dwords (0, 4 | 1, 5 | 2, 6): R0-7, G0-7, B0-7 as three 8-byte words
        const __m256i planes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        const __m128i lo = _mm256_castsi256_si128(planes);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + j), lo);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + plane + j), _mm_unpackhi_epi64(lo, lo));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 2 * plane + j), _mm256_extracti128_si256(planes, 1));
    }
}

// The same for an NHWC row of W columns.
template <typename T>
inline void store_nhwc(const __m256* pin, T* out, int j, int W, __m256 S, __m256 Bi) {
    __m256 p[4];
    for (int k = 0; k < 4; ++k) p[k] = _mm256_add_ps(_mm256_mul_ps(pin[k], S), Bi);
    T* o = out + static_cast<std::ptrdiff_t>(j) * 3;
    if constexpr (std::is_same_v<T, float>) {
        // pixel j + q at o + 3q, in column order; each store's fourth lane is the next pixel's first
        // value, rewritten by that pixel's store (the row's last pixel: 3 values only)
        for (int k = 0; k < 4; ++k) _mm_storeu_ps(o + 3 * k, _mm256_castps256_ps128(p[k]));
        for (int k = 0; k < 3; ++k) _mm_storeu_ps(o + 12 + 3 * k, _mm256_extractf128_ps(p[k], 1));
        if (j + 8 < W) {
            _mm_storeu_ps(o + 21, _mm256_extractf128_ps(p[3], 1));
        } else {
            alignas(16) float last[4];
            _mm_store_ps(last, _mm256_extractf128_ps(p[3], 1));
            std::memcpy(o + 21, last, 3 * sizeof(float));
        }
    } else {
        const __m256i q01 = _mm256_packs_epi32(to_u8_lanes(p[0]), to_u8_lanes(p[1]));  // px j, j+1 | j+4, j+5
        const __m256i q23 = _mm256_packs_epi32(to_u8_lanes(p[2]), to_u8_lanes(p[3]));  // px j+2, j+3 | j+6, j+7
        const __m256i bytes = _mm256_packus_epi16(q01, q23);  // RGBx of j..j+3 | of j+4..j+7
        const __m256i drop_x = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                                0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
        const __m256i rgb = _mm256_shuffle_epi8(bytes, drop_x);  // 12 bytes a half, then 4 zeros
        // 16-byte stores: the 4 bytes past each half's 12 are rewritten later in this row (the first
        // half's by the second; the second's by pixels j + 8 and j + 9 when they exist)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(rgb));
        if (j + 10 <= W) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 12), _mm256_extracti128_si256(rgb, 1));
        } else {
            alignas(16) std::uint8_t last[16];
            _mm_store_si128(reinterpret_cast<__m128i*>(last), _mm256_extracti128_si256(rgb, 1));
            std::memcpy(o + 12, last, 12);
        }
    }
}

// R (1 or 2) rows: r.v / r.out, and r.v2 / r.out2 for the second.
template <bool NHWC, typename T, int R>
void row3(const CropRow& r) {
    const float* const v[2] = {r.v, r.v2};
    T* const out[2] = {static_cast<T*>(r.out), static_cast<T*>(r.out2)};
    const int* X0 = r.x0;
    const int* X1 = r.x1;
    const float* A = r.w0;
    const float* B = r.w1;
    const int W = r.width;
    const std::ptrdiff_t plane = r.plane;  // (locals: the stores below may not alias them)
    __m256 S[3], Bi[3];
    for (int c = 0; c < 3; ++c) S[c] = _mm256_set1_ps(r.scale[c]), Bi[c] = _mm256_set1_ps(r.bias[c]);
    const __m256 S4 = _mm256_setr_ps(r.scale[0], r.scale[1], r.scale[2], 0.f, r.scale[0], r.scale[1], r.scale[2], 0.f);
    const __m256 B4 = _mm256_setr_ps(r.bias[0], r.bias[1], r.bias[2], 0.f, r.bias[0], r.bias[1], r.bias[2], 0.f);
    int j = 0;
    for (; j + 8 <= W; j += 8) {
        const __m256 a = _mm256_loadu_ps(A + j), b = _mm256_loadu_ps(B + j);
        __m256 p[4 * R];
        pair3<0, R>(v, X0, X1, a, b, j, p);
        pair3<1, R>(v, X0, X1, a, b, j, p);
        pair3<2, R>(v, X0, X1, a, b, j, p);
        pair3<3, R>(v, X0, X1, a, b, j, p);
        for (int q = 0; q < R; ++q) {
            if constexpr (NHWC) store_nhwc<T>(p + 4 * q, out[q], j, W, S4, B4);
            else store_nchw<T>(p + 4 * q, out[q], plane, j, S, Bi);
        }
    }
    for (int q = 0; q < R; ++q) tail3<T>(v[q], r, out[q], j, NHWC);
}

template <typename T>
void row1(const CropRow& r) {
    const float* v = r.v;
    const int W = r.width;
    T* out = static_cast<T*>(r.out);
    const __m256 S = _mm256_set1_ps(r.scale[0]), Bi = _mm256_set1_ps(r.bias[0]);
    int j = 0;
    for (; j + 8 <= W; j += 8) {
        const __m256 v0 = _mm256_i32gather_ps(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.x0 + j)), 4);
        const __m256 v1 = _mm256_i32gather_ps(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.x1 + j)), 4);
        const __m256 x = _mm256_add_ps(
            _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(r.w0 + j), v0), _mm256_mul_ps(_mm256_loadu_ps(r.w1 + j), v1)), S),
            Bi);
        if constexpr (std::is_same_v<T, float>) _mm256_storeu_ps(out + j, x);
        else store8_u8(out + j, to_u8_lanes(x));
    }
    for (; j < W; ++j) store1(out + j, (r.w0[j] * v[r.x0[j]] + r.w1[j] * v[r.x1[j]]) * r.scale[0] + r.bias[0]);
}

// constexpr: constant-initialised, no code runs before the CPU check
constexpr CropAvx2Kernels kAvx2 = {
    &axis,
    &vblend,
    {&vblend2<false>, &vblend2<true>},
    {{&row3<false, float, 1>, &row3<false, std::uint8_t, 1>}, {&row3<true, float, 1>, &row3<true, std::uint8_t, 1>}},
    {{&row3<false, float, 2>, &row3<false, std::uint8_t, 2>}, {&row3<true, float, 2>, &row3<true, std::uint8_t, 2>}},
    {&row1<float>, &row1<std::uint8_t>},
};

}  // namespace

const CropAvx2Kernels* crop_avx2_kernels() { return &kAvx2; }

}  // namespace pyimgcls::core

#else

namespace pyimgcls::core {
const CropAvx2Kernels* crop_avx2_kernels() { return nullptr; }
}  // namespace pyimgcls::core

#endif
