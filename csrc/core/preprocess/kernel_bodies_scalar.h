// Portable bodies of the colour row kernels (see kernels.h for indices and conventions): the scalar
// set, and the scalar tails of the vector sets.
//
// Included only by the kernel set files (kernels*.cpp), each compiled for its own instruction set:
// everything here has internal linkage, so no copy compiled for one set can stand in for another's.
// Arithmetic: float32, taps accumulated in order j = 0, 1, ... Cost: O(taps) per output.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/preprocess/kernels.h"

namespace pyimgcls::core {
namespace {

// One RGBX output from `taps` source pixels starting at p.
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

// One 2x2 RGBX output: two taps on rows r0 and r1, then the vertical blend.
template <typename Src>
inline void fused_2x2_pixel_scalar(const Src* r0, const Src* r1, int ps, const float* wx, const float* wy,
                                   float* o) {
    float ra[4], rb[4];
    hpass_color_pixel_scalar(r0, ps, wx, 2, ra);
    hpass_color_pixel_scalar(r1, ps, wx, 2, rb);
    for (int c = 0; c < 4; ++c) o[c] = ra[c] * wy[0] + rb[c] * wy[1];
}

// Outputs [from, xt.count) of a colour row.
template <typename Src, int TAPS>
inline void hpass_color_tail(const Src* row, int pixel_stride, const AxisSpan& xt, int from, float* out) {
    const int taps = TAPS > 0 ? TAPS : xt.taps;
    for (int ox = from; ox < xt.count; ++ox)
        hpass_color_pixel_scalar(row + static_cast<std::ptrdiff_t>(xt.start[ox]) * pixel_stride, pixel_stride,
                                 xt.w + static_cast<std::ptrdiff_t>(ox) * taps, taps, out + 4 * ox);
}

}  // namespace
}  // namespace pyimgcls::core
