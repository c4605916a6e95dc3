// Row kernels of the fused preprocessing (preprocess.cpp), one set per instruction set: the portable
// scalar set, SSE2 (the x86-64 baseline) and SSE4.1 (its own file, compiled for SSE4.1 alone). A call
// picks the set once (select_kernels, or kernel_set by name) and the row loop calls through it.
//
// Indices: a kernel writes outputs o in [0, n) of one output row; output o reads source pixels
// start[o] .. start[o] + taps - 1 of the source row(s) with weights w[o * taps + j] (an AxisSpan,
// the raw view of an AxisTable). Source pixels are interleaved (pixel stride ps == channels, 3 or 4).
// Colour results are RGBX: 4 floats per output, the first three source channels in source order then
// an unused lane, in source units (scale / bias / channel order come later, in store_row). `safe`
// counts the leading outputs whose wide loads (4 elements per pixel; 8 bytes for the Q14 kernels)
// stay inside the image; the outputs after it take the scalar tail, so every set gives the same
// float32 results (products and sums in tap order), except the uint8 Q14 kernels of the SSE4.1 set
// (16-bit fixed-point horizontal weights, see kernels_sse41.cpp).
// Cost: O(n * taps) per call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/preprocess/preprocess.h"

namespace pyimgcls::core {

struct AxisSpan {
    const int* start;  // count
    const float* w;    // count * taps
    int count;
    int taps;
};

template <typename Src>
using HpassColorFn = void (*)(const Src* row, int ps, const AxisSpan& xt, const float* w4, int safe, float* out);
template <typename Src>
using Fused2x2Fn = void (*)(const Src* r0, const Src* r1, int ps, const AxisSpan& xt, const float* w4,
                            const float* wy, int safe, int n, float* acc);

struct PreprocessKernels {
    const char* name;  // "scalar", "sse2", "sse41" (as kernel_set takes them)

    // Horizontal pass of one colour source row into xt.count RGBX outputs. `w4` holds each weight
    // broadcast to 4 lanes (xt.w * 4 floats; the scalar set ignores it).
    HpassColorFn<std::uint8_t> hpass_color_u8;
    HpassColorFn<std::uint16_t> hpass_color_u16;

    // 2x2 taps while shrinking: output row from source rows r0, r1 (weights wy[0], wy[1]) in one
    // pass, RGBX into acc[0, 4n). Null in the scalar set (the caller then runs both passes).
    Fused2x2Fn<std::uint8_t> fused_2x2_u8;
    Fused2x2Fn<std::uint16_t> fused_2x2_u16;

    // uint8 Q14 kernels (null except in the SSE4.1 set). `wq` holds per output the Q14 weights of
    // taps (2i, 2i + 1) packed as (w1 << 16) | w0, ceil(taps / 2) words per output.
    void (*hpass_color_u8q14)(const std::uint8_t* row, int ps, const AxisSpan& xt, const std::int32_t* wq,
                              int safe, float* out);
    void (*fused_2x2_u8q14)(const std::uint8_t* r0, const std::uint8_t* r1, int ps, const AxisSpan& xt,
                            const std::int32_t* wq, const float* wy, int safe, int n, float* acc);
    // The same, normalised straight into three float32 NCHW planes, four outputs at a time; returns
    // how many outputs it wrote (a multiple of 4, at most safe; the caller finishes the rest).
    int (*fused_2x2_u8q14_planes)(const std::uint8_t* r0, const std::uint8_t* r1, int ps, const AxisSpan& xt,
                                  const std::int32_t* wq, const float* wy, int safe, const PreprocessParams& p,
                                  float* o0, float* o1, float* o2);

    // RGBX row -> three float32 planes, o_k[x] = vals[4x + channel_map[k]] * scale[k] + bias[k], four
    // outputs at a time; returns how many it wrote (the caller finishes the rest). Null: none.
    int (*rgbx_to_planes_f32)(const float* vals, int n, const PreprocessParams& p, float* o0, float* o1,
                              float* o2);

    // bilinear_cv2 on uint8 sources (OpenCV's integer INTER_LINEAR; null in the scalar set): the
    // horizontal pass of one row with 3 or 4 channels into 4 int16 lanes an output, (value >> 4) as the
    // vertical pass takes it, for outputs [0, count) whose 4-byte pixel loads stay inside the image;
    // wpair[x] = (w1 << 16) | w0. And the vertical pass over m such lanes of two rows into float
    // values; it returns the lanes written (the caller finishes the rest). Exact: integer arithmetic.
    void (*cv2_hrow_u8)(const std::uint8_t* row, int ps, const int* i0, const int* i1, const std::int32_t* wpair,
                        int count, std::int16_t* out);
    int (*cv2_vrow)(const std::int16_t* h0, const std::int16_t* h1, int b0, int b1, int m, float* vals);

    // RGBX row -> uint8 (the scalar store's rounding: saturated, + 0.5, truncated; NaN -> 0), four
    // outputs at a time, NHWC bytes at o0 or NCHW planes o0 / o1 / o2; returns the outputs written (0
    // where channel_map is not a permutation of 0, 1, 2). Null: none (SSE4.1 set only: pshufb).
    int (*rgbx_to_u8)(const float* vals, int n, const PreprocessParams& p, bool planes, std::uint8_t* o0,
                      std::uint8_t* o1, std::uint8_t* o2);

    // bilinear_cv2's vertical pass straight into uint8 values as they are (scale 1, bias 0): n outputs
    // of `lanes` (1, or 4 for colour: output byte k from lane map[k]) int16 lanes of two cached rows,
    // NHWC bytes at o0 or NCHW planes o0 / o1 / o2; returns the outputs written. Null: none (SSE4.1).
    int (*cv2_vrow_u8)(const std::int16_t* h0, const std::int16_t* h1, int b0, int b1, int n, int lanes,
                       const int* map, bool planes, std::uint8_t* o0, std::uint8_t* o1, std::uint8_t* o2);
};

// The best set this build and this CPU offer: SSE4.1, else SSE2, else scalar (scalar only under
// PYIMGCLS_NO_SIMD or off x86). Chosen on the first call, then cached; thread-safe.
const PreprocessKernels& select_kernels();

// The sets themselves; null where this build has none (another architecture, MSVC for SSE4.1,
// PYIMGCLS_NO_SIMD). The SSE4.1 set may be used only when cpu_has_sse41().
const PreprocessKernels& scalar_kernels();
const PreprocessKernels* sse2_kernels();
const PreprocessKernels* sse41_kernels();

// A set by name, for callers that compare the sets (the tests): "auto" is select_kernels(),
// "scalar", "sse2" and "sse41" the sets themselves. Throws std::invalid_argument for another name
// or for a set that this build or this CPU does not offer (the message lists those it does).
const PreprocessKernels& kernel_set(const std::string& name);

// The names of the sets this build and this CPU offer: "scalar", then "sse2", "sse41" where usable.
std::vector<std::string> preprocess_kernel_sets();

}  // namespace pyimgcls::core
