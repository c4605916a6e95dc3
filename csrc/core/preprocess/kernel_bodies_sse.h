// SSE bodies of the colour row kernels (see kernels.h for indices and conventions), written once and
// instantiated by each vector set with its own pixel loader: `Load::pixel4(p)` widens the first four
// elements at p (one pixel, plus the next element for 3-channel pixels) to four floats. SSE2 and
// SSE4.1 differ only in that widening (unpack chains vs pmovzx); the floats are the same.
//
// Included only by the kernel set files (kernels_sse2.cpp, kernels_sse41.cpp), each compiled for its
// own instruction set: everything here has internal linkage. Arithmetic: float32, one product per tap
// and channel, summed in tap order (as the scalar tail does). Cost: O(taps) per output.
#pragma once

#include <emmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/preprocess/kernel_bodies_scalar.h"
#include "core/preprocess/kernels.h"

namespace pyimgcls::core {
namespace {

// Horizontal pass of one colour row: 4-lane loads for outputs [0, safe), scalar after. `w4` holds
// each weight broadcast to 4 lanes (one load per tap instead of a shuffle).
template <typename Load, typename Src, int TAPS>
void hpass_color_sse(const Src* row, int pixel_stride, const AxisSpan& xt, const float* w4, int safe, float* out) {
    const int taps = TAPS > 0 ? TAPS : xt.taps;
    const int* start = xt.start;
    int ox = 0;
    for (; ox < safe; ++ox) {
        const Src* p = row + static_cast<std::ptrdiff_t>(start[ox]) * pixel_stride;
        const float* w = w4 + static_cast<std::ptrdiff_t>(ox) * taps * 4;
        __m128 acc = _mm_mul_ps(Load::pixel4(p), _mm_loadu_ps(w));
        for (int j = 1; j < taps; ++j)
            acc = _mm_add_ps(acc, _mm_mul_ps(Load::pixel4(p + j * pixel_stride), _mm_loadu_ps(w + 4 * j)));
        _mm_storeu_ps(out + 4 * ox, acc);
    }
    hpass_color_tail<Src, TAPS>(row, pixel_stride, xt, ox, out);
}

// The kernel-set entry: 1 and 2 taps get their own unrolled copies.
template <typename Load, typename Src>
void hpass_color_taps(const Src* row, int ps, const AxisSpan& xt, const float* w4, int safe, float* out) {
    switch (xt.taps) {
        case 1: hpass_color_sse<Load, Src, 1>(row, ps, xt, w4, safe, out); break;
        case 2: hpass_color_sse<Load, Src, 2>(row, ps, xt, w4, safe, out); break;
        default: hpass_color_sse<Load, Src, 0>(row, ps, xt, w4, safe, out); break;
    }
}

// One output row from two source rows with 2x2 taps (bilinear while shrinking): the four source
// pixels of each output are blended directly, without a per-row horizontal pass.
template <typename Load, typename Src>
void fused_2x2_sse(const Src* r0, const Src* r1, int ps, const AxisSpan& xt, const float* w4, const float* wy,
                   int safe, int n, float* acc) {
    const __m128 wy0 = _mm_set1_ps(wy[0]), wy1 = _mm_set1_ps(wy[1]);
    const int* xs = xt.start;
    const float* wx = xt.w;
    int x = 0;
    for (; x < safe; ++x) {
        const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(xs[x]) * ps;
        const __m128 wx0 = _mm_loadu_ps(w4 + 8 * x), wx1 = _mm_loadu_ps(w4 + 8 * x + 4);
        const __m128 a = _mm_add_ps(_mm_mul_ps(Load::pixel4(r0 + o), wx0), _mm_mul_ps(Load::pixel4(r0 + o + ps), wx1));
        const __m128 b = _mm_add_ps(_mm_mul_ps(Load::pixel4(r1 + o), wx0), _mm_mul_ps(Load::pixel4(r1 + o + ps), wx1));
        _mm_storeu_ps(acc + 4 * x, _mm_add_ps(_mm_mul_ps(a, wy0), _mm_mul_ps(b, wy1)));
    }
    for (; x < n; ++x) {
        const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(xs[x]) * ps;
        fused_2x2_pixel_scalar(r0 + o, r1 + o, ps, wx + 2 * x, wy, acc + 4 * x);
    }
}

// RGBX row -> three float32 planes, four outputs per 4x4 transpose; returns the outputs written.
inline int rgbx_to_planes_f32_sse(const float* vals, int n, const PreprocessParams& p, float* o0, float* o1,
                                  float* o2) {
    const int m0 = p.channel_map[0], m1 = p.channel_map[1], m2 = p.channel_map[2];
    const __m128 vs0 = _mm_set1_ps(p.scale[0]), vs1 = _mm_set1_ps(p.scale[1]), vs2 = _mm_set1_ps(p.scale[2]);
    const __m128 vb0 = _mm_set1_ps(p.bias[0]), vb1 = _mm_set1_ps(p.bias[1]), vb2 = _mm_set1_ps(p.bias[2]);
    int x = 0;
    for (; x + 4 <= n; x += 4) {
        __m128 r0 = _mm_loadu_ps(vals + 4 * x), r1 = _mm_loadu_ps(vals + 4 * x + 4);
        __m128 r2 = _mm_loadu_ps(vals + 4 * x + 8), r3 = _mm_loadu_ps(vals + 4 * x + 12);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);  // r_c = channel c of 4 pixels
        const __m128 ch[3] = {r0, r1, r2};
        _mm_storeu_ps(o0 + x, _mm_add_ps(_mm_mul_ps(ch[m0], vs0), vb0));
        _mm_storeu_ps(o1 + x, _mm_add_ps(_mm_mul_ps(ch[m1], vs1), vb1));
        _mm_storeu_ps(o2 + x, _mm_add_ps(_mm_mul_ps(ch[m2], vs2), vb2));
    }
    return x;
}

// bilinear_cv2 (rows_cv2_linear in preprocess.cpp): OpenCV's INTER_LINEAR integer passes, SSE2 only,
// so both vector sets share them; integer results, equal to the scalar loops bit for bit.
//
// Horizontal: outputs [0, count) of one uint8 row with ps (3 or 4) channels, 4 int16 lanes each:
// out[4x + k] = (row[i0[x] * ps + k] * w0 + row[i1[x] * ps + k] * w1) >> 4 with wpair[x] = (w1 << 16) | w0
// (Q11 weights, at most 2048; the sum is at most 255 * 2049 < 2^19, so the shifted value fits int16).
// It reads 4 bytes a pixel (the next pixel's first byte for ps 3, landing in lane 3, which no output
// reads): the caller passes only outputs whose pixels have that byte inside the image.
inline void cv2_hrow_sse(const std::uint8_t* row, int ps, const int* i0, const int* i1, const std::int32_t* wpair,
                         int count, std::int16_t* out) {
    const __m128i zero = _mm_setzero_si128();
    auto px = [&](int i) {
        std::int32_t v;
        std::memcpy(&v, row + static_cast<std::ptrdiff_t>(i) * ps, 4);
        return _mm_cvtsi32_si128(v);
    };
    int x = 0;
    for (; x + 2 <= count; x += 2) {
        const __m128i a = _mm_unpacklo_epi32(px(i0[x]), px(i0[x + 1]));  // the two outputs' first taps
        const __m128i b = _mm_unpacklo_epi32(px(i1[x]), px(i1[x + 1]));  // and their second taps
        const __m128i ab = _mm_unpacklo_epi8(a, b);                        // (a, b) byte pairs per channel
        const __m128i s0 = _mm_madd_epi16(_mm_unpacklo_epi8(ab, zero), _mm_set1_epi32(wpair[x]));
        const __m128i s1 = _mm_madd_epi16(_mm_unpackhi_epi8(ab, zero), _mm_set1_epi32(wpair[x + 1]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4 * x),
                         _mm_packs_epi32(_mm_srai_epi32(s0, 4), _mm_srai_epi32(s1, 4)));
    }
    if (x < count) {
        const __m128i ab = _mm_unpacklo_epi8(px(i0[x]), px(i1[x]));
        const __m128i s0 = _mm_madd_epi16(_mm_unpacklo_epi8(ab, zero), _mm_set1_epi32(wpair[x]));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 4 * x), _mm_packs_epi32(_mm_srai_epi32(s0, 4), zero));
    }
}

