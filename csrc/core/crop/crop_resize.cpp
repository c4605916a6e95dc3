// crop_resize (see crop_resize.h for indices and conventions): per box, one tap table per axis
// (source index and weight for every output row / column, the part outside the image folded into
// one fill weight), then a separable pass: each source row the box needs is resampled horizontally
// once (a two-row cache serves neighbouring output rows), and output rows blend those rows.
// Work is split over (box, block of output rows) units, so one large crop still uses every thread.
// Two faster paths take the common boxes: bilinear boxes whose taps lie inside the image, with
// contiguous 1- or 3-channel pixels (BilinearPath: vertical blend first, SSE2 for 3 channels; AVX2 rows
// from crop_resize_avx2.cpp where the CPU runs them, bit-identical), and area
// boxes with integer corners inside the image (the preprocessing engine's resize of the sub-image).
// Cost: O(out_h * out_w * C * taps) per box plus O(min(box, image) + out) for the tables.
#include "core/crop/crop_resize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSE2__) && !defined(PYIMGCLS_NO_SIMD)
#include <emmintrin.h>
#define PYIMGCLS_CROP_SSE2 1
#endif

#include "core/common/cpu.h"
#include "core/common/parallel.h"
#include "core/crop/crop_resize_avx2.h"
#include "core/preprocess/preprocess.h"

