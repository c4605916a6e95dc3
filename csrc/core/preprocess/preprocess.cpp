#include "core/preprocess/preprocess.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <cstring>
#include <type_traits>

#include "core/common/half.h"
#include "core/common/parallel.h"

#if (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)) && !defined(PYIMGCLS_NO_SIMD)
#include <emmintrin.h>
#define PYIMGCLS_SSE2 1
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <smmintrin.h>
#define PYIMGCLS_SSE41_DISPATCH 1
#else
#define PYIMGCLS_SSE41_DISPATCH 0
#endif
#else
#define PYIMGCLS_SSE41_DISPATCH 0
#define PYIMGCLS_SSE2 0
#endif

namespace pyimgcls::core {
namespace {

// Horizontal pass of one source row into `out`: content_w pixels of LANES floats each. Colour
// sources use LANES == 4 ("RGBX": the three colour channels then a zero / ignored lane) so that a
// pixel is one SSE register; gray sources use LANES == 1.
template <typename Src, int TAPS>
void hpass_gray(const Src* row, int pixel_stride, const AxisTable& xt, float* out) {
    const int n = xt.count;
    const int taps = TAPS > 0 ? TAPS : xt.taps;
    for (int ox = 0; ox < n; ++ox) {
        const Src* p = row + static_cast<std::ptrdiff_t>(xt.start[ox]) * pixel_stride;
        const float* w = xt.w.data() + static_cast<std::ptrdiff_t>(ox) * taps;
        float a = 0.f;
        for (int j = 0; j < taps; ++j) a += w[j] * static_cast<float>(p[j * pixel_stride]);
        out[ox] = a;
    }
}

template <typename Src>
inline void hpass_color_pixel_scalar(const Src* p, int pixel_stride, const float* w, int taps, float* o) {
    float a0 = 0.f, a1 = 0.f, a2 = 0.f;
    for (int j = 0; j < taps; ++j) {
        const Src* q = p + j * pixel_stride;
        a0 += w[j] * static_cast<float>(q[0]);
        a1 += w[j] * static_cast<float>(q[1]);
        a2 += w[j] * static_cast<float>(q[2]);
    }
    o[0] = a0;
    o[1] = a1;
    o[2] = a2;
    o[3] = 0.f;
}

#if PYIMGCLS_SSE2
inline __m128 load_pixel4(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    const __m128i z = _mm_setzero_si128();
    __m128i x = _mm_unpacklo_epi8(_mm_cvtsi32_si128(v), z);
    return _mm_cvtepi32_ps(_mm_unpacklo_epi16(x, z));
}
inline __m128 load_pixel4(const std::uint16_t* p) {
    __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm_cvtepi32_ps(_mm_unpacklo_epi16(x, _mm_setzero_si128()));
}
#endif

// `safe` is the number of leading outputs whose 4-element loads stay inside the image; `w4`
// holds each weight broadcast to 4 lanes (one aligned load per tap instead of a shuffle). The
// body is compiled twice: with SSE2 loads, and with SSE4.1's one-instruction widening loads
// (chosen at run time).
#define PYIMGCLS_HPASS_COLOR_BODY(LOAD)                                                                        \
    const int n = xt.count;                                                                                  \
    const int taps = TAPS > 0 ? TAPS : xt.taps;                                                              \
    const int* start = xt.start.data();                                                                      \
    int ox = 0;                                                                                              \
    for (; ox < safe; ++ox) {                                                                                \
        const Src* p = row + static_cast<std::ptrdiff_t>(start[ox]) * pixel_stride;                          \
        const float* w = w4 + static_cast<std::ptrdiff_t>(ox) * taps * 4;                                   \
        __m128 acc = _mm_mul_ps(LOAD(p), _mm_loadu_ps(w));                                                   \
        for (int j = 1; j < taps; ++j)                                                                       \
            acc = _mm_add_ps(acc, _mm_mul_ps(LOAD(p + j * pixel_stride), _mm_loadu_ps(w + 4 * j)));          \
        _mm_storeu_ps(out + 4 * ox, acc);                                                                    \
    }                                                                                                        \
    for (; ox < n; ++ox)                                                                                     \
        hpass_color_pixel_scalar(row + static_cast<std::ptrdiff_t>(start[ox]) * pixel_stride, pixel_stride,  \
                                 xt.w.data() + static_cast<std::ptrdiff_t>(ox) * taps, taps, out + 4 * ox);

template <typename Src, int TAPS>
void hpass_color(const Src* row, int pixel_stride, const AxisTable& xt, const float* w4, int safe, float* out) {
#if PYIMGCLS_SSE2
    PYIMGCLS_HPASS_COLOR_BODY(load_pixel4)
#else
    (void)w4;
    (void)safe;
    const int taps = TAPS > 0 ? TAPS : xt.taps;
    for (int ox = 0; ox < xt.count; ++ox)
        hpass_color_pixel_scalar(row + static_cast<std::ptrdiff_t>(xt.start[ox]) * pixel_stride, pixel_stride,
                                 xt.w.data() + static_cast<std::ptrdiff_t>(ox) * taps, taps, out + 4 * ox);
#endif
}

#if PYIMGCLS_SSE41_DISPATCH
__attribute__((target("sse4.1"))) inline __m128 load_pixel4_sse41(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(v)));
}
__attribute__((target("sse4.1"))) inline __m128 load_pixel4_sse41(const std::uint16_t* p) {
    return _mm_cvtepi32_ps(_mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

template <typename Src, int TAPS>
__attribute__((target("sse4.1"))) void hpass_color_sse41(const Src* row, int pixel_stride, const AxisTable& xt,
                                                          const float* w4, int safe, float* out) {
    PYIMGCLS_HPASS_COLOR_BODY(load_pixel4_sse41)
}

bool cpu_has_sse41() {
    static const bool has = __builtin_cpu_supports("sse4.1");
    return has;
}

// uint8 sources with 3+ taps (antialiased or area shrinking), SSE4.1: taps are taken two at a
// time, the two adjacent source pixels reordered by pshufb into 16-bit (pixel, pixel) pairs per
// channel and multiplied-added with pmaddwd by their Q14 weights (each output's weights sum to
// 16384 exactly). `wq` holds per output ceil(taps / 2) packed (w_j, w_j+1) words; `safe` counts
// the outputs whose 8-byte loads stay inside the image. The horizontal value differs from float
// weights by at most taps * 255 * 2^-15 (0.08 of a step for 10 taps; Pillow itself rounds to
// whole steps between its two passes).
__attribute__((target("sse4.1"))) void hpass_color_u8q14(const std::uint8_t* row, int ps, const AxisTable& xt,
                                                          const std::int32_t* wq, int safe, float* out) {
    const __m128i mask = ps == 3 ? _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1)
                                 : _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, -1, -1, -1, -1);
    const int pairs = (xt.taps + 1) / 2;
    const __m128 unit = _mm_set1_ps(1.0f / 16384.0f);
    const int* start = xt.start.data();
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
    for (; ox < xt.count; ++ox)
        hpass_color_pixel_scalar(row + static_cast<std::ptrdiff_t>(start[ox]) * ps, ps,
                                 xt.w.data() + static_cast<std::ptrdiff_t>(ox) * xt.taps, xt.taps, out + 4 * ox);
}

