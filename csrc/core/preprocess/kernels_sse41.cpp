// The SSE4.1 kernel set (see kernels.h). This file alone is compiled with -msse4.1 (CMake, GCC / Clang
// on x86); select_kernels() uses it only when the CPU reports SSE4.1. Without that flag (MSVC, other
// architectures, PYIMGCLS_NO_SIMD) it compiles to a null set. Nothing here may have external linkage
// besides sse41_kernels(), and nothing may run before the CPU check (no dynamic initialisers): a
// function compiled for SSE4.1 must not be reachable on a CPU without it.
//
// Over the SSE2 set: one-instruction widening loads (pmovzx; same floats), and for uint8 sources the
// Q14 kernels. Q14: taps are taken two at a time, the two adjacent source pixels reordered by pshufb
// into 16-bit (pixel, pixel) pairs per channel and multiplied-added with pmaddwd by 16-bit weights
// that sum to exactly 16384 per output (flat areas stay exact), then scaled by 2^-14 in float. The
// horizontal value differs from float weights by at most taps * 255 * 2^-15 (0.008 of a step for 2
// taps, 0.08 for 10; Pillow itself rounds to whole steps between its two passes).
// Cost: O(n * ceil(taps / 2)) per row.
#include "core/preprocess/kernels.h"

#if defined(__SSE4_1__) && !defined(PYIMGCLS_NO_SIMD)

#include <smmintrin.h>

#include <cstring>

#include "core/preprocess/kernel_bodies_sse.h"

namespace pyimgcls::core {
namespace {

struct LoadSse41 {
    static __m128 pixel4(const std::uint8_t* p) {
        std::int32_t v;
        std::memcpy(&v, p, 4);
        return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(v)));
    }
    static __m128 pixel4(const std::uint16_t* p) {
        return _mm_cvtepi32_ps(_mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
};

// pshufb mask: bytes of two adjacent pixels -> 16-bit (pixel j, pixel j + 1) pairs per channel.
inline __m128i pair_mask(int ps) {
    return ps == 3 ? _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1)
                   : _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, -1, -1, -1, -1);
}

// uint8 colour row with 3+ taps (antialiased or area shrinking): ceil(taps / 2) pmaddwd per output.
// `safe` counts the outputs whose 8-byte loads stay inside the image.
void hpass_color_u8q14(const std::uint8_t* row, int ps, const AxisSpan& xt, const std::int32_t* wq, int safe,
                       float* out) {
    const __m128i mask = pair_mask(ps);
    const int pairs = (xt.taps + 1) / 2;
    const __m128 unit = _mm_set1_ps(1.0f / 16384.0f);
    const int* start = xt.start;
    int ox = 0;
    for (; ox < safe; ++ox) {
        const std::uint8_t* p = row + static_cast<std::ptrdiff_t>(start[ox]) * ps;
        const std::int32_t* w = wq + static_cast<std::ptrdiff_t>(ox) * pairs;
        __m128i acc = _mm_setzero_si128();
        for (int j = 0; j < pairs; ++j) {
            const __m128i px = _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 2 * j * ps)), mask);
            acc = _mm_add_epi32(acc, _mm_madd_epi16(px, _mm_set1_epi32(w[j])));
        }
        _mm_storeu_ps(out + 4 * ox, _mm_mul_ps(_mm_cvtepi32_ps(acc), unit));
    }
    hpass_color_tail<std::uint8_t, 0>(row, ps, xt, ox, out);
}

// uint8, 2x2 taps while shrinking: the two horizontal taps of each row are one pshufb + pmaddwd,
// `wq` holds per output the pair (w0, w1) packed in one word.
void fused_2x2_u8q14(const std::uint8_t* r0, const std::uint8_t* r1, int ps, const AxisSpan& xt,
                     const std::int32_t* wq, const float* wy, int safe, int n, float* acc) {
    const __m128i mask = pair_mask(ps);
    const __m128 wy0 = _mm_set1_ps(wy[0] / 16384.0f), wy1 = _mm_set1_ps(wy[1] / 16384.0f);
    const int* xs = xt.start;
    int x = 0;
    for (; x < safe; ++x) {
        const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(xs[x]) * ps;
        const __m128i w = _mm_set1_epi32(wq[x]);
        const __m128i a = _mm_madd_epi16(
            _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + o)), mask), w);
        const __m128i b = _mm_madd_epi16(
            _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + o)), mask), w);
        _mm_storeu_ps(acc + 4 * x, _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(a), wy0), _mm_mul_ps(_mm_cvtepi32_ps(b), wy1)));
    }
    const float* wx = xt.w;
    for (; x < n; ++x) {
        const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(xs[x]) * ps;
        fused_2x2_pixel_scalar(r0 + o, r1 + o, ps, wx + 2 * x, wy, acc + 4 * x);
    }
}

