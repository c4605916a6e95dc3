// The AVX2 row kernels of crop_resize's bilinear path (crop_resize_avx2.cpp). They do the float
// operations of the baseline loops in crop_resize.cpp (BilinearPath), in the same order, eight lanes at
// a time, with no fused multiply-add (the file is compiled with -ffp-contract=off): outputs are
// bit-identical to the baseline's, float32 and uint8 alike.
//
// crop_avx2_kernels() is null where the file was built without AVX2 (MSVC, other architectures,
// PYIMGCLS_NO_SIMD). Call it, and anything it returns, only after cpu_has_avx2_fma() said yes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyimgcls::core {

// One output row of one box: output column j blends v[x0[j] + c] and v[x1[j] + c] (element offsets
// into the vertically blended span v, channels interleaved) with weights w0[j], w1[j], then
// value * scale[c] + bias[c] is stored (uint8: saturated to [0, 255], rounded half away from zero).
struct CropRow {
    const float* v = nullptr;  // span * C floats, plus 1 readable float past the end (4-lane loads)
    const int* x0 = nullptr;
    const int* x1 = nullptr;
    const float* w0 = nullptr;
    const float* w1 = nullptr;
    int width = 0;  // output columns
    const float* scale = nullptr;
    const float* bias = nullptr;
    void* out = nullptr;         // the row's first element (NCHW: in channel 0's plane)
    const float* v2 = nullptr;   // row3x2: a second row with the same taps (its span and output row)
    void* out2 = nullptr;
    std::ptrdiff_t plane = 0;    // NCHW: elements from one channel's plane to the next
};

struct CropAvx2Kernels {
    // BilinearPath::axis, four outputs a step (the same double operations, so the same tables):
    // taps of outputs [0, count) relative to floor(b0), times unit; returns the span in samples
    int (*axis)(double b0, double b1, int count, int unit, int* i0, int* i1, float* w0, float* w1);
    // v[e] = a * r0[e] + b * r1[e] for e < m (uint8 rows, float32 out)
    void (*vblend)(float* v, const std::uint8_t* r0, const std::uint8_t* r1, float a, float b, int m);
    // two rows at once, each source row widened once: [0] v = a * P + b * Q, v2 = c * P + d * Q;
    // [1] v = a * P + b * Q, v2 = c * Q + d * S (bit-identical to two vblend calls)
    void (*vblend2[2])(float* v, float* v2, const std::uint8_t* P, const std::uint8_t* Q, const std::uint8_t* S,
                       float a, float b, float c, float d, int m);
    // three channels: [layout: 0 NCHW, 1 NHWC][output: 0 float32, 1 uint8]
    void (*row3[2][2])(const CropRow& r);
    // the same for two rows at once (v / out and v2 / out2): the taps and weights are loaded once
    void (*row3x2[2][2])(const CropRow& r);
    // one channel (NCHW and NHWC are the same memory): [output: 0 float32, 1 uint8]
    void (*row1[2])(const CropRow& r);
};

const CropAvx2Kernels* crop_avx2_kernels();

}  // namespace pyimgcls::core