// Q14 weight words for hpass_color_u8q14 / the 2x2 kernel: per output, pairs of taps packed as
// (w1 << 16) | w0, rounded so that each output's weights sum to exactly 16384.
std::vector<std::int32_t> q14_pairs(const AxisTable& xt) {
    const int taps = xt.taps, pairs = (taps + 1) / 2;
    std::vector<std::int32_t> out(static_cast<std::size_t>(xt.count) * pairs, 0);
    std::vector<int> q(static_cast<std::size_t>(2 * pairs));
    for (int o = 0; o < xt.count; ++o) {
        const float* w = xt.w.data() + static_cast<std::ptrdiff_t>(o) * taps;
        int sum = 0, big = 0;
        std::fill(q.begin(), q.end(), 0);
        for (int j = 0; j < taps; ++j) {
            q[j] = static_cast<int>(std::lround(w[j] * 16384.0f));
            sum += q[j];
            if (q[j] > q[big]) big = j;
        }
        q[big] += 16384 - sum;
        for (int j = 0; j < pairs; ++j)
            out[static_cast<std::size_t>(o) * pairs + j] = static_cast<std::int32_t>(
                (static_cast<std::uint32_t>(q[2 * j + 1] & 0xffff) << 16) | static_cast<std::uint32_t>(q[2 * j] & 0xffff));
    }
    return out;
}
#endif