namespace pyimgcls::core {
namespace {

// Taps of one axis: output o reads in-image source indices idx[off[o] .. off[o + 1]) with weights w,
// plus fill_w[o] times the fill value.
struct Taps {
    std::vector<int> off, idx;
    std::vector<float> w, fill_w;
    void reset(int count) {
        off.assign(1, 0);
        off.reserve(count + 1);
        idx.clear();
        w.clear();
        fill_w.assign(count, 0.f);
    }
};

// Adds source sample `s` (absolute index, may be anywhere, even huge) of an image of length n.
inline void add_tap(Taps& t, int o, double s, double weight, int n) {
    if (weight == 0.0) return;
    if (s >= 0.0 && s < static_cast<double>(n)) {
        t.idx.push_back(static_cast<int>(s));
        t.w.push_back(static_cast<float>(weight));
    } else {
        t.fill_w[o] += static_cast<float>(weight);
    }
}

// Bilinear, half-pixel centres over [b0, b1), taps clamped to [floor(b0), ceil(b1) - 1].
void bilinear_taps(Taps& t, double b0, double b1, int count, int n) {
    t.reset(count);
    const double scale = (b1 - b0) / count;
    const double lo = std::floor(b0);
    const double hi = std::max(lo, std::ceil(b1) - 1.0);
    for (int o = 0; o < count; ++o) {
        const double pos = b0 + (o + 0.5) * scale - 0.5;
        const double f0 = std::floor(pos);
        const double frac = pos - f0;
        add_tap(t, o, std::min(std::max(f0, lo), hi), 1.0 - frac, n);
        add_tap(t, o, std::min(std::max(f0 + 1.0, lo), hi), frac, n);
        t.off.push_back(static_cast<int>(t.idx.size()));
    }
}

// cv2 INTER_AREA on a slice of length len = b1 - b0 (integer box), shrinking: computeResizeAreaTab
// (box coverage, cv2's scale pair and 1e-3 thresholds); the full pixels of a cell are visited only
// where they lie inside the image, the rest folds into the fill weight.
void area_shrink_taps(Taps& t, double b0, double len, int count, int n) {
    t.reset(count);
    const double inv = static_cast<double>(count) / len;
    const double scale = 1.0 / inv;
    for (int o = 0; o < count; ++o) {
        const double fs1 = o * scale, fs2 = fs1 + scale;
        const double cell = std::min(scale, len - fs1);
        double s2 = std::min(std::floor(fs2), len - 1.0);
        double s1 = std::min(std::ceil(fs1), s2);
        if (s1 - fs1 > 1e-3) add_tap(t, o, b0 + s1 - 1.0, (s1 - fs1) / cell, n);
        // full pixels s in [s1, s2): absolute b0 + s; inside the image for b0 + s in [0, n)
        const double a_lo = std::max(b0 + s1, 0.0), a_hi = std::min(b0 + s2, static_cast<double>(n));
        const double inside = std::max(0.0, a_hi - a_lo);
        const float wfull = static_cast<float>(1.0 / cell);
        for (double a = a_lo; a < a_hi; a += 1.0) {
            t.idx.push_back(static_cast<int>(a));
            t.w.push_back(wfull);
        }
        const double outside = (s2 - s1) - inside;
        if (outside > 0) t.fill_w[o] += static_cast<float>(outside / cell);
        if (fs2 - s2 > 1e-3) add_tap(t, o, b0 + s2, std::min(std::min(fs2 - s2, 1.0), cell) / cell, n);
        t.off.push_back(static_cast<int>(t.idx.size()));
    }
}

// cv2 INTER_AREA when an axis grows: its area-mode bilinear, sx = floor(o * scale),
// fx = frac((o + 1) - (sx + 1) / scale), taps clamped to the slice.
void area_grow_taps(Taps& t, double b0, double len, int count, int n) {
    t.reset(count);
    const double inv = static_cast<double>(count) / len;
    const double scale = 1.0 / inv;
    for (int o = 0; o < count; ++o) {
        const double sx = std::floor(o * scale);
        float fx = static_cast<float>((o + 1) - (sx + 1) * inv);
        fx = fx <= 0 ? 0.f : fx - std::floor(fx);
        const double i0 = std::min(std::max(sx, 0.0), len - 1.0), i1 = std::min(std::max(sx + 1.0, 0.0), len - 1.0);
        add_tap(t, o, b0 + i0, 1.0 - fx, n);
        add_tap(t, o, b0 + i1, fx, n);
        t.off.push_back(static_cast<int>(t.idx.size()));
    }
}

void build_taps(Taps& t, double b0, double b1, int count, int n, CropInterpolation mode, bool area_shrinks) {
    if (mode == CropInterpolation::bilinear) bilinear_taps(t, b0, b1, count, n);
    else if (area_shrinks) area_shrink_taps(t, b0, b1 - b0, count, n);
    else area_grow_taps(t, b0, b1 - b0, count, n);
}

constexpr int kRowBlock = 16;
constexpr int kRowSlots = 4;  // horizontally resampled rows kept (area shrink reads ~scale + 1 rows a row)

// Channel count as a template parameter for 1, 3 and 4 channels stored contiguously (the compiler keeps
// a pixel's sums in registers); NC == 0 is any count and any channel stride.
// Output element: float32 as computed, or uint8 rounded half away from zero and saturated (as the
// preprocessing engine stores uint8).
inline void store(float* o, float v) { *o = v; }
inline void store(std::uint8_t* o, float v) {
    v = std::min(std::max(v, 0.f), 255.f);
    *o = static_cast<std::uint8_t>(static_cast<int>(v + 0.5f));
}

template <int NC, typename T>
struct Worker {
    const StridedImage& src;
    const CropParams& p;
    T* out;
    const int C;
    Taps tx, ty;
    std::vector<float> rows[kRowSlots];  // out_w * C each
    int row_of[kRowSlots];
    long long used[kRowSlots] = {};  // last use, for least-recently-used eviction
    long long clock = 0;
    std::vector<float> acc;
    std::vector<std::ptrdiff_t> xoff;  // byte offset of each x tap
    float fill[64], scale[64], bias[64];

    Worker(const StridedImage& s, const CropParams& params, T* o)
        : src(s), p(params), out(o), C(NC ? NC : s.channels) {
        for (int c = 0; c < C; ++c) fill[c] = p.fill[c], scale[c] = p.scale[c], bias[c] = p.bias[c];
    }

    const float* hrow(int r) {
        // LRU: the rows of one output row's window (at most kRowSlots) never evict each other
        ++clock;
        int slot = 0;
        for (int k = 0; k < kRowSlots; ++k) {
            if (row_of[k] == r) {
                used[k] = clock;
                return rows[k].data();
            }
            if (used[k] < used[slot]) slot = k;
        }
        row_of[slot] = r;
        used[slot] = clock;
        const int W = p.out_w;
        std::vector<float>& hv = rows[slot];
        hv.resize(static_cast<std::size_t>(W) * C);
        float* h = hv.data();
        const std::uint8_t* base = src.data + r * src.sy;
        const int* off = tx.off.data();
        const float* tw = tx.w.data();
        const float* fw = tx.fill_w.data();
        const std::ptrdiff_t* xo = xoff.data();
        const std::ptrdiff_t sc = src.sc;
        for (int j = 0; j < W; ++j) {
            float a[NC ? NC : 64];
            const int nc = NC ? NC : C;  // (a constant where NC is: every a[c] read below is set here)
            for (int c = 0; c < nc; ++c) a[c] = fw[j] * fill[c];
            for (int q = off[j]; q < off[j + 1]; ++q) {
                const std::uint8_t* px = base + xo[q];
                const float w = tw[q];
                if (NC) {
                    for (int c = 0; c < NC; ++c) a[c] += w * static_cast<float>(px[c]);
                } else {
                    for (int c = 0; c < C; ++c) a[c] += w * static_cast<float>(px[c * sc]);
                }
            }
            float* hj = h + static_cast<std::size_t>(j) * C;
            for (int c = 0; c < nc; ++c) hj[c] = a[c];
        }
        return h;
    }

