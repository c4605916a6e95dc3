// Fused preprocessing, the driver (see preprocess.h): per output row, the horizontal pass of the source
// rows it needs (cached across output rows), the vertical blend, then normalisation, layout and dtype
// (store_row). The colour row kernels come from the kernel set chosen once per call (kernels.h); gray
// rows, the vertical pass and the stores are portable code here.
#include "core/preprocess/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/common/half.h"
#include "core/common/parallel.h"
#include "core/preprocess/kernels.h"

namespace pyimgcls::core {
namespace {

AxisSpan span_of(const AxisTable& t) { return AxisSpan{t.start.data(), t.w.data(), t.count, t.taps}; }

template <typename Src>
HpassColorFn<Src> hpass_color_of(const PreprocessKernels& K) {
    if constexpr (std::is_same_v<Src, std::uint8_t>) return K.hpass_color_u8;
    else return K.hpass_color_u16;
}

template <typename Src>
Fused2x2Fn<Src> fused_2x2_of(const PreprocessKernels& K) {
    if constexpr (std::is_same_v<Src, std::uint8_t>) return K.fused_2x2_u8;
    else return K.fused_2x2_u16;
}

// Horizontal pass of one gray source row (LANES == 1): content_w floats.
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

// Horizontal pass of one source row into `out`: content_w pixels of LANES floats each. Colour
// sources use LANES == 4 ("RGBX": the three colour channels then a zero / ignored lane, one SSE
// register per pixel) and go through the kernel set; gray sources use LANES == 1, here.
template <typename Src>
void hpass(const PreprocessKernels& K, const Src* row, int pixel_stride, int lanes, const AxisTable& xt,
           const AxisSpan& xs, const float* w4, int safe, float* out) {
    if (lanes == 4) {
        hpass_color_of<Src>(K)(row, pixel_stride, xs, w4, safe, out);
        return;
    }
    switch (xt.taps) {
        case 1: hpass_gray<Src, 1>(row, pixel_stride, xt, out); break;
        case 2: hpass_gray<Src, 2>(row, pixel_stride, xt, out); break;
        default: hpass_gray<Src, 0>(row, pixel_stride, xt, out); break;
    }
}

// Q14 weight words for the kernel set's hpass_color_u8q14: per output, pairs of taps packed as
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

// Largest |weight| of a table: the Q14 kernels hold weights in int16 (|w| < 2); bicubic weights
// exceed 1 a little near replicated edges.
float max_abs_weight(const AxisTable& t) {
    float m = 0.f;
    for (float w : t.w) m = std::max(m, std::fabs(w));
    return m;
}

// Clamps a row to the source's value range, as Pillow clips the result of each of its passes
// (bicubic_aa: its negative lobes overshoot at edges; Pillow's images are uint8 after either pass).
void clamp_row(float* v, int n, float hi) {
    for (int i = 0; i < n; ++i) v[i] = v[i] < 0.f ? 0.f : (v[i] > hi ? hi : v[i]);
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
void store_row(const PreprocessKernels& K, const float* vals, int lanes, const TensorView& dst, int index, int y,
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
            if constexpr (std::is_same_v<Out, float>) {
                if (K.rgbx_to_planes_f32) x = K.rgbx_to_planes_f32(vals, n, p, o0, o1, o2);
            } else if constexpr (std::is_same_v<Out, std::uint8_t>) {
                if (K.rgbx_to_u8) x = K.rgbx_to_u8(vals, n, p, true, o0, o1, o2);
            }
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
        int x = 0;
        if constexpr (std::is_same_v<Out, std::uint8_t>) {
            if (lanes == 4 && K.rgbx_to_u8) x = K.rgbx_to_u8(vals, n, p, false, o, nullptr, nullptr);
        }
        for (; x < n; ++x) {
            const float* v = vals + lanes * x;
            o[3 * x] = convert_out<Out>(v[m0] * s0 + b0);
            o[3 * x + 1] = convert_out<Out>(v[m1] * s1 + b1);
            o[3 * x + 2] = convert_out<Out>(v[m2] * s2 + b2);
        }
    }
}

template <typename Src, typename Out>
void rows_impl(const PreprocessKernels& K, const ImageView& src, const TensorView& dst, int index,
               const ResizePlan& plan, const ImageTables& t, const PreprocessParams& p, int row_begin, int row_end) {
    constexpr bool is_u8 = std::is_same_v<Src, std::uint8_t>;
    const int lanes = src.channels >= 3 ? 4 : 1;
    const int n = plan.content_w * lanes;
    const int ytaps = t.y.taps;
    const AxisSpan xs = span_of(t.x);
    // Outputs whose 4-element pixel loads stay inside the image: a 3-channel pixel load reads one
    // element past the pixel, which is the next row's first element (or the padding of a strided
    // view) everywhere but on the last source row. Window starts are non-decreasing.
    int safe = t.x.count;
    const bool touches_last_row = t.y.count > 0 && t.y.start[t.y.count - 1] + t.y.taps >= src.height;
    if (src.channels == 3 && touches_last_row)
        while (safe > 0 && t.x.start[safe - 1] + t.x.taps >= src.width) --safe;
    // Pillow's bicubic clips each pass to the pixel range (its intermediate and its output image are
    // uint8): so does bicubic_aa, on each cached row and on the blended row (whatever the output dtype:
    // a float model input then equals Pillow's image normalised, as timm's eval transform makes it).
    // The fused paths have no cached row: not taken then.
    const bool clamp_passes = p.interpolation == Interpolation::bicubic_aa;
    const float src_max = is_u8 ? 255.f : 65535.f;
    // Q14 weights are int16: only for tables whose weights stay inside (-2, 2) (all of them in
    // practice; bicubic reaches about 1.1 at replicated edges)
    const bool q14_ok = max_abs_weight(t.x) < 1.9f;
    // 2x2 taps while shrinking at least 2x vertically: no row is shared, fuse both passes (when the
    // kernel set has a fused kernel; uint8 sources take its Q14 variant when it has one)
    const bool fused_2x2 = lanes == 4 && t.x.taps == 2 && ytaps == 2 && src.height >= 2 * plan.resized_h && !clamp_passes;
    const Fused2x2Fn<Src> fused_kernel = fused_2x2_of<Src>(K);
    const bool fused = fused_2x2 && fused_kernel != nullptr;
    const bool fused_q14 = fused && is_u8 && K.fused_2x2_u8q14 != nullptr && q14_ok;
    std::vector<float> cache(static_cast<std::size_t>(ytaps + 1) * n);
    // Q14 weight pairs for the uint8 2x2 kernel; its 8-byte loads need the same guard as the
    // 4-byte ones (the second pixel of the pair is never the row's last one inside `safe`).
    std::vector<std::int32_t> wq;
    if (fused_q14) {
        wq.resize(static_cast<std::size_t>(t.x.count));
        for (int x = 0; x < t.x.count; ++x) {
            const int w0 = static_cast<int>(std::lround(t.x.w[2 * x] * 16384.0f));
            const int w1 = 16384 - w0;
            wq[x] = static_cast<std::int32_t>((static_cast<std::uint32_t>(w1) << 16) | static_cast<std::uint32_t>(w0 & 0xffff));
        }
    }
    // uint8 sources with 3+ horizontal taps: the Q14 pair kernel (its 8-byte loads read up to one
    // pixel past the window plus two bytes: keep them off the end of the last source row)
    const bool q14_rows = is_u8 && lanes == 4 && t.x.taps >= 3 && !fused_2x2 && K.hpass_color_u8q14 != nullptr &&
                          t.x.taps <= 64 && q14_ok;
    std::vector<std::int32_t> wq_rows;
    int safe_q = 0;
    if (q14_rows) {
        wq_rows = q14_pairs(t.x);
        const int span = 2 * ((t.x.taps + 1) / 2) + 1;  // pixels touched, rounded up, plus the overhang
        safe_q = t.x.count;
        if (touches_last_row)
            while (safe_q > 0 && t.x.start[safe_q - 1] + span > src.width) --safe_q;
    }
    std::vector<float> w4;
    if (lanes == 4 && !(fused_q14 || q14_rows)) {  // weights broadcast to 4 lanes
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
            store_row<Out>(K, nullptr, lanes, dst, index, y, plan, p);
            continue;
        }
        const int s0 = t.y.start[oy];
        const float* wy = t.y.w.data() + static_cast<std::ptrdiff_t>(oy) * ytaps;
        if (fused) {
            // Shrinking 2x2 taps: rows are not shared between output rows, so blend the four
            // source pixels of each output directly (no per-row horizontal pass).
            const Src* r0 = pixels + static_cast<std::ptrdiff_t>(s0) * src.row_stride;
            const Src* r1 = r0 + src.row_stride;
            if constexpr (is_u8) {
                if (fused_q14) {
                    if constexpr (std::is_same_v<Out, float>) {
                        if (K.fused_2x2_u8q14_planes && dst.layout == Layout::nchw && dst.channels == 3 &&
                            plan.out_x == 0 && plan.content_w == dst.width) {
                            // straight into the planes; the few outputs left go through acc
                            const int C = dst.channels, H = dst.height, W = dst.width;
                            float* base = static_cast<float*>(dst.data);
                            float* o[3];
                            for (int k = 0; k < 3; ++k)
                                o[k] = base + ((static_cast<std::ptrdiff_t>(index) * C + k) * H + y) * W;
                            const int done = K.fused_2x2_u8q14_planes(r0, r1, ps, xs, wq.data(), wy, safe, p, o[0],
                                                                      o[1], o[2]);
                            if (done < plan.content_w) {
                                K.fused_2x2_u8q14(r0, r1, ps, xs, wq.data(), wy, safe, plan.content_w, acc);
                                for (int x = done; x < plan.content_w; ++x)
                                    for (int k = 0; k < 3; ++k)
                                        o[k][x] = acc[4 * x + p.channel_map[k]] * p.scale[k] + p.bias[k];
                            }
                            continue;
                        }
                    }
                    K.fused_2x2_u8q14(r0, r1, ps, xs, wq.data(), wy, safe, plan.content_w, acc);
                    store_row<Out>(K, acc, lanes, dst, index, y, plan, p);
                    continue;
                }
            }
            fused_kernel(r0, r1, ps, xs, w4.data(), wy, safe, plan.content_w, acc);
            store_row<Out>(K, acc, lanes, dst, index, y, plan, p);
            continue;
        }
        for (int j = 0; j < ytaps; ++j) {
            const int sy = s0 + j;
            const int slot = sy % ytaps;
            float* buf = cache.data() + static_cast<std::size_t>(slot) * n;
            if (key[slot] != sy) {
                const Src* row = pixels + static_cast<std::ptrdiff_t>(sy) * src.row_stride;
                if (q14_rows) {
                    if constexpr (is_u8) K.hpass_color_u8q14(row, ps, xs, wq_rows.data(), safe_q, buf);
                } else {
                    hpass<Src>(K, row, ps, lanes, t.x, xs, w4.data(), safe, buf);
                }
                if (clamp_passes) clamp_row(buf, n, src_max);
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
            if (clamp_passes) clamp_row(acc, n, src_max);
            vals = acc;
        }
        store_row<Out>(K, vals, lanes, dst, index, y, plan, p);
    }
}

// One uint8 output row of bilinear_cv2 with scale 1 and bias 0 (rows_cv2_linear's direct case): the
// padding beside the content as store_row writes it, then the content bytes from the two cached rows
// (K.cv2_vrow_u8, the scalar loop for the outputs it leaves), each value as cv2_vrow computes it.
void cv2_row_u8_direct(const PreprocessKernels& K, const std::int16_t* h0, const std::int16_t* h1, int b0, int b1,
                       int lanes, const TensorView& dst, int index, int y, const ResizePlan& plan,
                       const PreprocessParams& p) {
    auto* base = static_cast<std::uint8_t*>(dst.data);
    const int C = dst.channels, H = dst.height, W = dst.width, x0 = plan.out_x, n = plan.content_w;
    const bool planes = dst.layout == Layout::nchw;
    std::uint8_t* o[3] = {nullptr, nullptr, nullptr};
    if (planes) {
        for (int k = 0; k < C; ++k) {
            std::uint8_t* row = base + ((static_cast<std::ptrdiff_t>(index) * C + k) * H + y) * W;
            const std::uint8_t pad = saturate_u8(p.pad[k]);
            std::fill(row, row + x0, pad);
            std::fill(row + x0 + n, row + W, pad);
            o[k] = row + x0;
        }
    } else {
        std::uint8_t* row = base + (static_cast<std::ptrdiff_t>(index) * H + y) * W * C;
        for (int x = 0; x < W; ++x) {
            if (x == x0 && n > 0) x += n;
            if (x >= W) break;
            for (int k = 0; k < C; ++k) row[static_cast<std::ptrdiff_t>(x) * C + k] = saturate_u8(p.pad[k]);
        }
        o[0] = row + static_cast<std::ptrdiff_t>(x0) * C;
    }
    const int map[3] = {p.channel_map[0], p.channel_map[1], p.channel_map[2]};
    int x = K.cv2_vrow_u8(h0, h1, b0, b1, n, lanes, map, planes, o[0], o[1], o[2]);
    for (; x < n; ++x) {
        for (int k = 0; k < C; ++k) {
            const int e = x * lanes + (lanes == 1 ? 0 : map[k]);
            std::int32_t v = ((h0[e] * b0) >> 16) + ((h1[e] * b1) >> 16);
            v = (v + 2) >> 2;
            const auto byte = static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
            if (planes) o[k][x] = byte;
            else o[0][static_cast<std::ptrdiff_t>(x) * C + k] = byte;
        }
    }
}

// bilinear_cv2 on a uint8 source: cv2.resize(INTER_LINEAR)'s integer arithmetic. Horizontal pass per
// source row (Q11: s[i0] * w0 + s[i1] * w1 per channel), kept as (value >> 4) in int16 -- all the
// vertical pass uses -- with 4 lanes a pixel for colour sources (the first three channels used), cached
// for the next output row; vertical pass as cv2 computes it (checked against cv2 5.0,
// tests/preprocessing/test_bilinear_cv2.py): each shifted row value multiplied by its Q11 row weight
// keeping the high 16 bits of the product, the two summed and rounded by (sum + 2) >> 2 -- not the
// exact (a * b0 + c * b1 + 2^21) >> 22, which differs by one level now and then. An exact 2x shrink of
// both axes is a 2x2 block mean (sum + 2) >> 2, as in cv2. The vector sets run both passes with SSE2
// integer instructions (K.cv2_hrow_u8 / K.cv2_vrow, the same integers); the scalar loops do the edges.
template <typename Out, int CN>
void rows_cv2_linear(const PreprocessKernels& K, const ImageView& src, const TensorView& dst, int index,
                     const ResizePlan& plan, const ImageTables& t, const PreprocessParams& p, int row_begin,
                     int row_end) {
    constexpr int cn = CN;  // the source's channels, a constant for the compiler (1, 3 or 4)
    constexpr int used = CN < 3 ? CN : 3;
    constexpr int lanes = cn >= 3 ? 4 : 1;  // per pixel, in the row cache and in vals
    const int n = plan.content_w;
    const Cv2LinearAxis& xa = t.cv2_x;
    const Cv2LinearAxis& ya = t.cv2_y;
    const std::uint8_t* pixels = static_cast<const std::uint8_t*>(src.data);
    std::vector<std::int16_t> cache(static_cast<std::size_t>(2) * n * lanes);
    int key[2] = {-1, -1};
    std::vector<float> vals(static_cast<std::size_t>(n) * lanes, 0.f);
    // the vector horizontal pass: colour sources, outputs whose 4-byte pixel loads stay inside the row
    // (i1 never decreases along x, and i0 <= i1)
    int hsafe = 0;
    std::vector<std::int32_t> wpair;
    const bool hvec = cn >= 3 && K.cv2_hrow_u8 != nullptr && !t.cv2_halve;
    if (hvec) {
        const int last_ok = cn == 4 ? src.width - 1 : src.width - 2;
        while (hsafe < n && xa.i1[hsafe] <= last_ok && xa.i0[hsafe] <= last_ok) ++hsafe;
        wpair.resize(static_cast<std::size_t>(n));
        for (int x = 0; x < n; ++x)
            wpair[x] = static_cast<std::int32_t>((static_cast<std::uint32_t>(xa.w1[x]) << 16) |
                                                 (static_cast<std::uint32_t>(xa.w0[x]) & 0xffffu));
    }
    // uint8 out of the values as they are (scale 1, bias 0; a raw resize, as a cv2.resize loop gives):
    // bytes straight from the vertical pass (K.cv2_vrow_u8), no float values in between
    bool direct = false;
    if constexpr (std::is_same_v<Out, std::uint8_t>) {
        const int C = dst.channels;
        direct = K.cv2_vrow_u8 != nullptr && !t.cv2_halve && ((lanes == 4 && C == 3) || (lanes == 1 && C == 1));
        for (int k = 0; direct && k < C; ++k) direct = p.scale[k] == 1.f && p.bias[k] == 0.f;
        if (direct && lanes == 4) {
            int seen = 0;
            for (int k = 0; k < 3; ++k) {
                const int m = p.channel_map[k];
                if (m < 0 || m > 2 || (seen & (1 << m))) direct = false;
                else seen |= 1 << m;
            }
        }
    }
    auto hrow = [&](int sy) -> const std::int16_t* {
        const int slot = sy & 1;
        std::int16_t* buf = cache.data() + static_cast<std::size_t>(slot) * n * lanes;
        if (key[slot] != sy) {
            const std::uint8_t* row = pixels + static_cast<std::ptrdiff_t>(sy) * src.row_stride;
            int x = 0;
            if (hvec) {
                K.cv2_hrow_u8(row, cn, xa.i0.data(), xa.i1.data(), wpair.data(), hsafe, buf);
                x = hsafe;
            }
            for (; x < n; ++x) {
                const std::uint8_t* a = row + static_cast<std::ptrdiff_t>(xa.i0[x]) * cn;
                const std::uint8_t* b = row + static_cast<std::ptrdiff_t>(xa.i1[x]) * cn;
                const std::int32_t w0 = xa.w0[x], w1 = xa.w1[x];
                for (int k = 0; k < used; ++k)
                    buf[x * lanes + k] = static_cast<std::int16_t>((a[k] * w0 + b[k] * w1) >> 4);  // < 2^15
                for (int k = used; k < lanes; ++k) buf[x * lanes + k] = 0;  // (lane 3: read by no output)
            }
            key[slot] = sy;
        }
        return buf;
    };
    for (int y = row_begin; y < row_end; ++y) {
        const int oy = y - plan.out_y;
        if (oy < 0 || oy >= plan.content_h) {
            store_row<Out>(K, nullptr, lanes, dst, index, y, plan, p);
            continue;
        }
        if (t.cv2_halve) {
            const std::uint8_t* r0 = pixels + static_cast<std::ptrdiff_t>(ya.i0[oy]) * src.row_stride;
            const std::uint8_t* r1 = pixels + static_cast<std::ptrdiff_t>(ya.i1[oy]) * src.row_stride;
            for (int x = 0; x < n; ++x) {
                const std::ptrdiff_t a = static_cast<std::ptrdiff_t>(xa.i0[x]) * cn;
                const std::ptrdiff_t b = static_cast<std::ptrdiff_t>(xa.i1[x]) * cn;
                for (int k = 0; k < used; ++k)
                    vals[static_cast<std::size_t>(x) * lanes + k] =
                        static_cast<float>((r0[a + k] + r0[b + k] + r1[a + k] + r1[b + k] + 2) >> 2);
            }
        } else {
            const int sy0 = ya.i0[oy], sy1 = ya.i1[oy];
            // two slots keyed by row parity: sy0 and sy1 differ by one or are equal (clamped edge)
            const std::int16_t* h0 = hrow(sy0);
            const std::int16_t* h1 = sy1 == sy0 ? h0 : hrow(sy1);
            const std::int32_t b0 = ya.w0[oy], b1 = ya.w1[oy];
            if constexpr (std::is_same_v<Out, std::uint8_t>) {
                if (direct) {
                    cv2_row_u8_direct(K, h0, h1, b0, b1, lanes, dst, index, y, plan, p);
                    continue;
                }
            }
            const int m = n * lanes;
            int e = K.cv2_vrow ? K.cv2_vrow(h0, h1, b0, b1, m, vals.data()) : 0;
            for (; e < m; ++e) {
                // the high half of a 16 x 16-bit product
                std::int32_t v = ((h0[e] * b0) >> 16) + ((h1[e] * b1) >> 16);
                v = (v + 2) >> 2;
                v = v < 0 ? 0 : (v > 255 ? 255 : v);
                vals[e] = static_cast<float>(v);
            }
        }
        store_row<Out>(K, vals.data(), lanes, dst, index, y, plan, p);
    }
}

template <typename Out>
void cv2_linear_channels(const PreprocessKernels& K, const ImageView& src, const TensorView& dst, int index,
                         const ResizePlan& plan, const ImageTables& t, const PreprocessParams& p, int b, int e) {
    switch (src.channels) {
        case 1: rows_cv2_linear<Out, 1>(K, src, dst, index, plan, t, p, b, e); break;
        case 3: rows_cv2_linear<Out, 3>(K, src, dst, index, plan, t, p, b, e); break;
        default: rows_cv2_linear<Out, 4>(K, src, dst, index, plan, t, p, b, e); break;
    }
}

template <typename Src>
void dispatch_out(const PreprocessKernels& K, const ImageView& src, const TensorView& dst, int index,
                  const ResizePlan& plan, const ImageTables& t, const PreprocessParams& p, int b, int e) {
    switch (dst.dtype) {
        case OutType::f32: rows_impl<Src, float>(K, src, dst, index, plan, t, p, b, e); break;
        case OutType::f16: rows_impl<Src, std::uint16_t>(K, src, dst, index, plan, t, p, b, e); break;
        case OutType::u8: rows_impl<Src, std::uint8_t>(K, src, dst, index, plan, t, p, b, e); break;
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

void normalize_rows(const PreprocessKernels& K, const ImageView& src, const TensorView& dst, int index,
                    const ResizePlan& plan, const ImageTables& tables, const PreprocessParams& p, int row_begin,
                    int row_end) {
    check_plan(src, dst, plan);
    ResizePlan pl = plan;
    if (tables.x.count == 0 || tables.y.count == 0) pl.content_h = 0;  // all padding
    if (tables.cv2_exact) {
        switch (dst.dtype) {
            case OutType::f32: cv2_linear_channels<float>(K, src, dst, index, pl, tables, p, row_begin, row_end); break;
            case OutType::f16: cv2_linear_channels<std::uint16_t>(K, src, dst, index, pl, tables, p, row_begin, row_end); break;
            case OutType::u8: cv2_linear_channels<std::uint8_t>(K, src, dst, index, pl, tables, p, row_begin, row_end); break;
        }
    } else if (src.type == PixelType::u8)
        dispatch_out<std::uint8_t>(K, src, dst, index, pl, tables, p, row_begin, row_end);
    else
        dispatch_out<std::uint16_t>(K, src, dst, index, pl, tables, p, row_begin, row_end);
}

}  // namespace

ImageTables make_tables(const ImageView& src, const ResizePlan& plan, Interpolation mode) {
    const bool shrinks = src.width >= plan.resized_w && src.height >= plan.resized_h;
    ImageTables t;
    if (plan.content_h == 0 || plan.content_w == 0) return t;
    if (mode == Interpolation::bilinear_cv2 && src.type == PixelType::u8) {
        t.cv2_exact = true;
        t.cv2_halve = 2 * plan.resized_w == src.width && 2 * plan.resized_h == src.height;
        t.cv2_x = make_cv2_linear_axis(src.width, plan.resized_w, plan.crop_x, plan.content_w, true, t.cv2_halve);
        t.cv2_y = make_cv2_linear_axis(src.height, plan.resized_h, plan.crop_y, plan.content_h, false, t.cv2_halve);
        // the generic tables stay empty (count 0): normalize_rows only tests them for emptiness
        t.x.count = t.cv2_x.count;
        t.y.count = t.cv2_y.count;
        return t;
    }
    t.x = make_axis_table(mode, src.width, plan.resized_w, plan.crop_x, plan.content_w, shrinks);
    t.y = make_axis_table(mode, src.height, plan.resized_h, plan.crop_y, plan.content_h, shrinks);
    return t;
}

void resize_normalize_rows(const ImageView& src, const TensorView& dst, int index,
                           const ResizePlan& plan, const ImageTables& tables,
                           const PreprocessParams& p, int row_begin, int row_end) {
    normalize_rows(select_kernels(), src, dst, index, plan, tables, p, row_begin, row_end);
}

void preprocess_batch(const std::vector<ImageView>& images, const std::vector<ResizePlan>& plans,
                      const TensorView& dst, const PreprocessParams& p, int threads,
                      const PreprocessKernels* kernels) {
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(images.size());
    if (static_cast<std::ptrdiff_t>(plans.size()) != n || n > dst.batch)
        throw std::invalid_argument("preprocess_batch: images, plans and batch size disagree");
    for (std::ptrdiff_t i = 0; i < n; ++i) check_plan(images[i], dst, plans[i]);
    const PreprocessKernels& K = kernels ? *kernels : select_kernels();  // once per call
    if (n == 1 || resolve_threads(threads) == 1) {
        for (std::ptrdiff_t i = 0; i < n; ++i) {
            const ImageTables t = make_tables(images[i], plans[i], p.interpolation);
            // Rows in chunks of at least 32 so that a small output stays on one thread.
            parallel_for(dst.height, threads, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                normalize_rows(K, images[i], dst, static_cast<int>(i), plans[i], t, p, static_cast<int>(b),
                               static_cast<int>(e));
            }, 32);
        }
        return;
    }
    parallel_for_dynamic(n, threads, [&](std::ptrdiff_t i) {
        const ImageTables t = make_tables(images[i], plans[i], p.interpolation);
        normalize_rows(K, images[i], dst, static_cast<int>(i), plans[i], t, p, 0, dst.height);
    });
}

}  // namespace pyimgcls::core