template <typename Src>
void hpass(const Src* row, int pixel_stride, int lanes, const AxisTable& xt, const float* w4, int safe, float* out) {
    if (lanes == 4) {
#if PYIMGCLS_SSE41_DISPATCH
        if (cpu_has_sse41()) {
            switch (xt.taps) {
                case 1: hpass_color_sse41<Src, 1>(row, pixel_stride, xt, w4, safe, out); break;
                case 2: hpass_color_sse41<Src, 2>(row, pixel_stride, xt, w4, safe, out); break;
                default: hpass_color_sse41<Src, 0>(row, pixel_stride, xt, w4, safe, out); break;
            }
            return;
        }
#endif
        switch (xt.taps) {
            case 1: hpass_color<Src, 1>(row, pixel_stride, xt, w4, safe, out); break;
            case 2: hpass_color<Src, 2>(row, pixel_stride, xt, w4, safe, out); break;
            default: hpass_color<Src, 0>(row, pixel_stride, xt, w4, safe, out); break;
        }
    } else {
        switch (xt.taps) {
            case 1: hpass_gray<Src, 1>(row, pixel_stride, xt, out); break;
            case 2: hpass_gray<Src, 2>(row, pixel_stride, xt, out); break;
            default: hpass_gray<Src, 0>(row, pixel_stride, xt, out); break;
        }
    }
}

inline std::uint8_t saturate_u8(float v) {
    // round half away from zero after saturation (v >= 0 here); NaN -> 0
    v = v > 0.f ? (v < 255.f ? v : 255.f) : 0.f;
    return static_cast<std::uint8_t>(static_cast<int>(v + 0.5f));
}

template <typename Out>
inline Out convert_out(float v) {
    if constexpr (std::is_same_v<Out, float>) return v;
    else if constexpr (std::is_same_v<Out, std::uint16_t>) return float_to_half(v);
    else return saturate_u8(v);
}