    void run(std::ptrdiff_t k, const double* box, int row_begin, int row_end) {
        const double x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];
        const bool shrinks = (x2 - x1) >= p.out_w && (y2 - y1) >= p.out_h;  // cv2: both axes
        build_taps(tx, x1, x2, p.out_w, src.width, p.mode, shrinks);
        build_taps(ty, y1, y2, p.out_h, src.height, p.mode, shrinks);
        xoff.resize(tx.idx.size());
        for (std::size_t q = 0; q < tx.idx.size(); ++q) xoff[q] = tx.idx[q] * src.sx;
        for (int s = 0; s < kRowSlots; ++s) row_of[s] = -1, used[s] = 0;
        const int H = p.out_h, W = p.out_w;
        const std::size_t n = static_cast<std::size_t>(W) * C;
        acc.resize(n);
        float* a = acc.data();
        T* box_out = out + k * static_cast<std::ptrdiff_t>(C) * H * W;
        const float* hs[kRowSlots];
        for (int i = row_begin; i < row_end; ++i) {
            const float fw = ty.fill_w[i];
            const int q0 = ty.off[i], nq = ty.off[i + 1] - q0;
            if (nq <= kRowSlots)
                for (int q = 0; q < nq; ++q) hs[q] = hrow(ty.idx[q0 + q]);
            if (nq <= 2) {  // bilinear (and small area windows): one pass
                const float w0 = nq > 0 ? ty.w[q0] : 0.f, w1 = nq > 1 ? ty.w[q0 + 1] : 0.f;
                const float* h0 = nq > 0 ? hs[0] : a;
                const float* h1 = nq > 1 ? hs[1] : a;
                if (nq == 0) std::fill(a, a + n, 0.f);
                for (std::size_t e = 0; e < n; e += C)
                    for (int c = 0; c < C; ++c) a[e + c] = w0 * h0[e + c] + w1 * h1[e + c] + fw * fill[c];
            } else {
                for (std::size_t e = 0; e < n; e += C)
                    for (int c = 0; c < C; ++c) a[e + c] = fw * fill[c];
                for (int q = 0; q < nq; ++q) {
                    // a window of more than kRowSlots rows (a strong shrink) is fetched row by row
                    const float* h = nq <= kRowSlots ? hs[q] : hrow(ty.idx[q0 + q]);
                    const float w = ty.w[q0 + q];
                    for (std::size_t e = 0; e < n; ++e) a[e] += w * h[e];
                }
            }
            switch (p.layout) {
                case CropLayout::nchw:
                    for (int c = 0; c < C; ++c) {
                        T* o = box_out + (static_cast<std::ptrdiff_t>(c) * H + i) * W;
                        const float s = scale[c], b = bias[c];
                        for (int j = 0; j < W; ++j) store(o + j, a[static_cast<std::size_t>(j) * C + c] * s + b);
                    }
                    break;
                case CropLayout::nhwc: {
                    T* o = box_out + static_cast<std::ptrdiff_t>(i) * W * C;
                    for (std::size_t e = 0; e < n; e += C)
                        for (int c = 0; c < C; ++c) store(o + e + c, a[e + c] * scale[c] + bias[c]);
                    break;
                }
                case CropLayout::nwhc:
                    for (int j = 0; j < W; ++j) {
                        T* o = box_out + (static_cast<std::ptrdiff_t>(j) * H + i) * C;
                        const float* aj = a + static_cast<std::size_t>(j) * C;
                        for (int c = 0; c < C; ++c) store(o + c, aj[c] * scale[c] + bias[c]);
                    }
                    break;
            }
        }
    }
};

// The fast path: an integer box inside the image, pixels contiguous, 1 or 3 channels, NCHW / NHWC.
// Such a crop is exactly a resize of the sub-image view, which the preprocessing engine does with its
// SIMD row kernels (cv2's INTER_LINEAR / INTER_AREA conventions, the same as the tables above).
struct FastPath {
    bool enabled = false;
    PreprocessParams pp;
    TensorView dst;