// The same, storing straight into three float32 NCHW planes (normalised, channels mapped), four
// outputs at a time; returns how many outputs it wrote (the caller finishes the rest).
int fused_2x2_u8q14_planes(const std::uint8_t* r0, const std::uint8_t* r1, int ps, const AxisSpan& xt,
                           const std::int32_t* wq, const float* wy, int safe, const PreprocessParams& p, float* o0,
                           float* o1, float* o2) {
    const __m128i mask = pair_mask(ps);
    const __m128 wy0 = _mm_set1_ps(wy[0] / 16384.0f), wy1 = _mm_set1_ps(wy[1] / 16384.0f);
    const __m128 s0 = _mm_set1_ps(p.scale[0]), s1 = _mm_set1_ps(p.scale[1]), s2 = _mm_set1_ps(p.scale[2]);
    const __m128 b0 = _mm_set1_ps(p.bias[0]), b1 = _mm_set1_ps(p.bias[1]), b2 = _mm_set1_ps(p.bias[2]);
    const int m0 = p.channel_map[0], m1 = p.channel_map[1], m2 = p.channel_map[2];
    const int* xs = xt.start;
    int x = 0;
    for (; x + 4 <= safe; x += 4) {
        __m128 v[4];
        for (int k = 0; k < 4; ++k) {
            const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(xs[x + k]) * ps;
            const __m128i w = _mm_set1_epi32(wq[x + k]);
            const __m128i a = _mm_madd_epi16(
                _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + o)), mask), w);
            const __m128i b = _mm_madd_epi16(
                _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + o)), mask), w);
            v[k] = _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(a), wy0), _mm_mul_ps(_mm_cvtepi32_ps(b), wy1));
        }
        _MM_TRANSPOSE4_PS(v[0], v[1], v[2], v[3]);  // v[c] = channel c of the four outputs
        _mm_storeu_ps(o0 + x, _mm_add_ps(_mm_mul_ps(v[m0], s0), b0));
        _mm_storeu_ps(o1 + x, _mm_add_ps(_mm_mul_ps(v[m1], s1), b1));
        _mm_storeu_ps(o2 + x, _mm_add_ps(_mm_mul_ps(v[m2], s2), b2));
    }
    return x;
}

// Four RGBX pixels as 16 bytes (pixel q's lane l at 4q + l) -> the pshufb mask that puts output
// byte k of each pixel (lane map[k]) in place: 12 NHWC bytes, or 4 bytes per NCHW plane.
inline __m128i u8_order(const int* map, bool planes) {
    alignas(16) std::int8_t mk[16];
    for (int i = 0; i < 16; ++i) mk[i] = -1;
    for (int q = 0; q < 4; ++q)
        for (int k = 0; k < 3; ++k) mk[planes ? 4 * k + q : 3 * q + k] = static_cast<std::int8_t>(4 * q + map[k]);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(mk));
}

// Stores the four pixels x .. x + 3 of such a shuffled vector: 4 bytes to each plane, or 12 NHWC bytes
// (nothing past the pixels is written).
inline void store4_u8(__m128i b, bool planes, int x, std::uint8_t* o0, std::uint8_t* o1, std::uint8_t* o2) {
    if (planes) {
        const int r0 = _mm_cvtsi128_si32(b), r1 = _mm_cvtsi128_si32(_mm_srli_si128(b, 4)),
                  r2 = _mm_cvtsi128_si32(_mm_srli_si128(b, 8));
        std::memcpy(o0 + x, &r0, 4);
        std::memcpy(o1 + x, &r1, 4);
        std::memcpy(o2 + x, &r2, 4);
    } else {
        std::uint8_t* o = o0 + 3 * static_cast<std::ptrdiff_t>(x);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o), b);
        const int tail = _mm_cvtsi128_si32(_mm_srli_si128(b, 8));
        std::memcpy(o + 8, &tail, 4);
    }
}