// Stores one output row. `vals` holds content_w pixels of `lanes` floats (source units), or is
// null for a row of padding.
template <typename Out>
void store_row(const float* vals, int lanes, const TensorView& dst, int index, int y,
               const ResizePlan& plan, const PreprocessParams& p) {
    Out* base = static_cast<Out*>(dst.data);
    const int C = dst.channels, H = dst.height, W = dst.width;
    const int x0 = plan.out_x, n = vals ? plan.content_w : 0;
    Out pad[3];
    for (int k = 0; k < C; ++k) pad[k] = convert_out<Out>(p.pad[k]);
    const float g0 = p.gray_weights[0], g1 = p.gray_weights[1], g2 = p.gray_weights[2];
    if (dst.layout == Layout::nchw) {
        Out* rows[3];
        for (int k = 0; k < C; ++k) {
            rows[k] = base + ((static_cast<std::ptrdiff_t>(index) * C + k) * H + y) * W;
            std::fill(rows[k], rows[k] + x0, pad[k]);
            std::fill(rows[k] + x0 + n, rows[k] + W, pad[k]);
        }
        if (!vals) return;
        if (C == 3 && lanes == 4) {
            Out* o0 = rows[0] + x0;
            Out* o1 = rows[1] + x0;
            Out* o2 = rows[2] + x0;
            const int m0 = p.channel_map[0], m1 = p.channel_map[1], m2 = p.channel_map[2];
            const float s0 = p.scale[0], s1 = p.scale[1], s2 = p.scale[2];
            const float b0 = p.bias[0], b1 = p.bias[1], b2 = p.bias[2];
            int x = 0;
#if PYIMGCLS_SSE2
            if constexpr (std::is_same_v<Out, float>) {
                const __m128 vs0 = _mm_set1_ps(s0), vs1 = _mm_set1_ps(s1), vs2 = _mm_set1_ps(s2);
                const __m128 vb0 = _mm_set1_ps(b0), vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2);
                for (; x + 4 <= n; x += 4) {
                    __m128 r0 = _mm_loadu_ps(vals + 4 * x), r1 = _mm_loadu_ps(vals + 4 * x + 4);
                    __m128 r2 = _mm_loadu_ps(vals + 4 * x + 8), r3 = _mm_loadu_ps(vals + 4 * x + 12);
                    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);  // r_c = channel c of 4 pixels
                    const __m128 ch[3] = {r0, r1, r2};
                    _mm_storeu_ps(o0 + x, _mm_add_ps(_mm_mul_ps(ch[m0], vs0), vb0));
                    _mm_storeu_ps(o1 + x, _mm_add_ps(_mm_mul_ps(ch[m1], vs1), vb1));
                    _mm_storeu_ps(o2 + x, _mm_add_ps(_mm_mul_ps(ch[m2], vs2), vb2));
                }
            }
#endif
            for (; x < n; ++x) {
                const float* v = vals + 4 * x;
                o0[x] = convert_out<Out>(v[m0] * s0 + b0);
                o1[x] = convert_out<Out>(v[m1] * s1 + b1);
                o2[x] = convert_out<Out>(v[m2] * s2 + b2);
            }
        } else {
            for (int k = 0; k < C; ++k) {
                Out* o = rows[k] + x0;
                const float s = p.scale[k], b = p.bias[k];
                if (lanes == 1) {
                    for (int x = 0; x < n; ++x) o[x] = convert_out<Out>(vals[x] * s + b);
                } else {  // C == 1: colour to gray
                    for (int x = 0; x < n; ++x) {
                        const float* v = vals + 4 * x;
                        o[x] = convert_out<Out>((g0 * v[0] + g1 * v[1] + g2 * v[2]) * s + b);
                    }
                }
            }
        }
        return;
    }
    Out* row = base + ((static_cast<std::ptrdiff_t>(index) * H + y) * W) * C;
    for (int x = 0; x < W; ++x) {
        if (x == x0 && n > 0) x += n;
        if (x >= W) break;
        for (int k = 0; k < C; ++k) row[static_cast<std::ptrdiff_t>(x) * C + k] = pad[k];
    }
    if (!vals) return;
    Out* o = row + static_cast<std::ptrdiff_t>(x0) * C;
    if (C == 1) {
        const float s = p.scale[0], b = p.bias[0];
        if (lanes == 4) {
            for (int x = 0; x < n; ++x) {
                const float* v = vals + 4 * x;
                o[x] = convert_out<Out>((g0 * v[0] + g1 * v[1] + g2 * v[2]) * s + b);
            }
        } else {
            for (int x = 0; x < n; ++x) o[x] = convert_out<Out>(vals[x] * s + b);
        }
    } else {
        const int m0 = lanes == 1 ? 0 : p.channel_map[0];
        const int m1 = lanes == 1 ? 0 : p.channel_map[1];
        const int m2 = lanes == 1 ? 0 : p.channel_map[2];
        const float s0 = p.scale[0], s1 = p.scale[1], s2 = p.scale[2];
        const float b0 = p.bias[0], b1 = p.bias[1], b2 = p.bias[2];
        for (int x = 0; x < n; ++x) {
            const float* v = vals + lanes * x;
            o[3 * x] = convert_out<Out>(v[m0] * s0 + b0);
            o[3 * x + 1] = convert_out<Out>(v[m1] * s1 + b1);
            o[3 * x + 2] = convert_out<Out>(v[m2] * s2 + b2);
        }
    }
}