    FastPath(const StridedImage& src, const CropParams& p, void* out, std::ptrdiff_t count) {
        const int C = src.channels;
        enabled = (C == 1 || C == 3) && (src.sc == 1 || C == 1) && src.sx == C &&
                  src.sy >= static_cast<std::ptrdiff_t>(src.width) * C && p.layout != CropLayout::nwhc &&
                  count <= 0x7fffffff;
        if (!enabled) return;
        pp.interpolation = p.mode == CropInterpolation::area           ? Interpolation::area
                           : p.mode == CropInterpolation::bilinear_cv2 ? Interpolation::bilinear_cv2
                                                                        : Interpolation::bilinear;
        pp.out_channels = C;
        for (int c = 0; c < 3; ++c) {
            pp.channel_map[c] = C == 1 ? 0 : c;
            pp.scale[c] = p.scale[C == 1 ? 0 : c];
            pp.bias[c] = p.bias[C == 1 ? 0 : c];
        }
        dst.data = out;
        dst.batch = static_cast<int>(count);
        dst.channels = C;
        dst.height = p.out_h;
        dst.width = p.out_w;
        dst.layout = p.layout == CropLayout::nchw ? Layout::nchw : Layout::nhwc;
        dst.dtype = p.out_u8 ? OutType::u8 : OutType::f32;
    }

    // The view and plan of box b when it qualifies.
    bool take(const StridedImage& src, const double* b, ImageView& view, ResizePlan& plan) const {
        if (!enabled) return false;
        for (int i = 0; i < 4; ++i)
            if (b[i] != std::floor(b[i])) return false;
        if (!(b[0] >= 0 && b[1] >= 0 && b[2] <= src.width && b[3] <= src.height)) return false;
        const int x1 = static_cast<int>(b[0]), y1 = static_cast<int>(b[1]);
        view.data = src.data + y1 * src.sy + static_cast<std::ptrdiff_t>(x1) * src.sx;
        view.width = static_cast<int>(b[2]) - x1;
        view.height = static_cast<int>(b[3]) - y1;
        view.channels = src.channels;
        view.row_stride = src.sy;
        view.type = PixelType::u8;
        plan.resized_h = plan.content_h = dst.height;
        plan.resized_w = plan.content_w = dst.width;
        plan.crop_y = plan.crop_x = plan.out_y = plan.out_x = 0;
        return true;
    }
};

// The bilinear path: a box whose taps lie inside the image ([floor(x1), ceil(x2) - 1] within the
// columns, likewise rows; integer or not), pixels contiguous (sx == C, sc == 1), 1 or 3 channels, any
// layout and output type. Per box: the two taps and weights of every output column and row (the same
// doubles and float casts as bilinear_taps). Per output row, vertical first: the two source rows are
// blended over the box's column span in one contiguous loop (uint8 -> float, vectorised by the
// compiler), then each output pixel takes its two columns of that blended row, normalised and stored.
// The same weights as the general path, summed in another order (float32 rounding: ~1e-5 of a level).
// Tables and the blended row live in buffers made once per worker: no allocation per box.
// With `avx2` (crop_resize_avx2.h) both passes run eight lanes at a time (NWHC: the vertical one only),
// bit-identical to the loops here.
template <int NC, typename T>
struct BilinearPath {
    static_assert(NC == 1 || NC == 3, "1 or 3 channels");
    const StridedImage& src;
    const CropParams& p;
    T* out;
    const CropAvx2Kernels* avx2;  // null: the baseline loops
    std::vector<int> x0, x1, y0, y1;  // x: element offsets from the span's first column; y: rows
    std::vector<float> wx0, wx1, wy0, wy1;
    std::vector<float> vrow;  // the vertically blended span, (span, NC)
    std::vector<float> vrow2;  // with avx2 and 3 channels: the second row of a pair
    float scale[NC], bias[NC];