// RGBX row -> uint8, four outputs a step: o_k[x] = saturate_u8(vals[4x + m_k] * scale[k] + bias[k]) with
// the scalar store's operations (the product and sum in float32, then max(v, 0) -- NaN -> 0 --, min
// 255, + 0.5, truncated). NHWC (planes == false): three bytes a pixel at o0; NCHW: one plane each. Lane
// m_k of each pixel gets channel k's scale and bias, then pshufb puts the bytes in place. Returns the
// outputs written (0 when channel_map is not a permutation of 0, 1, 2: the caller's loop does them).
int rgbx_to_u8(const float* vals, int n, const PreprocessParams& p, bool planes, std::uint8_t* o0,
               std::uint8_t* o1, std::uint8_t* o2) {
    const int m[3] = {p.channel_map[0], p.channel_map[1], p.channel_map[2]};
    alignas(16) float sl[4] = {0.f, 0.f, 0.f, 0.f}, bl[4] = {0.f, 0.f, 0.f, 0.f};
    int seen = 0;
    for (int k = 0; k < 3; ++k) {
        if (m[k] < 0 || m[k] > 2 || (seen & (1 << m[k]))) return 0;
        seen |= 1 << m[k];
        sl[m[k]] = p.scale[k];
        bl[m[k]] = p.bias[k];
    }
    const __m128 S = _mm_load_ps(sl), B = _mm_load_ps(bl);
    const __m128 zero = _mm_setzero_ps(), top = _mm_set1_ps(255.f), half = _mm_set1_ps(0.5f);
    const __m128i order = u8_order(m, planes);
    auto lane = [&](const float* v) {
        const __m128 x = _mm_min_ps(_mm_max_ps(_mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v), S), B), zero), top);
        return _mm_cvttps_epi32(_mm_add_ps(x, half));
    };
    int x = 0;
    for (; x + 4 <= n; x += 4) {
        const float* v = vals + 4 * x;
        const __m128i w = _mm_packus_epi16(_mm_packs_epi32(lane(v), lane(v + 4)), _mm_packs_epi32(lane(v + 8), lane(v + 12)));
        store4_u8(_mm_shuffle_epi8(w, order), planes, x, o0, o1, o2);
    }
    return x;
}

// bilinear_cv2 into uint8 values as they are (scale 1, bias 0): the vertical pass of cv2_vrow_sse
// (the same integers) packed straight to bytes, whose saturation is its clamp to [0, 255]. lanes 1:
// sixteen outputs a step into o0; lanes 4 (colour): four pixels a step, output byte k of a pixel
// from its lane map[k], NHWC at o0 or NCHW planes o0 / o1 / o2. Returns the outputs written.
int cv2_vrow_u8(const std::int16_t* h0, const std::int16_t* h1, int b0, int b1, int n, int lanes, const int* map,
                bool planes, std::uint8_t* o0, std::uint8_t* o1, std::uint8_t* o2) {
    const __m128i B0 = _mm_set1_epi16(static_cast<std::int16_t>(b0)), B1 = _mm_set1_epi16(static_cast<std::int16_t>(b1));
    const __m128i two = _mm_set1_epi16(2);
    auto v8 = [&](std::ptrdiff_t e) {
        const __m128i p = _mm_mulhi_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h0 + e)), B0);
        const __m128i q = _mm_mulhi_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h1 + e)), B1);
        return _mm_srai_epi16(_mm_add_epi16(_mm_add_epi16(p, q), two), 2);
    };
    int x = 0;
    if (lanes == 1) {
        for (; x + 16 <= n; x += 16)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o0 + x), _mm_packus_epi16(v8(x), v8(x + 8)));
        return x;
    }
    const __m128i order = u8_order(map, planes);
    for (; x + 4 <= n; x += 4) {
        const std::ptrdiff_t e = 4 * static_cast<std::ptrdiff_t>(x);
        store4_u8(_mm_shuffle_epi8(_mm_packus_epi16(v8(e), v8(e + 8)), order), planes, x, o0, o1, o2);
    }
    return x;
}

// constexpr: constant-initialised, no code runs before the CPU check
constexpr PreprocessKernels kSse41 = {
    "sse41",
    &hpass_color_taps<LoadSse41, std::uint8_t>,
    &hpass_color_taps<LoadSse41, std::uint16_t>,
    &fused_2x2_sse<LoadSse41, std::uint8_t>,
    &fused_2x2_sse<LoadSse41, std::uint16_t>,
    &hpass_color_u8q14,
    &fused_2x2_u8q14,
    &fused_2x2_u8q14_planes,
    &rgbx_to_planes_f32_sse,
    &cv2_hrow_sse,
    &cv2_vrow_sse,
    &rgbx_to_u8,
    &cv2_vrow_u8,
};

}  // namespace

const PreprocessKernels* sse41_kernels() { return &kSse41; }

}  // namespace pyimgcls::core

#else

namespace pyimgcls::core {
const PreprocessKernels* sse41_kernels() { return nullptr; }
}  // namespace pyimgcls::core

#endif