#if PYIMGCLS_SSE2
// One output row from two source rows with 2x2 taps (bilinear while shrinking): the four source
// pixels of each output are blended directly, without a per-row horizontal pass.
#define PYIMGCLS_FUSED_2X2_BODY(LOAD)                                                                         \
    const __m128 wy0 = _mm_set1_ps(wy[0]), wy1 = _mm_set1_ps(wy[1]);                                       \
    const int* xs = xt.start.data();                                                                         \
    const float* wx = xt.w.data();                                                                           \
    int x = 0;                                                                                               \
    for (; x < safe; ++x) {                                                                                  \
        const std::ptrdiff_t o = static_cast<std::ptrdiff_t>(xs[x]) * ps;                                    \
        const __m128 wx0 = _mm_loadu_ps(w4 + 8 * x), wx1 = _mm_loadu_ps(w4 + 8 * x + 4);                    \
        const __m128 a = _mm_add_ps(_mm_mul_ps(LOAD(r0 + o), wx0), _mm_mul_ps(LOAD(r0 + o + ps), wx1));      \
        const __m128 b = _mm_add_ps(_mm_mul_ps(LOAD(r1 + o), wx0), _mm_mul_ps(LOAD(r1 + o + ps), wx1));      \
        _mm_storeu_ps(acc + 4 * x, _mm_add_ps(_mm_mul_ps(a, wy0), _mm_mul_ps(b, wy1)));                      \
    }                                                                                                        \
    for (; x < n; ++x) {                                                                                     \
        float ra[4], rb[4];                                                                                  \
        hpass_color_pixel_scalar(r0 + static_cast<std::ptrdiff_t>(xs[x]) * ps, ps, wx + 2 * x, 2, ra);       \
        hpass_color_pixel_scalar(r1 + static_cast<std::ptrdiff_t>(xs[x]) * ps, ps, wx + 2 * x, 2, rb);       \
        for (int c = 0; c < 4; ++c) acc[4 * x + c] = ra[c] * wy[0] + rb[c] * wy[1];                         \
    }

template <typename Src>
void fused_row_2x2_sse2(const Src* r0, const Src* r1, int ps, const AxisTable& xt, const float* w4, const float* wy,
                        int safe, int n, float* acc) {
    PYIMGCLS_FUSED_2X2_BODY(load_pixel4)
}

#if PYIMGCLS_SSE41_DISPATCH
template <typename Src>
__attribute__((target("sse4.1"))) void fused_row_2x2_sse41(const Src* r0, const Src* r1, int ps, const AxisTable& xt,
                                                            const float* w4, const float* wy, int safe, int n,
                                                            float* acc) {
    PYIMGCLS_FUSED_2X2_BODY(load_pixel4_sse41)
}
#endif
#undef PYIMGCLS_FUSED_2X2_BODY
#undef PYIMGCLS_HPASS_COLOR_BODY

#if PYIMGCLS_SSE41_DISPATCH
// uint8 sources, SSE4.1: the two horizontal taps of a row are one pshufb + pmaddwd on 16-bit
// lanes with the weights in Q14 fixed point (w0 + w1 == 16384 exactly, so flat areas stay exact;
// the horizontal value differs from float weights by at most 255 * 2^-15 = 0.008 of a step).
// `wq` holds per output the pair (w0, w1) packed in one 32-bit word.
__attribute__((target("sse4.1"))) void fused_row_2x2_u8q14(const std::uint8_t* r0, const std::uint8_t* r1, int ps,
                                                            const AxisTable& xt, const std::int32_t* wq,
                                                            const float* wy, int safe, int n, float* acc) {
    const __m128i mask = ps == 3 ? _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1)
                                 : _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, -1, -1, -1, -1);
    const __m128 wy0 = _mm_set1_ps(wy[0] / 16384.0f), wy1 = _mm_set1_ps(wy[1] / 16384.0f);
    const int* xs = xt.start.data();
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
    const float* wx = xt.w.data();
    for (; x < n; ++x) {
        float ra[4], rb[4];
        hpass_color_pixel_scalar(r0 + static_cast<std::ptrdiff_t>(xs[x]) * ps, ps, wx + 2 * x, 2, ra);
        hpass_color_pixel_scalar(r1 + static_cast<std::ptrdiff_t>(xs[x]) * ps, ps, wx + 2 * x, 2, rb);
        for (int c = 0; c < 4; ++c) acc[4 * x + c] = ra[c] * wy[0] + rb[c] * wy[1];
    }
}

// The same, storing straight into three float32 NCHW planes (normalised, channels mapped), four
// outputs at a time; returns how many outputs it wrote (the caller finishes the rest).
__attribute__((target("sse4.1"))) int fused_row_2x2_u8q14_planes(const std::uint8_t* r0, const std::uint8_t* r1,
                                                                  int ps, const AxisTable& xt, const std::int32_t* wq,
                                                                  const float* wy, int safe, const PreprocessParams& p,
                                                                  float* o0, float* o1, float* o2) {
    const __m128i mask = ps == 3 ? _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1)
                                 : _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, -1, -1, -1, -1);
    const __m128 wy0 = _mm_set1_ps(wy[0] / 16384.0f), wy1 = _mm_set1_ps(wy[1] / 16384.0f);
    const __m128 s0 = _mm_set1_ps(p.scale[0]), s1 = _mm_set1_ps(p.scale[1]), s2 = _mm_set1_ps(p.scale[2]);
    const __m128 b0 = _mm_set1_ps(p.bias[0]), b1 = _mm_set1_ps(p.bias[1]), b2 = _mm_set1_ps(p.bias[2]);
    const int m0 = p.channel_map[0], m1 = p.channel_map[1], m2 = p.channel_map[2];
    const int* xs = xt.start.data();
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
#endif
#endif