    BilinearPath(const StridedImage& s, const CropParams& params, T* o, const CropAvx2Kernels* k)
        : src(s), p(params), out(o), avx2(k) {
        x0.resize(p.out_w), x1.resize(p.out_w), wx0.resize(p.out_w), wx1.resize(p.out_w);
        y0.resize(p.out_h), y1.resize(p.out_h), wy0.resize(p.out_h), wy1.resize(p.out_h);
        vrow.assign(static_cast<std::size_t>(s.width) * NC + 1, 0.f);  // + 1: the 4-lane loads of the last pixel
        if (avx2 && NC == 3) vrow2.assign(vrow.size(), 0.f);
        for (int c = 0; c < NC; ++c) scale[c] = p.scale[c], bias[c] = p.bias[c];
    }

    static bool usable(const StridedImage& s, const CropParams& p) {
        return p.mode == CropInterpolation::bilinear && s.channels == NC && s.sx == NC && (s.sc == 1 || NC == 1);
    }

    static bool axis_fits(double b0, double b1, int n) {
        const double lo = std::floor(b0);
        const double hi = std::max(lo, std::ceil(b1) - 1.0);
        return lo >= 0.0 && hi <= static_cast<double>(n) - 1.0;
    }
    // Whether every tap of the box lies inside the image (the path's condition).
    static bool fits(const double* box, const StridedImage& s) {
        return axis_fits(box[0], box[2], s.width) && axis_fits(box[1], box[3], s.height);
    }

