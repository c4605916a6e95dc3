// crop_resize (see crop_resize.h for indices and conventions): per box, one tap table per axis
// (source index and weight for every output row / column, the part outside the image folded into
// one fill weight), then a separable pass: each source row the box needs is resampled horizontally
// once (a two-row cache serves neighbouring output rows), and output rows blend those rows.
// Work is split over (box, block of output rows) units, so one large crop still uses every thread.
// Cost: O(out_h * out_w * C * taps) per box plus O(min(box, image) + out) for the tables.
#include "core/crop/crop_resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/common/parallel.h"

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

struct Worker {
    const StridedImage& src;
    const CropParams& p;
    float* out;
    Taps tx, ty;
    std::vector<float> rows[2];  // horizontally resampled source rows (out_w * C)
    int row_of[2] = {-1, -1};
    int next_slot = 0;
    std::vector<float> acc;
    std::vector<std::ptrdiff_t> xoff;  // byte offset of each x tap

    Worker(const StridedImage& s, const CropParams& params, float* o) : src(s), p(params), out(o) {}

    const float* hrow(int r) {
        for (int k = 0; k < 2; ++k)
            if (row_of[k] == r) return rows[k].data();
        const int slot = next_slot;
        next_slot ^= 1;
        row_of[slot] = r;
        const int C = src.channels, W = p.out_w;
        std::vector<float>& h = rows[slot];
        h.resize(static_cast<std::size_t>(W) * C);
        const std::uint8_t* base = src.data + r * src.sy;
        for (int j = 0; j < W; ++j) {
            float* hj = h.data() + static_cast<std::size_t>(j) * C;
            const float fw = tx.fill_w[j];
            for (int c = 0; c < C; ++c) hj[c] = fw * p.fill[c];
            for (int q = tx.off[j]; q < tx.off[j + 1]; ++q) {
                const std::uint8_t* px = base + xoff[q];
                const float w = tx.w[q];
                if (src.sc == 1) {
                    for (int c = 0; c < C; ++c) hj[c] += w * static_cast<float>(px[c]);
                } else {
                    for (int c = 0; c < C; ++c) hj[c] += w * static_cast<float>(px[c * src.sc]);
                }
            }
        }
        return h.data();
    }

    void run(std::ptrdiff_t k, const double* box, int row_begin, int row_end) {
        const double x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];
        const bool shrinks = (x2 - x1) >= p.out_w && (y2 - y1) >= p.out_h;  // cv2: both axes
        build_taps(tx, x1, x2, p.out_w, src.width, p.mode, shrinks);
        build_taps(ty, y1, y2, p.out_h, src.height, p.mode, shrinks);
        xoff.resize(tx.idx.size());
        for (std::size_t q = 0; q < tx.idx.size(); ++q) xoff[q] = tx.idx[q] * src.sx;
        row_of[0] = row_of[1] = -1;
        const int C = src.channels, H = p.out_h, W = p.out_w;
        acc.resize(static_cast<std::size_t>(W) * C);
        float* box_out = out + k * static_cast<std::ptrdiff_t>(C) * H * W;
        for (int i = row_begin; i < row_end; ++i) {
            const float fw = ty.fill_w[i];
            for (int j = 0; j < W; ++j)
                for (int c = 0; c < C; ++c) acc[static_cast<std::size_t>(j) * C + c] = fw * p.fill[c];
            for (int q = ty.off[i]; q < ty.off[i + 1]; ++q) {
                const float* h = hrow(ty.idx[q]);
                const float w = ty.w[q];
                for (std::size_t e = 0; e < acc.size(); ++e) acc[e] += w * h[e];
            }
            switch (p.layout) {
                case CropLayout::nchw:
                    for (int c = 0; c < C; ++c) {
                        float* o = box_out + (static_cast<std::ptrdiff_t>(c) * H + i) * W;
                        const float s = p.scale[c], b = p.bias[c];
                        for (int j = 0; j < W; ++j) o[j] = acc[static_cast<std::size_t>(j) * C + c] * s + b;
                    }
                    break;
                case CropLayout::nhwc: {
                    float* o = box_out + static_cast<std::ptrdiff_t>(i) * W * C;
                    for (int j = 0; j < W; ++j)
                        for (int c = 0; c < C; ++c) {
                            const std::size_t e = static_cast<std::size_t>(j) * C + c;
                            o[e] = acc[e] * p.scale[c] + p.bias[c];
                        }
                    break;
                }
                case CropLayout::nwhc:
                    for (int j = 0; j < W; ++j) {
                        float* o = box_out + (static_cast<std::ptrdiff_t>(j) * H + i) * C;
                        for (int c = 0; c < C; ++c) o[c] = acc[static_cast<std::size_t>(j) * C + c] * p.scale[c] + p.bias[c];
                    }
                    break;
            }
        }
    }
};

}  // namespace

const char* crop_box_problem(const double* b, CropInterpolation mode) {
    for (int i = 0; i < 4; ++i)
        if (!std::isfinite(b[i])) return "must be finite";
    if (!(b[2] > b[0]) || !(b[3] > b[1])) return "must have x2 > x1 and y2 > y1";
    if (mode == CropInterpolation::area) {
        for (int i = 0; i < 4; ++i)
            if (b[i] != std::floor(b[i]) || std::fabs(b[i]) > 9007199254740992.0)
                return "must have integer corners for area interpolation (cv2 INTER_AREA on a slice)";
    }
    return "";
}

void crop_resize(const StridedImage& src, const double* boxes, std::ptrdiff_t count, float* out,
                 const CropParams& p, int threads) {
    if (count <= 0 || p.out_h <= 0 || p.out_w <= 0) return;
    // split each box into row blocks when there are fewer boxes than threads
    const int t = resolve_threads(threads);
    const std::ptrdiff_t blocks = count >= 2 * t ? 1 : (p.out_h + kRowBlock - 1) / kRowBlock;
    const std::ptrdiff_t units = count * blocks;
    const std::ptrdiff_t min_chunk = blocks > 1 ? 1 : 8;
    parallel_for(units, threads, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
        Worker w(src, p, out);
        for (std::ptrdiff_t u = begin; u < end; ++u) {
            const std::ptrdiff_t k = u / blocks, b = u % blocks;
            const int r0 = blocks > 1 ? static_cast<int>(b) * kRowBlock : 0;
            const int r1 = blocks > 1 ? std::min(p.out_h, r0 + kRowBlock) : p.out_h;
            w.run(k, boxes + 4 * k, r0, r1);
        }
    }, min_chunk);
}

}  // namespace pyimgcls::core