template <typename Src, typename Out>
void rows_impl(const ImageView& src, const TensorView& dst, int index, const ResizePlan& plan,
               const ImageTables& t, const PreprocessParams& p, int row_begin, int row_end) {
    const int lanes = src.channels >= 3 ? 4 : 1;
    const int n = plan.content_w * lanes;
    const int ytaps = t.y.taps;
    // Outputs whose 4-element pixel loads stay inside the image: a 3-channel pixel load reads one
    // element past the pixel, which is the next row's first element (or the padding of a strided
    // view) everywhere but on the last source row. Window starts are non-decreasing.
    int safe = t.x.count;
    const bool touches_last_row = t.y.count > 0 && t.y.start[t.y.count - 1] + t.y.taps >= src.height;
    if (src.channels == 3 && touches_last_row)
        while (safe > 0 && t.x.start[safe - 1] + t.x.taps >= src.width) --safe;
    // 2x2 taps while shrinking at least 2x vertically: no row is shared, fuse both passes
    const bool fused_2x2 = lanes == 4 && t.x.taps == 2 && ytaps == 2 && src.height >= 2 * plan.resized_h;
    std::vector<float> cache(static_cast<std::size_t>(ytaps + 1) * n);
    // Q14 weight pairs for the uint8 2x2 kernel; its 8-byte loads need the same guard as the
    // 4-byte ones (the second pixel of the pair is never the row's last one inside `safe`).
    std::vector<std::int32_t> wq;
    if (fused_2x2 && std::is_same_v<Src, std::uint8_t>) {
        wq.resize(static_cast<std::size_t>(t.x.count));
        for (int x = 0; x < t.x.count; ++x) {
            const int w0 = static_cast<int>(std::lround(t.x.w[2 * x] * 16384.0f));
            const int w1 = 16384 - w0;
            wq[x] = static_cast<std::int32_t>((static_cast<std::uint32_t>(w1) << 16) | static_cast<std::uint32_t>(w0 & 0xffff));
        }
    }
    // uint8 sources with 3+ horizontal taps: the Q14 pair kernel (its 8-byte loads read up to one
    // pixel past the window plus two bytes: keep them off the end of the last source row)
    bool q14_rows = false;
    std::vector<std::int32_t> wq_rows;
    int safe_q = 0;
    (void)q14_rows;
    (void)safe_q;
#if PYIMGCLS_SSE41_DISPATCH
    if constexpr (std::is_same_v<Src, std::uint8_t>) {
        if (lanes == 4 && t.x.taps >= 3 && !fused_2x2 && cpu_has_sse41() && t.x.taps <= 64) {
            q14_rows = true;
            wq_rows = q14_pairs(t.x);
            const int span = 2 * ((t.x.taps + 1) / 2) + 1;  // pixels touched, rounded up, plus the overhang
            safe_q = t.x.count;
            if (touches_last_row)
                while (safe_q > 0 && t.x.start[safe_q - 1] + span > src.width) --safe_q;
        }
    }
#endif
    std::vector<float> w4;
#if PYIMGCLS_SSE41_DISPATCH
    const bool u8_fast = std::is_same_v<Src, std::uint8_t> && cpu_has_sse41();
#else
    const bool u8_fast = false;
#endif
    if (lanes == 4 && !(u8_fast && (fused_2x2 || q14_rows))) {  // weights broadcast to 4 lanes
        w4.resize(t.x.w.size() * 4);
        for (std::size_t i = 0; i < t.x.w.size(); ++i) std::fill(w4.begin() + 4 * i, w4.begin() + 4 * i + 4, t.x.w[i]);
    }
    std::vector<int> key(ytaps, -1);
    std::vector<const float*> rp(ytaps);
    float* acc = cache.data() + static_cast<std::size_t>(ytaps) * n;
    const Src* pixels = static_cast<const Src*>(src.data);
    const int ps = src.channels;
    for (int y = row_begin; y < row_end; ++y) {
        const int oy = y - plan.out_y;
        if (oy < 0 || oy >= plan.content_h) {
            store_row<Out>(nullptr, lanes, dst, index, y, plan, p);
            continue;
        }
        const int s0 = t.y.start[oy];
        const float* wy = t.y.w.data() + static_cast<std::ptrdiff_t>(oy) * ytaps;
#if PYIMGCLS_SSE2
        if (fused_2x2) {
            // Shrinking 2x2 taps: rows are not shared between output rows, so blend the four
            // source pixels of each output directly (no per-row horizontal pass).
            const Src* r0 = pixels + static_cast<std::ptrdiff_t>(s0) * src.row_stride;
            const Src* r1 = r0 + src.row_stride;
#if PYIMGCLS_SSE41_DISPATCH
            if constexpr (std::is_same_v<Src, std::uint8_t>) {
                if (cpu_has_sse41()) {
                    if constexpr (std::is_same_v<Out, float>) {
                        if (dst.layout == Layout::nchw && dst.channels == 3 && plan.out_x == 0 &&
                            plan.content_w == dst.width) {
                            // straight into the planes; the few outputs left go through acc
                            const int C = dst.channels, H = dst.height, W = dst.width;
                            float* base = static_cast<float*>(dst.data);
                            float* o[3];
                            for (int k = 0; k < 3; ++k)
                                o[k] = base + ((static_cast<std::ptrdiff_t>(index) * C + k) * H + y) * W;
                            const int done = fused_row_2x2_u8q14_planes(r0, r1, ps, t.x, wq.data(), wy, safe, p, o[0],
                                                                        o[1], o[2]);
                            if (done < plan.content_w) {
                                fused_row_2x2_u8q14(r0, r1, ps, t.x, wq.data(), wy, safe, plan.content_w, acc);
                                for (int x = done; x < plan.content_w; ++x)
                                    for (int k = 0; k < 3; ++k)
                                        o[k][x] = acc[4 * x + p.channel_map[k]] * p.scale[k] + p.bias[k];
                            }
                            continue;
                        }
                    }
                    fused_row_2x2_u8q14(r0, r1, ps, t.x, wq.data(), wy, safe, plan.content_w, acc);
                    store_row<Out>(acc, lanes, dst, index, y, plan, p);
                    continue;
                }
            }
            if (cpu_has_sse41()) fused_row_2x2_sse41(r0, r1, ps, t.x, w4.data(), wy, safe, plan.content_w, acc);
            else
#endif
                fused_row_2x2_sse2(r0, r1, ps, t.x, w4.data(), wy, safe, plan.content_w, acc);
            store_row<Out>(acc, lanes, dst, index, y, plan, p);
            continue;
        }
#endif
        for (int j = 0; j < ytaps; ++j) {
            const int sy = s0 + j;
            const int slot = sy % ytaps;
            float* buf = cache.data() + static_cast<std::size_t>(slot) * n;
            if (key[slot] != sy) {
#if PYIMGCLS_SSE41_DISPATCH
                if constexpr (std::is_same_v<Src, std::uint8_t>) {
                    if (q14_rows) {
                        hpass_color_u8q14(pixels + static_cast<std::ptrdiff_t>(sy) * src.row_stride, ps, t.x,
                                          wq_rows.data(), safe_q, buf);
                        key[slot] = sy;
                        rp[j] = buf;
                        continue;
                    }
                }
#endif
                hpass<Src>(pixels + static_cast<std::ptrdiff_t>(sy) * src.row_stride, ps, lanes, t.x, w4.data(), safe,
                           buf);
                key[slot] = sy;
            }
            rp[j] = buf;
        }
        const float* vals;
        if (ytaps == 1) {
            vals = rp[0];
        } else {
            const float w0 = wy[0], w1 = wy[1];
            const float* r0 = rp[0];
            const float* r1 = rp[1];
            for (int i = 0; i < n; ++i) acc[i] = w0 * r0[i] + w1 * r1[i];
            for (int j = 2; j < ytaps; ++j) {
                const float wj = wy[j];
                const float* r = rp[j];
                for (int i = 0; i < n; ++i) acc[i] += wj * r[i];
            }
            vals = acc;
        }
        store_row<Out>(vals, lanes, dst, index, y, plan, p);
    }
}