    // One axis (taps relative to floor(b0), times unit); returns the span length in samples.
    static int axis(double b0, double b1, int count, int unit, int* i0, int* i1, float* w0, float* w1) {
        const double lo = std::floor(b0);
        const double hi = std::max(lo, std::ceil(b1) - 1.0);
        const double scale = (b1 - b0) / count;
        for (int o = 0; o < count; ++o) {
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

    static void vblend(float* __restrict v, const std::uint8_t* __restrict r0, const std::uint8_t* __restrict r1,
                       float a, float b, int m) {
        for (int e = 0; e < m; ++e) v[e] = a * static_cast<float>(r0[e]) + b * static_cast<float>(r1[e]);
    }

#ifdef PYIMGCLS_CROP_SSE2
    // Three channels, SSE2 (x86-64 baseline): output pixel j of row i as one 4-lane vector (lane 3 is the
    // next pixel's first channel, ignored), the same float operations in the same order as the scalar loop.
    void hpass_sse2(const float* v, T* box_out, int i) const {
        const int H = p.out_h, W = p.out_w;
        const __m128 S = _mm_setr_ps(scale[0], scale[1], scale[2], 0.f);
        const __m128 Bi = _mm_setr_ps(bias[0], bias[1], bias[2], 0.f);
        alignas(16) float lanes[4];
        for (int j = 0; j < W; ++j) {
            const __m128 r = _mm_add_ps(_mm_mul_ps(_mm_add_ps(_mm_mul_ps(_mm_set1_ps(wx0[j]), _mm_loadu_ps(v + x0[j])),
                                                              _mm_mul_ps(_mm_set1_ps(wx1[j]), _mm_loadu_ps(v + x1[j]))),
                                                   S),
                                        Bi);
            if (p.layout == CropLayout::nhwc) {
                T* o = box_out + (static_cast<std::ptrdiff_t>(i) * W + j) * 3;
                if constexpr (std::is_same_v<T, float>) {
                    if (j + 1 < W) {
                        _mm_storeu_ps(o, r);  // lane 3 lands on the next pixel, rewritten next
                        continue;
                    }
                } else {
                    // round half away from zero after saturating to [0, 255] (store()), 4 bytes at once
                    const __m128 c = _mm_min_ps(_mm_max_ps(r, _mm_setzero_ps()), _mm_set1_ps(255.f));
                    const __m128i q = _mm_cvttps_epi32(_mm_add_ps(c, _mm_set1_ps(0.5f)));
                    const __m128i b8 = _mm_packus_epi16(_mm_packs_epi32(q, q), _mm_setzero_si128());
                    const int word = _mm_cvtsi128_si32(b8);
                    if (j + 1 < W) {
                        std::memcpy(o, &word, 4);
                        continue;
                    }
                    std::memcpy(o, &word, 3);
                    continue;
                }
                _mm_store_ps(lanes, r);
                for (int c = 0; c < 3; ++c) store(o + c, lanes[c]);
            } else {  // nchw
                _mm_store_ps(lanes, r);
                T* o = box_out + static_cast<std::ptrdiff_t>(i) * W + j;
                for (int c = 0; c < 3; ++c) store(o + static_cast<std::ptrdiff_t>(c) * H * W, lanes[c]);
            }
        }
    }
#endif

    // Output rows [row_begin, row_end) of box k (the caller checked fits()).
    void run(std::ptrdiff_t k, const double* box, int row_begin, int row_end) {
        const auto tables = avx2 ? avx2->axis : &axis;
        const int span = tables(box[0], box[2], p.out_w, NC, x0.data(), x1.data(), wx0.data(), wx1.data());
        tables(box[1], box[3], p.out_h, 1, y0.data(), y1.data(), wy0.data(), wy1.data());
        const int H = p.out_h, W = p.out_w;
        const int ylo = static_cast<int>(std::floor(box[1]));
        const std::uint8_t* base = src.data + static_cast<std::ptrdiff_t>(std::floor(box[0])) * NC;
        float* v = vrow.data();
        T* box_out = out + k * static_cast<std::ptrdiff_t>(NC) * H * W;
        const int* X0 = x0.data();
        const int* X1 = x1.data();
        const float* A = wx0.data();
        const float* B = wx1.data();
        auto row0 = [&](int i) { return base + static_cast<std::ptrdiff_t>(ylo + y0[i]) * src.sy; };
        auto row1 = [&](int i) { return base + static_cast<std::ptrdiff_t>(ylo + y1[i]) * src.sy; };
        if (avx2 && p.layout != CropLayout::nwhc) {
            CropRow row;
            row.x0 = X0, row.x1 = X1, row.w0 = A, row.w1 = B;
            row.width = W;
            row.scale = scale, row.bias = bias;
            row.plane = static_cast<std::ptrdiff_t>(H) * W;
            const bool nhwc = p.layout == CropLayout::nhwc, u8 = std::is_same_v<T, std::uint8_t>;
            const std::ptrdiff_t row_elems = static_cast<std::ptrdiff_t>(W) * (nhwc ? NC : 1);
            int i = row_begin;
            if constexpr (NC == 3) {  // two output rows a call: their taps and weights are read once
                float* v2 = vrow2.data();
                for (; i + 2 <= row_end; i += 2) {
                    const std::uint8_t *P = row0(i), *Q = row1(i), *P2 = row0(i + 1), *Q2 = row1(i + 1);
                    const int m = span * NC;
                    if (Q == P2) {  // shared source rows are widened once
                        avx2->vblend2[1](v, v2, P, Q, Q2, wy0[i], wy1[i], wy0[i + 1], wy1[i + 1], m);
                    } else if (P == P2 && Q == Q2) {
                        avx2->vblend2[0](v, v2, P, Q, nullptr, wy0[i], wy1[i], wy0[i + 1], wy1[i + 1], m);
                    } else {
                        avx2->vblend(v, P, Q, wy0[i], wy1[i], m);
                        avx2->vblend(v2, P2, Q2, wy0[i + 1], wy1[i + 1], m);
                    }
                    row.v = v, row.v2 = v2;
                    row.out = box_out + i * row_elems, row.out2 = box_out + (i + 1) * row_elems;
                    avx2->row3x2[nhwc][u8](row);
                }
            }
            for (; i < row_end; ++i) {
                avx2->vblend(v, row0(i), row1(i), wy0[i], wy1[i], span * NC);
                row.v = v;
                row.out = box_out + i * row_elems;
                if constexpr (NC == 3) avx2->row3[nhwc][u8](row);
                else avx2->row1[u8](row);
            }
            return;
        }
        for (int i = row_begin; i < row_end; ++i) {
            const std::uint8_t* r0 = row0(i);
            const std::uint8_t* r1 = row1(i);
            if (avx2) {  // NWHC: the vertical blend
                avx2->vblend(v, r0, r1, wy0[i], wy1[i], span * NC);
            } else {
                vblend(v, r0, r1, wy0[i], wy1[i], span * NC);
            }
#ifdef PYIMGCLS_CROP_SSE2
            if constexpr (NC == 3) {
                if (p.layout != CropLayout::nwhc) {
                    hpass_sse2(v, box_out, i);
                    continue;
                }
            }
#endif
            switch (p.layout) {
                case CropLayout::nhwc: {
                    T* o = box_out + static_cast<std::ptrdiff_t>(i) * W * NC;
                    for (int j = 0; j < W; ++j)
                        for (int c = 0; c < NC; ++c)
                            store(o + j * NC + c, (A[j] * v[X0[j] + c] + B[j] * v[X1[j] + c]) * scale[c] + bias[c]);
                    break;
                }
                case CropLayout::nchw:
                    for (int c = 0; c < NC; ++c) {
                        T* o = box_out + (static_cast<std::ptrdiff_t>(c) * H + i) * W;
                        const float sc = scale[c], bc = bias[c];
                        for (int j = 0; j < W; ++j) store(o + j, (A[j] * v[X0[j] + c] + B[j] * v[X1[j] + c]) * sc + bc);
                    }
                    break;
                case CropLayout::nwhc:
                    for (int j = 0; j < W; ++j) {
                        T* o = box_out + (static_cast<std::ptrdiff_t>(j) * H + i) * NC;
                        for (int c = 0; c < NC; ++c)
                            store(o + c, (A[j] * v[X0[j] + c] + B[j] * v[X1[j] + c]) * scale[c] + bias[c]);
                    }
                    break;
            }
        }
    }
};

template <int NC, typename T>
void run_all(const StridedImage& src, const double* boxes, std::ptrdiff_t count, T* out, const CropParams& p,
             int threads, const CropAvx2Kernels* avx2) {
    const FastPath fast(src, p, out, count);
    const int t = resolve_threads(threads);
    using BP = BilinearPath<(NC == 1 || NC == 3) ? NC : 1, T>;
    const bool bilinear = (NC == 1 || NC == 3) && BP::usable(src, p);
    if (count < 2 * t) {  // few boxes (a whole image, a handful of detections): rows over threads
        for (std::ptrdiff_t k = 0; k < count; ++k) {
            if (bilinear && BP::fits(boxes + 4 * k, src)) {
                parallel_for(p.out_h, threads, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                    BP bp(src, p, out, avx2);
                    bp.run(k, boxes + 4 * k, static_cast<int>(b), static_cast<int>(e));
                }, 32);
                continue;
            }
            ImageView view;
            ResizePlan plan;
            if (fast.take(src, boxes + 4 * k, view, plan)) {
                const ImageTables tables = make_tables(view, plan, fast.pp.interpolation);
                parallel_for(p.out_h, threads, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                    resize_normalize_rows(view, fast.dst, static_cast<int>(k), plan, tables, fast.pp,
                                          static_cast<int>(b), static_cast<int>(e));
                }, 32);
                continue;
            }
            if (p.mode == CropInterpolation::bilinear_cv2)  // (crop_resize checked every box: not reached)
                throw std::logic_error("crop_resize: a bilinear_cv2 box outside the exact path");
            const std::ptrdiff_t blocks = (p.out_h + kRowBlock - 1) / kRowBlock;
            parallel_for(blocks, threads, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
                Worker<NC, T> w(src, p, out);
                for (std::ptrdiff_t b = begin; b < end; ++b)
                    w.run(k, boxes + 4 * k, static_cast<int>(b) * kRowBlock,
                          std::min(p.out_h, static_cast<int>(b + 1) * kRowBlock));
            });
        }
        return;
    }
    // Boxes differ in cost (their size), and a core may be shared: each worker takes the next block
    // of kBoxBlock boxes from a shared counter until none is left (a worker that could not be started
    // finds the counter at the end when the calling thread runs its share).
    constexpr std::ptrdiff_t kBoxBlock = 4;
    std::atomic<std::ptrdiff_t> next{0};
    parallel_for(std::min<std::ptrdiff_t>(t, (count + 7) / 8), threads, [&](std::ptrdiff_t, std::ptrdiff_t) {
        Worker<NC, T> w(src, p, out);
        std::optional<BP> bp;
        if (bilinear) bp.emplace(src, p, out, avx2);
        auto one = [&](std::ptrdiff_t k) {
            if (bp && BP::fits(boxes + 4 * k, src)) {
                bp->run(k, boxes + 4 * k, 0, p.out_h);
                return;
            }
            ImageView view;
            ResizePlan plan;
            if (fast.take(src, boxes + 4 * k, view, plan)) {
                const ImageTables tables = make_tables(view, plan, fast.pp.interpolation);
                resize_normalize_rows(view, fast.dst, static_cast<int>(k), plan, tables, fast.pp, 0, p.out_h);
            } else {
                if (p.mode == CropInterpolation::bilinear_cv2)  // (crop_resize checked every box: not reached)
                    throw std::logic_error("crop_resize: a bilinear_cv2 box outside the exact path");
                w.run(k, boxes + 4 * k, 0, p.out_h);
            }
        };
        for (;;) {
            const std::ptrdiff_t first = next.fetch_add(kBoxBlock, std::memory_order_relaxed);
            if (first >= count) break;
            for (std::ptrdiff_t k = first; k < std::min(count, first + kBoxBlock); ++k) one(k);
        }
    });
}

}  // namespace

