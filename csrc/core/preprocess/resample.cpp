// Resampling tables (see resample.h for indices and conventions): one tap generator per mode, with
// the position arithmetic of the library it matches (float or double, as cv2 / Pillow compute it),
// then one pass that clamps source indices, finds each output's window and merges the weights into it.
// Cost: O(count * taps).
#include "core/preprocess/resample.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace pyimgcls::core {
namespace {

using Taps = std::vector<std::pair<int, double>>;

// Pillow (ImagingScaleAffine) walks the source position by repeated addition in double; doing
// the same keeps its choice at positions that land exactly on a pixel edge.
double nearest_position(double scale, int d) {
    double x = 0.5 * scale;
    for (int i = 0; i < d; ++i) x += scale;
    return x;
}

void nearest_taps(int src, double pos, Taps& t) {
    int s = static_cast<int>(std::floor(pos));
    t.emplace_back(std::min(std::max(s, 0), src - 1), 1.0);
}

void bilinear_taps(double scale, int d, Taps& t) {
    // cv2 computes the position in float
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    int s = static_cast<int>(std::floor(f));
    float frac = f - static_cast<float>(s);
    t.emplace_back(s, 1.0 - frac);
    t.emplace_back(s + 1, frac);
}

void area_upscale_taps(double scale, double inv_scale, int d, Taps& t) {
    // cv2 resize.cpp, area_mode branch of the generic (linear) path: sx = floor(dx * scale_x),
    // fx = frac((dx + 1) - (sx + 1) * inv_scale_x), with cv2's own scale pair (make_axis_table);
    // a tap past the last source pixel is clamped onto it later (cv2 sets fx = 0 there)
    int s = static_cast<int>(std::floor(d * scale));
    float frac = static_cast<float>((d + 1) - (s + 1) * inv_scale);
    frac = frac <= 0 ? 0.f : frac - std::floor(frac);
    t.emplace_back(s, 1.0 - frac);
    t.emplace_back(s + 1, frac);
}

void area_shrink_taps(int src, double scale, int d, Taps& t) {
    // cv2 resize.cpp computeResizeAreaTab
    double fs1 = d * scale;
    double fs2 = fs1 + scale;
    double cell = std::min(scale, src - fs1);
    int s1 = static_cast<int>(std::ceil(fs1));
    int s2 = static_cast<int>(std::floor(fs2));
    s2 = std::min(s2, src - 1);
    s1 = std::min(s1, s2);
    if (s1 - fs1 > 1e-3) t.emplace_back(s1 - 1, (s1 - fs1) / cell);
    for (int s = s1; s < s2; ++s) t.emplace_back(s, 1.0 / cell);
    if (fs2 - s2 > 1e-3) t.emplace_back(s2, std::min(std::min(fs2 - s2, 1.0), cell) / cell);
}

// Keys' cubic convolution kernel with parameter a (cv2 INTER_CUBIC: -0.75, Pillow BICUBIC: -0.5),
// written as Pillow's bicubic_filter; support 2
double keys_cubic(double x, double a) {
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

double triangle(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

double keys_cubic_half(double x) { return keys_cubic(x, -0.5); }

void cubic_taps(double scale, int d, Taps& t) {
    // cv2 resize.cpp (INTER_CUBIC): fx = (float)((dx + 0.5) * scale_x - 0.5), sx = floor(fx),
    // fx -= sx (float), 4 taps sx - 1 .. sx + 2 with interpolateCubic(fx) (A = -0.75); taps
    // outside the image are clamped onto the edge later (cv2 reads its border pixel there)
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    int s = static_cast<int>(std::floor(f));
    const double x = static_cast<double>(f - static_cast<float>(s));
    for (int k = -1; k <= 2; ++k) t.emplace_back(s + k, keys_cubic(k - x, -0.75));
}

void antialias_taps(int src, double scale, int d, double (*filter)(double), double support, Taps& t) {
    // Pillow src/libImaging/Resample.c precompute_coeffs: the filter widened by max(scale, 1),
    // the window cut at the image edges, the weights normalised by their sum
    double filterscale = std::max(scale, 1.0);
    support *= filterscale;
    double center = (d + 0.5) * scale;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > src) xmax = src;
    xmax -= xmin;
    double total = 0.0;
    std::size_t first = t.size();
    for (int x = 0; x < xmax; ++x) {
        double w = filter((x + xmin - center + 0.5) * ss);
        t.emplace_back(x + xmin, w);
        total += w;
    }
    if (total != 0.0)
        for (std::size_t i = first; i < t.size(); ++i) t[i].second /= total;
    if (t.size() == first) t.emplace_back(std::min(std::max(xmin, 0), src - 1), 1.0);
}

// cv2's saturate_cast<short>(float) (cvRound: to nearest, ties to even), written out so that it
// does not depend on the floating-point environment
int round_half_even(float v) {
    const double r = std::floor(static_cast<double>(v));
    const double diff = static_cast<double>(v) - r;
    int i = static_cast<int>(r);
    if (diff > 0.5 || (diff == 0.5 && (i & 1))) ++i;
    return i;
}

}  // namespace

AxisTable make_axis_table(Interpolation mode, int src, int resized, int offset, int count,
                          bool area_shrinks) {
    if (src <= 0 || resized <= 0 || count < 0 || offset < 0 || offset + count > resized)
        throw std::invalid_argument("make_axis_table: bad sizes src=" + std::to_string(src) +
                                    " resized=" + std::to_string(resized) + " offset=" +
                                    std::to_string(offset) + " count=" + std::to_string(count));
    const double scale = static_cast<double>(src) / resized;
    // cv2 derives its INTER_AREA scales from inv_scale = dst / src (double) as scale = 1 / inv_scale,
    // which can differ from src / dst in the last bit; where d * scale is a whole number floor()
    // then picks another source pixel (24 -> 68, d = 17: cv2 has 5.999..., pixel 5, weight 1; src /
    // dst has 6.0, pixel 6), so area uses cv2's pair, and so does bicubic
    const double area_inv_scale = static_cast<double>(resized) / src;
    const double area_scale = 1.0 / area_inv_scale;
    // all taps in one flat list (no per-output allocation): outputs o use [offs[o], offs[o + 1])
    Taps flat;
    const double widened = std::max(scale, 1.0);
    std::size_t per_output = 2;
    if (mode == Interpolation::bilinear_aa) per_output = 2 * static_cast<std::size_t>(widened + 2);
    else if (mode == Interpolation::bicubic_aa) per_output = 2 * static_cast<std::size_t>(2 * widened + 2);
    else if (mode == Interpolation::bicubic) per_output = 4;
    flat.reserve(static_cast<std::size_t>(count) * per_output);
    std::vector<int> offs(static_cast<std::size_t>(count) + 1, 0);
    int taps = 1;
    std::vector<int> lo(count);
    double pos = mode == Interpolation::nearest ? nearest_position(scale, offset) : 0.0;
    for (int o = 0; o < count; ++o) {
        const std::size_t first = flat.size();
        const int d = o + offset;
        switch (mode) {
            case Interpolation::nearest:
                nearest_taps(src, pos, flat);
                pos += scale;
                break;
            case Interpolation::bilinear: bilinear_taps(scale, d, flat); break;
            case Interpolation::bilinear_cv2: bilinear_taps(area_scale, d, flat); break;
            case Interpolation::bilinear_aa: antialias_taps(src, scale, d, &triangle, 1.0, flat); break;
            case Interpolation::bicubic: cubic_taps(area_scale, d, flat); break;
            case Interpolation::bicubic_aa: antialias_taps(src, scale, d, &keys_cubic_half, 2.0, flat); break;
            case Interpolation::area:
                if (area_shrinks) area_shrink_taps(src, area_scale, d, flat);
                else area_upscale_taps(area_scale, area_inv_scale, d, flat);
                break;
        }
        int a = src - 1, b = 0;
        for (std::size_t i = first; i < flat.size(); ++i) {
            int& idx = flat[i].first;
            idx = std::min(std::max(idx, 0), src - 1);
            a = std::min(a, idx);
            b = std::max(b, idx);
        }
        if (b < a) b = a;
        lo[o] = a;
        offs[o + 1] = static_cast<int>(flat.size());
        taps = std::max(taps, b - a + 1);
    }
    AxisTable table;
    table.count = count;
    table.taps = taps;
    table.start.resize(count);
    table.w.assign(static_cast<std::size_t>(count) * taps, 0.f);
    for (int o = 0; o < count; ++o) {
        const int start = std::min(lo[o], src - taps);
        table.start[o] = start;
        for (int i = offs[o]; i < offs[o + 1]; ++i)
            table.w[static_cast<std::size_t>(o) * taps + (flat[i].first - start)] += static_cast<float>(flat[i].second);
    }
    return table;
}

Cv2LinearAxis make_cv2_linear_axis(int src, int resized, int offset, int count, bool clamp_edges, bool halve) {
    if (src <= 0 || resized <= 0 || count < 0 || offset < 0 || offset + count > resized)
        throw std::invalid_argument("make_cv2_linear_axis: bad sizes src=" + std::to_string(src) +
                                    " resized=" + std::to_string(resized) + " offset=" +
                                    std::to_string(offset) + " count=" + std::to_string(count));
    Cv2LinearAxis a;
    a.count = count;
    a.i0.resize(count);
    a.i1.resize(count);
    a.w0.assign(count, 0);
    a.w1.assign(count, 0);
    const double scale = 1.0 / (static_cast<double>(resized) / src);
    for (int o = 0; o < count; ++o) {
        const int d = o + offset;
        if (halve) {
            a.i0[o] = 2 * d;
            a.i1[o] = std::min(2 * d + 1, src - 1);
            continue;
        }
        float f = static_cast<float>((d + 0.5) * scale - 0.5);
        int s = static_cast<int>(std::floor(f));
        f -= static_cast<float>(s);
        if (clamp_edges && s < 0) s = 0, f = 0.f;
        if (clamp_edges && s >= src - 1) s = src - 1, f = 0.f;
        const float c0 = 1.f - f;
        a.w0[o] = round_half_even(c0 * 2048.f);  // the products by 2048 are exact
        a.w1[o] = round_half_even(f * 2048.f);
        a.i0[o] = std::min(std::max(s, 0), src - 1);
        a.i1[o] = std::min(std::max(s + 1, 0), src - 1);
    }
    return a;
}

}  // namespace pyimgcls::core