template <typename Src>
void dispatch_out(const ImageView& src, const TensorView& dst, int index, const ResizePlan& plan,
                  const ImageTables& t, const PreprocessParams& p, int b, int e) {
    switch (dst.dtype) {
        case OutType::f32: rows_impl<Src, float>(src, dst, index, plan, t, p, b, e); break;
        case OutType::f16: rows_impl<Src, std::uint16_t>(src, dst, index, plan, t, p, b, e); break;
        case OutType::u8: rows_impl<Src, std::uint8_t>(src, dst, index, plan, t, p, b, e); break;
    }
}

void check_plan(const ImageView& src, const TensorView& dst, const ResizePlan& plan) {
    if (src.height <= 0 || src.width <= 0)
        throw std::invalid_argument("image must be non-empty, got " + std::to_string(src.height) +
                                    "x" + std::to_string(src.width));
    if (!(src.channels == 1 || src.channels == 3 || src.channels == 4))
        throw std::invalid_argument("image must have 1, 3 or 4 channels, got " +
                                    std::to_string(src.channels));
    if (plan.content_h < 0 || plan.content_w < 0 || plan.out_y < 0 || plan.out_x < 0 ||
        plan.out_y + plan.content_h > dst.height || plan.out_x + plan.content_w > dst.width ||
        plan.crop_y < 0 || plan.crop_x < 0 || plan.crop_y + plan.content_h > plan.resized_h ||
        plan.crop_x + plan.content_w > plan.resized_w)
        throw std::invalid_argument("resize plan does not fit the output tensor");
}

}  // namespace