const char* crop_box_problem(const double* b, CropInterpolation mode, int width, int height) {
    for (int i = 0; i < 4; ++i)
        if (!std::isfinite(b[i])) return "must be finite";
    if (!(b[2] > b[0]) || !(b[3] > b[1])) return "must have x2 > x1 and y2 > y1";
    // a width or height past the doubles (-1e308 .. 1e308) made every tap position NaN
    if (!std::isfinite(b[2] - b[0]) || !std::isfinite(b[3] - b[1])) return "must have a finite width and height";
    if (mode == CropInterpolation::area || mode == CropInterpolation::bilinear_cv2) {
        for (int i = 0; i < 4; ++i)
            if (b[i] != std::floor(b[i]) || std::fabs(b[i]) > 9007199254740992.0)
                return mode == CropInterpolation::area
                           ? "must have integer corners for area interpolation (cv2 INTER_AREA on a slice)"
                           : "must have integer corners for bilinear_cv2 (cv2.resize on a slice)";
    }
    if (mode == CropInterpolation::bilinear_cv2 && !(b[0] >= 0 && b[1] >= 0 && b[2] <= width && b[3] <= height))
        return "must lie inside the image for bilinear_cv2 (cv2.resize on a slice: 0 <= x1, 0 <= y1, x2 <= width, "
               "y2 <= height)";
    return "";
}