// Vertical: lanes [0, m) of two cached rows: v = hi16(h0 * b0) + hi16(h1 * b1), (v + 2) >> 2, clamped to
// [0, 255], as float (the high half of the signed 16 x 16-bit product is (h * b) >> 16 of the scalar
// loop: h >= 0, 0 <= b <= 2048). Eight lanes a step; returns the lanes written (the caller does the rest).
inline int cv2_vrow_sse(const std::int16_t* h0, const std::int16_t* h1, int b0, int b1, int m, float* vals) {
    const __m128i B0 = _mm_set1_epi16(static_cast<std::int16_t>(b0)), B1 = _mm_set1_epi16(static_cast<std::int16_t>(b1));
    const __m128i two = _mm_set1_epi16(2), zero = _mm_setzero_si128(), top = _mm_set1_epi16(255);
    int e = 0;
    for (; e + 8 <= m; e += 8) {
        const __m128i p = _mm_mulhi_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h0 + e)), B0);
        const __m128i q = _mm_mulhi_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h1 + e)), B1);
        __m128i v = _mm_srai_epi16(_mm_add_epi16(_mm_add_epi16(p, q), two), 2);
        v = _mm_min_epi16(_mm_max_epi16(v, zero), top);
        _mm_storeu_ps(vals + e, _mm_cvtepi32_ps(_mm_unpacklo_epi16(v, zero)));
        _mm_storeu_ps(vals + e + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(v, zero)));
    }
    return e;
}

}  // namespace
}  // namespace pyimgcls::core