ImageTables make_tables(const ImageView& src, const ResizePlan& plan, Interpolation mode) {
    const bool shrinks = src.width >= plan.resized_w && src.height >= plan.resized_h;
    ImageTables t;
    if (plan.content_h == 0 || plan.content_w == 0) return t;
    t.x = make_axis_table(mode, src.width, plan.resized_w, plan.crop_x, plan.content_w, shrinks);
    t.y = make_axis_table(mode, src.height, plan.resized_h, plan.crop_y, plan.content_h, shrinks);
    return t;
}

void resize_normalize_rows(const ImageView& src, const TensorView& dst, int index,
                           const ResizePlan& plan, const ImageTables& tables,
                           const PreprocessParams& p, int row_begin, int row_end) {
    check_plan(src, dst, plan);
    ResizePlan pl = plan;
    if (tables.x.count == 0 || tables.y.count == 0) pl.content_h = 0;  // all padding
    if (src.type == PixelType::u8)
        dispatch_out<std::uint8_t>(src, dst, index, pl, tables, p, row_begin, row_end);
    else
        dispatch_out<std::uint16_t>(src, dst, index, pl, tables, p, row_begin, row_end);
}

void preprocess_batch(const std::vector<ImageView>& images, const std::vector<ResizePlan>& plans,
                      const TensorView& dst, const PreprocessParams& p, int threads) {
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(images.size());
    if (static_cast<std::ptrdiff_t>(plans.size()) != n || n > dst.batch)
        throw std::invalid_argument("preprocess_batch: images, plans and batch size disagree");
    for (std::ptrdiff_t i = 0; i < n; ++i) check_plan(images[i], dst, plans[i]);
    if (n == 1 || resolve_threads(threads) == 1) {
        for (std::ptrdiff_t i = 0; i < n; ++i) {
            const ImageTables t = make_tables(images[i], plans[i], p.interpolation);
            // Rows in chunks of at least 32 so that a small output stays on one thread.
            parallel_for(dst.height, threads, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                resize_normalize_rows(images[i], dst, static_cast<int>(i), plans[i], t, p,
                                      static_cast<int>(b), static_cast<int>(e));
            }, 32);
        }
        return;
    }
    parallel_for_dynamic(n, threads, [&](std::ptrdiff_t i) {
        const ImageTables t = make_tables(images[i], plans[i], p.interpolation);
        resize_normalize_rows(images[i], dst, static_cast<int>(i), plans[i], t, p, 0, dst.height);
    });
}

}  // namespace pyimgcls::core