const char* crop_cv2_problem(const StridedImage& src, CropLayout layout) {
    if (src.channels != 1 && src.channels != 3) return "bilinear_cv2 takes 1- or 3-channel images";
    if (layout == CropLayout::nwhc) return "bilinear_cv2 writes NCHW or NHWC, not NWHC";
    if (src.sx != src.channels || (src.channels > 1 && src.sc != 1) ||
        src.sy < static_cast<std::ptrdiff_t>(src.width) * src.channels)
        return "bilinear_cv2 needs contiguous pixels and rows (np.ascontiguousarray)";
    return "";
}

bool crop_avx2_usable() {
    return cpu_has_avx2_fma() && crop_avx2_kernels() != nullptr;  // the CPU check comes first
}

template <typename T>
void dispatch(const StridedImage& src, const double* boxes, std::ptrdiff_t count, T* out, const CropParams& p,
              int threads, const CropAvx2Kernels* k) {
    if (src.sc == 1 && src.channels == 3) run_all<3>(src, boxes, count, out, p, threads, k);
    else if (src.sc == 1 && src.channels == 1) run_all<1>(src, boxes, count, out, p, threads, k);
    else if (src.sc == 1 && src.channels == 4) run_all<4>(src, boxes, count, out, p, threads, k);
    else run_all<0>(src, boxes, count, out, p, threads, k);
}

void crop_resize(const StridedImage& src, const double* boxes, std::ptrdiff_t count, void* out,
                 const CropParams& p, int threads) {
    if (p.kernels == CropKernels::avx2 && !crop_avx2_usable())
        throw std::invalid_argument("the AVX2 crop kernels are not built here or not run by this CPU");
    if (count <= 0 || p.out_h <= 0 || p.out_w <= 0) return;
    if (p.mode == CropInterpolation::bilinear_cv2) {  // only the preprocessing engine's exact rows run it
        const std::string problem = crop_cv2_problem(src, p.layout);
        if (!problem.empty()) throw std::invalid_argument(problem);
        for (std::ptrdiff_t i = 0; i < count; ++i)
            if (*crop_box_problem(boxes + 4 * i, p.mode, src.width, src.height) != '\0')
                throw std::invalid_argument("crop_resize: box " + std::to_string(i) + " is not valid for bilinear_cv2");
    }
    const CropAvx2Kernels* k = p.kernels != CropKernels::baseline && crop_avx2_usable() ? crop_avx2_kernels() : nullptr;
    if (p.out_u8) dispatch(src, boxes, count, static_cast<std::uint8_t*>(out), p, threads, k);
    else dispatch(src, boxes, count, static_cast<float*>(out), p, threads, k);
}

}  // namespace pyimgcls::core
